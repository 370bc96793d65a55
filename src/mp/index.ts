/**
 * Light-weight processes, after LispWorks' `mp` package.
 *
 * @example
 * ```ts
 * import { mp } from "confab";
 * const p = mp.processRunFunction("worker", {}, async () => 42);
 * await mp.processJoin(p); // p.state === "finished", p.result === 42
 * ```
 * @module
 */
export {
  Process,
  processRunFunction,
  processKill,
  processJoin,
  processAliveP,
  processTerminate,
  type ProcessKeywords,
  type ProcessResource,
  type ProcessState,
} from "./process.js";
export {
  Mailbox,
  makeMailbox,
  mailboxSend,
  mailboxRead,
  mailboxPeek,
  mailboxCount,
  mailboxEmptyP,
  processSend,
  type MailboxOptions,
  type MailboxReadOptions,
} from "./mailbox.js";
export { listAllProcesses, findProcessFromName, getCurrentProcess } from "./registry.js";
export { processWait } from "./wait.js";
export { processInterrupt } from "./interrupt.js";
