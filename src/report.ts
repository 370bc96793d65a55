/**
 * Where confab reports failures that have no caller to reject to: a process whose
 * function threw, a server `function` that threw, a connection dropped for a reason.
 *
 * The default writes one line to standard error. Replace it to route reports into
 * your own logger (or to capture them in tests).
 *
 * @example
 * ```ts
 * import { setErrorReporter } from "confab";
 * setErrorReporter((what, error) => myLogger.warn({ what, error }));
 * ```
 */
export type ErrorReporter = (what: string, error: unknown) => void;

const writeToStderr: ErrorReporter = (what, error) => {
  const detail = error instanceof Error ? (error.stack ?? `${error.name}: ${error.message}`) : String(error);
  process.stderr.write(`confab: ${what}: ${detail}\n`);
};

let reporter: ErrorReporter = writeToStderr;

/** Sets the reporter and returns the previous one; pass `undefined` to restore the default. */
export function setErrorReporter(next: ErrorReporter | undefined): ErrorReporter {
  const previous = reporter;
  reporter = next ?? writeToStderr;
  return previous;
}

/** Reports `error` with a description of `what` failed. A reporter that throws is ignored: reporting must never crash the host. */
export function reportError(what: string, error: unknown): void {
  try {
    reporter(what, error);
  } catch {
    // A broken reporter must not turn one failure into a crash.
  }
}

/**
 * At most `max` reports of one kind per `interval` ms, for failures that can repeat many times
 * a second (accept errors while out of file descriptors, failed TLS handshakes): a report of a
 * new kind starts a new window at once. {@link ReportLimiter.allow} says how many were held
 * back, so that the next report can say so.
 *
 * @example
 * ```ts
 * const reports = new ReportLimiter(1, 5000);
 * const held = reports.allow(error.code);
 * if (held !== false) reportError(`accept failed${held > 0 ? ` (${held} more not reported)` : ""}`, error);
 * ```
 */
export class ReportLimiter {
  readonly #max: number;
  readonly #interval: number;
  #windowStart = 0;
  #kind: string | undefined;
  #count = 0;
  #suppressed = 0;

  constructor(max: number, interval: number) {
    this.#max = max;
    this.#interval = interval;
  }

  /** `false` to stay quiet, or the number of reports held back since the last one let through. */
  allow(kind?: string): number | false {
    const now = Date.now();
    if (kind !== this.#kind || now - this.#windowStart >= this.#interval) {
      this.#kind = kind;
      this.#windowStart = now;
      this.#count = 0;
    }
    if (this.#count >= this.#max) {
      this.#suppressed++;
      return false;
    }
    this.#count++;
    const held = this.#suppressed;
    this.#suppressed = 0;
    return held;
  }
}
