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
