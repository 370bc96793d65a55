/**
 * Every error confab raises is a {@link ConfabError} with a stable string `code`,
 * so callers can branch on `err.code` instead of parsing messages.
 *
 * @example
 * ```ts
 * import { openTcpStream, ConfabError } from "confab";
 * try {
 *   await openTcpStream("127.0.0.1", 1);
 * } catch (err) {
 *   if (err instanceof ConfabError && err.code === "ECONNREFUSED") console.log("nobody home");
 * }
 * ```
 */
export class ConfabError extends Error {
  /** A stable, machine-readable code such as `"EADDRINUSE"` or `"ERR_LINE_TOO_LONG"`. */
  readonly code: string;

  constructor(code: string, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "ConfabError";
    this.code = code;
  }
}

/** Codes confab itself defines; system errors keep the OS code (`ECONNREFUSED`, `EADDRINUSE`, ...). */
export const ErrorCodes = {
  /** A service name is not in any services file. */
  UNKNOWN_SERVICE: "ERR_UNKNOWN_SERVICE",
  /** A line grew past the stream's `maxLineLength`. */
  LINE_TOO_LONG: "ERR_LINE_TOO_LONG",
  /** A read did not complete within `readTimeout`. */
  READ_TIMEOUT: "ERR_READ_TIMEOUT",
  /** A write was not accepted by the OS within `writeTimeout`. */
  WRITE_TIMEOUT: "ERR_WRITE_TIMEOUT",
  /** A connection was not established within `connectTimeout`. */
  CONNECT_TIMEOUT: "ERR_CONNECT_TIMEOUT",
  /** The stream was closed (locally, or because its process was killed). */
  STREAM_CLOSED: "ERR_STREAM_CLOSED",
  /** A read was started while another read on the same stream was still pending. */
  READ_IN_PROGRESS: "ERR_READ_IN_PROGRESS",
  /** The peer stopped reading and the queued output passed the stream's `maxOutputBuffer`. */
  OUTPUT_BUFFER_FULL: "ERR_OUTPUT_BUFFER_FULL",
  /** The operation does not fit the stream's `direction` (writing to an input stream, say). */
  WRONG_DIRECTION: "ERR_WRONG_DIRECTION",
  /** An argument was not of the expected form. */
  INVALID_ARGUMENT: "ERR_INVALID_ARGUMENT",
  /** The first line sent to a listener server was not a Lisp string. */
  BAD_NAME_LINE: "ERR_BAD_NAME_LINE",
  /** A listener server would be exposed beyond loopback without authentication. */
  INSECURE_LISTENER: "ERR_INSECURE_LISTENER",
  /** The monitor page was asked to bind a non-loopback address (it can kill processes and has no login). */
  INSECURE_MONITOR: "ERR_INSECURE_MONITOR",
  /** Listener evaluation exceeded its time limit. */
  EVAL_TIMEOUT: "ERR_EVAL_TIMEOUT",
  /** A server with `workers` could not get every worker listening (one exited, timed out, or could not be forked). */
  WORKER_START: "ERR_WORKER_START",
  /** Reported (never thrown): a worker of a server with `workers` died on its own and is being replaced. */
  WORKER_EXITED: "ERR_WORKER_EXITED",
  /** A Unix socket service's path exists and is not a socket, so it is not replaced. */
  NOT_A_SOCKET: "ERR_NOT_A_SOCKET",
  /** `kill(name)` in a listener: more than one live process has that name (names need not be unique); kill by id. */
  AMBIGUOUS_NAME: "ERR_AMBIGUOUS_NAME",
  /** A TLS client was refused: no client certificate, or one not signed by the server's CA. */
  TLS_CLIENT_REFUSED: "ERR_TLS_CLIENT_REFUSED",
} as const;
