/**
 * Errors that code typed at a listener leaves behind: a promise it rejected and dropped, a timer
 * or a socket callback of its that threw. In Node they are fatal to the whole program; a typo at
 * a REPL inside a production service must not be.
 *
 * How one is told from the program's own: by async context. Code a listener evaluates runs in
 * its session's process, and Node carries that context into the promises, timers, callbacks and
 * sockets the code makes (`AsyncLocalStorage`), also into the `uncaughtException` event it
 * raises for them (and for unhandled rejections, which the default `--unhandled-rejections=throw`
 * turns into uncaught exceptions). An error raised in the context of a listener's process, or of
 * a process it started, is shown in that session ("Uncaught ...") or, once the session has
 * ended, reported with the session's name; the program lives on. Any other error gets Node's
 * default: the error on standard error and exit code 1, unless the program has an
 * `uncaughtException` handler of its own, which then decides, as it would without confab.
 * @module
 */
import { writeSync } from "node:fs";
import { inspect } from "node:util";
import { reportError } from "../report.js";
import type { Process } from "../mp/process.js";
import { getCurrentProcess } from "../mp/registry.js";

/** Shows a stray error in its session; returns `false` when the session can no longer show it. */
export type StrayErrorSink = (error: unknown) => boolean;

const sinks = new WeakMap<Process, StrayErrorSink>();
let installed = false;

/**
 * Sends the stray errors of `session`'s code (and of the processes it starts) to `sink`, from
 * now on. Installs the one process-wide handler on first use; it stays, since code of an
 * ended session can still fail later.
 */
export function catchStrayErrors(session: Process, sink: StrayErrorSink): void {
  sinks.set(session, sink);
  if (installed) return;
  installed = true;
  process.on("uncaughtException", onUncaught);
}

function onUncaught(error: unknown, origin: NodeJS.UncaughtExceptionOrigin): void {
  for (let p = getCurrentProcess(); p !== undefined; p = p.parent) {
    const sink = sinks.get(p);
    if (sink === undefined) continue;
    let shown = false;
    try {
      shown = sink(error);
    } catch {
      // a session that cannot show it: reported below
    }
    if (!shown) reportError(`listener "${p.name}" (session ended): uncaught error from code it evaluated`, error);
    return;
  }
  // The program's own error. Its own handlers decide, if it has any; else Node's default.
  if (process.listenerCount("uncaughtException") > 1) return;
  crashAsNodeWould(error, origin);
}

function crashAsNodeWould(error: unknown, origin: NodeJS.UncaughtExceptionOrigin): void {
  const text =
    origin === "unhandledRejection" && !(error instanceof Error)
      ? "[UnhandledPromiseRejection: This error originated either by throwing inside of an async function without a catch block, " +
        `or by rejecting a promise which was not handled with .catch(). The promise rejected with the reason "${inspect(error)}".] ` +
        "{\n  code: 'ERR_UNHANDLED_REJECTION'\n}"
      : inspect(error);
  try {
    writeSync(2, `${text}\n\nNode.js ${process.version}\n`);
  } catch {
    // standard error is gone: the exit code still tells
  }
  process.exit(1);
}
