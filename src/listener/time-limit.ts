/**
 * The listener's time limit on code typed at it, without a watchdog thread per input.
 *
 * `vm`'s `timeout` starts (and joins) a thread for every call: 100–180 µs an input, more than
 * the rest of the input's round trip. Instead, the evaluator compiles a call to
 * {@link timeCheck} into every loop body and every function body of the code it is given
 * (see `evaluator-compile.ts`), and runs that code's synchronous part, the printing of its
 * value and Tab completion inside {@link withinTimeLimit}. A check outside a limited section
 * costs a decrement; inside one it looks at the clock every so often and, once the limit has
 * passed, throws an `ERR_EVAL_TIMEOUT` error, and so does every later check until the section
 * ends, so a `catch` in the user's loop cannot keep it going.
 *
 * What this cannot stop: the program's own functions (they carry no checks: a `while (true)`
 * in the host's code is beyond any REPL, and stopping host code half-way would leave its data
 * half-changed), and code the checks cannot see (`eval`, `new Function`, regular
 * expressions). For inputs that use those, the evaluator falls back to `vm`'s watchdog.
 * @module
 */
import { performance } from "node:perf_hooks";
import { ConfabError, ErrorCodes } from "../errors.js";

// The largest number of checks between two looks at the clock; a look costs ~30 ns.
const MAX_BATCH = 1 << 14;
// Looks at the clock are made further apart while they come faster than this (ms).
const FAST_LOOK_MS = 0.25;

/** When the running limited section must end (performance.now() ms); Infinity outside one. */
let deadline = Infinity;
/** What the running section is and its limit, for the error message. */
let section = { what: "evaluation", limit: 0 };
let countdown = MAX_BATCH;
let batch = 1;
let lastLook = 0;

/**
 * Called by compiled user code at each loop iteration and function entry. Throws
 * `ERR_EVAL_TIMEOUT` once the running limited section is past its limit.
 */
export function timeCheck(): void {
  if (--countdown >= 0) return;
  look();
}

function look(): void {
  if (deadline === Infinity) {
    countdown = MAX_BATCH;
    return;
  }
  const now = performance.now();
  if (now >= deadline) {
    countdown = 0; // every further check looks again, and throws
    throw timeoutError(section.what, section.limit);
  }
  // Space the looks by how fast checks come: many cheap iterations get a big batch, a loop
  // whose body calls slow code is looked at on every check.
  batch = now - lastLook < FAST_LOOK_MS ? Math.min(batch * 2, MAX_BATCH) : Math.max(1, batch >> 2);
  lastLook = now;
  countdown = batch;
}

/** The error a limited section ends with: `evaluation timed out after 100 ms (...)`. */
export function timeoutError(what: string, limit: number, cause?: unknown): ConfabError {
  const error = new ConfabError(
    ErrorCodes.EVAL_TIMEOUT,
    `${what} timed out after ${String(limit)} ms (the listener's timeout option)`,
    cause === undefined ? undefined : { cause },
  );
  // Where the clock was looked at says nothing about where the user's code was.
  error.stack = `${error.name}: ${error.message}`;
  return error;
}

/**
 * Runs `fn` with the checks compiled into user code armed: after `limit` ms they throw.
 * `limit` `undefined` runs `fn` without a limit. Sections nest (the inner one's limit applies
 * until it returns). `what` names the work in the error's message ("evaluation", "printing").
 */
export function withinTimeLimit<T>(limit: number | undefined, what: string, fn: () => T): T {
  if (limit === undefined) return fn();
  const outer = { deadline, section };
  const now = performance.now();
  deadline = now + limit;
  section = { what, limit };
  lastLook = now;
  batch = 1;
  countdown = 1;
  try {
    return fn();
  } finally {
    deadline = outer.deadline;
    section = outer.section;
    countdown = deadline === Infinity ? MAX_BATCH : 1;
  }
}
