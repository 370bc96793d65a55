/**
 * confab: TCP servers with Lisp-style socket streams and light-weight processes, and a live
 * TypeScript REPL inside your running program, after LispWorks' `comm:start-up-server`.
 *
 * Every name is available from its namespace (`comm.startUpServer`, `mp.processKill`) and as a
 * named export (`startUpServer`, `processKill`).
 *
 * @module
 */
import * as comm from "./comm.js";
import { setSessionComm } from "./start-up-server.js";

// Listener sessions see this `comm`, whose startUpServer serves listeners without a function.
setSessionComm(comm);

export { comm };
export * as mp from "./mp/index.js";
export * as monitor from "./monitor/index.js";
export * from "./comm.js";
export * from "./mp/index.js";
export * from "./monitor/index.js";
export {
  ConfabError,
  ErrorCodes,
  type ConfabErrorCode,
  type ErrorCode,
  type SystemErrorCode,
  type X509ErrorCode,
} from "./errors.js";
export { setErrorReporter, type ErrorReporter } from "./report.js";
export {
  openStructuredSession,
  type ConnectTarget,
  type EvaluationResult,
  type ListenerConnectOptions,
  type ListenerEndpoint,
  type StructuredSession,
  type StructuredSessionOptions,
} from "./listener/listener-client.js";
export type { RetStatus } from "./listener/structured-protocol.js";
