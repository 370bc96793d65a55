/**
 * Waits that say what they wait for: {@link processWait} awaits a promise with a reason of the
 * program's own as the current process's `whostate` meanwhile (LispWorks' `process-wait`, whose
 * first argument is the wait reason), so that `ps()` and the monitor page show what a process
 * is stuck on: a database query, a lock, a remote call.
 *
 * @example
 * ```ts
 * const rows = await mp.processWait("Waiting for the users query", db.query(sql), { timeout: 5000 });
 * ```
 * @module
 */
import { ConfabError, ErrorCodes } from "../errors.js";
import { beginWait, endWait } from "./wait-state.js";
import { processContext } from "./registry.js";

/**
 * Awaits `promise` with `waitReason` as the current process's `whostate` meanwhile, and
 * resolves to its value (or rejects with its error). A `timeout` (ms) that passes first rejects
 * with a `ConfabError` of code `ERR_TIMEOUT` naming the reason; the promise itself goes on.
 * Outside any process it just waits.
 */
export async function processWait<T>(
  waitReason: string,
  promise: PromiseLike<T>,
  options?: { readonly timeout?: number },
): Promise<T> {
  const process = processContext.getStore();
  const previous = process === undefined ? undefined : beginWait(process, waitReason);
  const timeout = options?.timeout;
  let timer: NodeJS.Timeout | undefined;
  try {
    if (timeout === undefined || !Number.isFinite(timeout)) return await promise;
    const timedOut = new Promise<never>((_resolve, reject) => {
      timer = setTimeout(
        () => {
          reject(new ConfabError(ErrorCodes.TIMEOUT, `${waitReason}: no answer within ${timeout} ms`));
        },
        Math.max(0, timeout),
      );
    });
    return await Promise.race([promise, timedOut]);
  } finally {
    clearTimeout(timer);
    if (process !== undefined) endWait(process, waitReason, previous);
  }
}
