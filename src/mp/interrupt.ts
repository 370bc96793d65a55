/**
 * Running code inside another process, as LispWorks' `mp:process-interrupt`: the way to look
 * inside a process from a listener (`processInterrupt(p, () => console.log(state))`) or to make
 * it do something in its own name.
 *
 * @example
 * ```ts
 * mp.processInterrupt(worker, () => console.log("worker sees", mp.getCurrentProcess()?.name));
 * ```
 * @module
 */
import { ConfabError, ErrorCodes } from "../errors.js";
import { reportError } from "../report.js";
import { isThenable, type Process } from "./process.js";
import { processContext } from "./registry.js";

/**
 * Runs `fn(...args)` inside `process`'s async context, on a later turn of the event loop, and
 * returns at once. In it, `getCurrentProcess()` is `process`, and what `fn` makes (a stream it
 * opens, a process it starts) belongs to `process`. An error `fn` throws, or a promise it
 * returns rejects with, is reported with the process's name and does not end the process.
 * Throws a `ConfabError` (`ERR_PROCESS_ENDED`) if `process` has ended: there is nothing to run
 * in.
 */
export function processInterrupt<A extends unknown[]>(process: Process, fn: (...args: A) => unknown, ...args: A): void {
  if (!process.alive) {
    throw new ConfabError(
      ErrorCodes.PROCESS_ENDED,
      `cannot interrupt process ${process.id} "${process.name}": it has ${process.state === "finished" ? "finished" : `been ${process.state}`}`,
    );
  }
  const report = (error: unknown): void => {
    reportError(`an interrupt of process ${process.id} "${process.name}" failed`, error);
  };
  // The timer is made inside the process's context, so its callback runs there.
  processContext.run(process, () => {
    setImmediate(() => {
      if (!process.alive) return;
      try {
        const outcome = fn(...args);
        if (isThenable(outcome)) outcome.then(undefined, report);
      } catch (error) {
        report(error);
      }
    });
  });
}
