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
  /**
   * A stable, machine-readable code: one of {@link ErrorCodes} (`"ERR_LINE_TOO_LONG"`), or the
   * code of the system error behind it (`"EADDRINUSE"`, `"ECONNREFUSED"`, a TLS code); see
   * {@link ConfabErrorCode}.
   */
  readonly code: ConfabErrorCode;

  /** Makes an error with `code` and `message`; `options.cause` keeps the error behind it. */
  constructor(code: ConfabErrorCode, message: string, options?: { cause?: unknown }) {
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
  /**
   * The unread input a server's connections held together passed its `maxBufferedInput`, and
   * this connection held the most: its input is dropped and the connection closed.
   */
  INPUT_BUDGET: "ERR_INPUT_BUDGET",
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
  /**
   * A Unix socket's path is longer than the OS takes (107 bytes on Linux, 103 on macOS and the
   * BSDs): refused before binding or connecting, where the OS would silently cut it short.
   */
  SOCKET_PATH_TOO_LONG: "ERR_SOCKET_PATH_TOO_LONG",
  /** `kill(name)` in a listener: more than one live process has that name (names need not be unique); kill by id. */
  AMBIGUOUS_NAME: "ERR_AMBIGUOUS_NAME",
  /** The listener server's audit file cannot be opened. */
  AUDIT: "ERR_AUDIT",
  /** A TLS client was refused: no client certificate, or one not signed by the server's CA. */
  TLS_CLIENT_REFUSED: "ERR_TLS_CLIENT_REFUSED",
  /** A connection that must start with a PROXY protocol header (`proxyProtocol`) sent none, a malformed one, or none in time. */
  BAD_PROXY_HEADER: "ERR_BAD_PROXY_HEADER",
  /** A listener server refused a client's session before it began (a wrong token, a bad name line, not a listener): the message has its words. */
  LISTENER_REFUSED: "ERR_LISTENER_REFUSED",
  /** A listener's greeting was not what the client needs (no structured mode: an older listener). */
  LISTENER_PROTOCOL: "ERR_LISTENER_PROTOCOL",
  /** A listener session ended (killed, a connection limit, closed) before it answered a request. */
  SESSION_ENDED: "ERR_SESSION_ENDED",
  /** A connection failed with an error that carries no system code (rare: the OS's code is used when there is one). */
  CONNECT: "ERR_CONNECT",
  /** Binding a server's or the monitor's address failed with an error that carries no system code (the OS's code is used when there is one). */
  LISTEN: "ERR_LISTEN",
  /** A session recording could not be started: its directory or file could not be made, or its header written. */
  RECORDING: "ERR_RECORDING",
  /** A wait gave up because its `timeout` passed first (`processWait`, `mailboxRead`). Streams, connections and evaluations have their own codes. */
  TIMEOUT: "ERR_TIMEOUT",
  /** `mailboxSend` or `processSend` to a mailbox that already holds `size` values (a send never waits). */
  MAILBOX_FULL: "ERR_MAILBOX_FULL",
  /** A wait (`mailboxRead`) ended because the process waiting was killed (its `signal` aborted); the kill's reason is the `cause`. */
  PROCESS_KILLED: "ERR_PROCESS_KILLED",
  /** The process has ended (finished, killed or failed), so it cannot take what was asked (`processSend`, `processInterrupt`). */
  PROCESS_ENDED: "ERR_PROCESS_ENDED",
} as const;

/** A code confab itself defines: one of the values of {@link ErrorCodes}. */
export type ErrorCode = (typeof ErrorCodes)[keyof typeof ErrorCodes];

/**
 * The code of a system error that confab passes on as it is: an OS error name (`ECONNREFUSED`,
 * `EADDRINUSE`, `ENOENT`), a DNS one (`ENOTFOUND`, `EAI_AGAIN`), one of Node's own
 * (`ERR_TLS_CERT_ALTNAME_INVALID`, `ERR_SSL_WRONG_VERSION_NUMBER`), or a TLS certificate
 * verification code ({@link X509ErrorCode}: `UNABLE_TO_VERIFY_LEAF_SIGNATURE`).
 *
 * The first three are open-ended sets whose names start with `E` and are upper case, hence a
 * template literal type rather than a list; the certificate codes are OpenSSL's, a closed list.
 */
export type SystemErrorCode = `E${Uppercase<string>}` | X509ErrorCode;

/** A TLS peer certificate verification failure, as Node names OpenSSL's (`tls` documentation, "X509 certificate error codes"). */
export type X509ErrorCode =
  | "UNABLE_TO_GET_ISSUER_CERT"
  | "UNABLE_TO_GET_CRL"
  | "UNABLE_TO_DECRYPT_CERT_SIGNATURE"
  | "UNABLE_TO_DECRYPT_CRL_SIGNATURE"
  | "UNABLE_TO_DECODE_ISSUER_PUBLIC_KEY"
  | "CERT_SIGNATURE_FAILURE"
  | "CRL_SIGNATURE_FAILURE"
  | "CERT_NOT_YET_VALID"
  | "CERT_HAS_EXPIRED"
  | "CRL_NOT_YET_VALID"
  | "CRL_HAS_EXPIRED"
  | "ERROR_IN_CERT_NOT_BEFORE_FIELD"
  | "ERROR_IN_CERT_NOT_AFTER_FIELD"
  | "ERROR_IN_CRL_LAST_UPDATE_FIELD"
  | "ERROR_IN_CRL_NEXT_UPDATE_FIELD"
  | "OUT_OF_MEM"
  | "DEPTH_ZERO_SELF_SIGNED_CERT"
  | "SELF_SIGNED_CERT_IN_CHAIN"
  | "UNABLE_TO_GET_ISSUER_CERT_LOCALLY"
  | "UNABLE_TO_VERIFY_LEAF_SIGNATURE"
  | "CERT_CHAIN_TOO_LONG"
  | "CERT_REVOKED"
  | "INVALID_CA"
  | "PATH_LENGTH_EXCEEDED"
  | "INVALID_PURPOSE"
  | "CERT_UNTRUSTED"
  | "CERT_REJECTED"
  | "HOSTNAME_MISMATCH";

/**
 * What {@link ConfabError.code} can be: confab's own code, or the system error's code it passes on.
 * Not a plain `string`: a made-up or mis-cased code (`"econnrefused"`, `"TIMEOUT"`) is a type error.
 */
export type ConfabErrorCode = ErrorCode | SystemErrorCode;

/**
 * The code of `error` (a Node.js or OS error) to pass on in a {@link ConfabError}, or `fallback`
 * when it has none. Node's codes are upper case names starting with `E`, or certificate codes.
 * @internal
 */
export function systemCode(
  error: { readonly code?: string | undefined } | undefined,
  fallback: ErrorCode,
): ConfabErrorCode {
  const code = error?.code;
  return code === undefined ? fallback : (code as ConfabErrorCode);
}
