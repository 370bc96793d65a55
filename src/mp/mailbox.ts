/**
 * Mailboxes, after LispWorks' `mp:make-mailbox`: queues of values that processes send each other,
 * read with a promise that waits for the next value.
 *
 * Values come out in the order they were sent, each to exactly one reader, and readers that wait
 * are served in the order they started waiting. A mailbox holds at most `size` values (65,536
 * unless told): sending to a full one throws `ERR_MAILBOX_FULL` instead of waiting, as LispWorks'
 * `mailbox-send` never blocks, so memory stays bounded and the sender decides what to do. A read
 * that waits gives up when its `timeout` passes (`ERR_TIMEOUT`) or when the process reading is
 * killed (`ERR_PROCESS_KILLED`); either way it leaves the mailbox at once, so a value sent later
 * goes to a reader that is still there, never to one that has gone.
 *
 * @example
 * ```ts
 * import { mp } from "confab";
 * const replies = mp.makeMailbox<number>({ name: "replies" });
 * const doubler = mp.processRunFunction("doubler", { mailbox: true }, async () => {
 *   const inbox = mp.getCurrentProcess()?.mailbox;
 *   if (inbox === undefined) return;
 *   for (;;) mp.mailboxSend(replies, 2 * Number(await mp.mailboxRead(inbox)));
 * });
 * mp.processSend(doubler, 21);
 * await mp.mailboxRead(replies, { timeout: 1000 }); // 42
 * ```
 * @module
 */
import { ConfabError, ErrorCodes } from "../errors.js";
import type { Process } from "./process.js";
import { getCurrentProcess } from "./registry.js";
import { beginWait, endWait, type Wait } from "./wait-state.js";

/** Options of {@link makeMailbox}. */
export interface MailboxOptions {
  /** A name for messages and wait reasons. Names need not be unique. Default: none. */
  readonly name?: string;
  /**
   * The most values the mailbox holds at once: a whole number, 0 or more, or `Infinity` for no
   * bound. Default 65,536. Sending to a full mailbox throws `ERR_MAILBOX_FULL`; a mailbox of size 0
   * only hands values to readers already waiting.
   */
  readonly size?: number;
}

/** Options of {@link mailboxRead}. */
export interface MailboxReadOptions {
  /**
   * Milliseconds to wait for a value; when they pass first the read rejects with `ERR_TIMEOUT`.
   * `0` takes a value only if one is there. Default: wait for as long as it takes.
   */
  readonly timeout?: number;
  /**
   * What the reading process is doing while it waits, for tools that show it (`whostate`).
   * Default `Waiting for a value from mailbox "NAME"`.
   */
  readonly waitReason?: string;
}

/** How many values a mailbox holds unless `size` says otherwise. */
const DEFAULT_SIZE = 65_536;
// setTimeout's longest delay (2^31 - 1 ms, about 24.8 days): a longer one would fire at once.
const MAX_TIMER_DELAY = 2_147_483_647;
// A queue read this far (and half through) is copied down, so that a mailbox that is never quite
// empty does not keep a slot for every value it ever held.
const COMPACT_AFTER = 1024;

/**
 * A read waiting for a value: it is in its mailbox's readers from `Mailbox.#wait` to
 * `Mailbox.#endWait`, and in its process's {@link KillWatch} for as long.
 */
interface WaitingRead<T> {
  readonly mailbox: Mailbox<T>;
  /** The process that reads, if the read was made inside one: killing it ends the wait. */
  readonly process: Process | undefined;
  /** What the process is waiting for (the read's `waitReason`), for `whostate`. */
  readonly reason: string;
  /** The process's wait before this one (put back when this one ends). */
  previous?: Wait | undefined;
  /** The read's `timeout`, in milliseconds (`Infinity` for none). */
  readonly timeout: number;
  /** The timer of the timeout, while one is armed. */
  timer: NodeJS.Timeout | undefined;
  /** Milliseconds of the timeout left after the armed timer (timeouts longer than a timer can run). */
  rest: number;
  // Method signatures, so that a read of any mailbox fits a process's KillWatch.
  deliver(value: T): void;
  fail(error: ConfabError): void;
}

/**
 * One abort listener on a process's signal for all the reads it waits on (it may await several
 * at once): an `AbortSignal` warns past ten listeners, and one is as easy to remove as many.
 */
interface KillWatch {
  readonly reads: Set<WaitingRead<unknown>>;
  readonly onAbort: () => void;
}

// Only processes waiting now are here; a watch goes as soon as its last read ends.
const killWatches = new WeakMap<Process, KillWatch>();

// What the module functions do to a mailbox's private state (see the static block).
let send: <T>(mailbox: Mailbox<T>, value: T) => void;
let read: <T>(mailbox: Mailbox<T>, options: MailboxReadOptions | undefined) => Promise<T>;
let peek: <T>(mailbox: Mailbox<T>) => T | undefined;
let count: <T>(mailbox: Mailbox<T>) => number;

/**
 * A mailbox, as LispWorks' `mp:mailbox`: a first-in first-out queue of values of type `T`. Made by
 * {@link makeMailbox}, used through {@link mailboxSend}, {@link mailboxRead}, {@link mailboxPeek},
 * {@link mailboxCount} and {@link mailboxEmptyP}; the object itself only tells its name and size.
 */
export class Mailbox<T = unknown> {
  readonly #name: string | undefined;
  readonly #size: number;
  // The values not yet read are #values[#head] onwards; the slots before #head are emptied.
  #values: (T | undefined)[] = [];
  #head = 0;
  // Reads waiting for a value, oldest first: a Set keeps insertion order and deletes in O(1), so a
  // read that gives up leaves at once. Never holds a read while the mailbox holds a value.
  readonly #readers = new Set<WaitingRead<T>>();

  static {
    send = (mailbox, value) => {
      mailbox.#send(value);
    };
    read = (mailbox, options) => mailbox.#read(options);
    peek = (mailbox) => (mailbox.#count() > 0 ? mailbox.#values[mailbox.#head] : undefined);
    count = (mailbox) => mailbox.#count();
  }

  /** The same as {@link makeMailbox}`(options)`. Throws `ERR_INVALID_ARGUMENT` for a size that is not one. */
  constructor(options?: MailboxOptions) {
    const size = options?.size ?? DEFAULT_SIZE;
    if (size !== Infinity && !(Number.isInteger(size) && size >= 0)) {
      throw new ConfabError(
        ErrorCodes.INVALID_ARGUMENT,
        `a mailbox's size is a whole number of values, 0 or more, or Infinity: got ${String(size)}`,
      );
    }
    this.#name = options?.name;
    this.#size = size;
  }

  /** The name given to {@link makeMailbox}, or `undefined`. A process's own mailbox has the process's name. */
  get name(): string | undefined {
    return this.#name;
  }

  /** The most values it holds at once (`Infinity` if unbounded). */
  get size(): number {
    return this.#size;
  }

  #count(): number {
    return this.#values.length - this.#head;
  }

  #send(value: T): void {
    // The oldest waiting reader, if any, gets the value at once: a waiting reader means no value waits.
    for (const reader of this.#readers) {
      this.#endWait(reader);
      reader.deliver(value);
      return;
    }
    if (this.#count() >= this.#size) {
      const size = this.#size;
      throw new ConfabError(
        ErrorCodes.MAILBOX_FULL,
        `${describe(this)} is full: it holds ${size} value${size === 1 ? "" : "s"}, its size, and none can be sent until one is read`,
      );
    }
    this.#values.push(value);
  }

  #take(): T {
    const head = this.#head;
    const value = this.#values[head] as T;
    this.#values[head] = undefined; // let the value go
    this.#head = head + 1;
    if (this.#head === this.#values.length) {
      this.#values = [];
      this.#head = 0;
    } else if (this.#head >= COMPACT_AFTER && this.#head * 2 >= this.#values.length) {
      this.#values = this.#values.slice(this.#head);
      this.#head = 0;
    }
    return value;
  }

  #read(options: MailboxReadOptions | undefined): Promise<T> {
    const timeout = options?.timeout ?? Infinity;
    if (!(timeout >= 0)) {
      return Promise.reject(
        new ConfabError(
          ErrorCodes.INVALID_ARGUMENT,
          `mailboxRead's timeout is 0 or more milliseconds, or Infinity: got ${String(timeout)}`,
        ),
      );
    }
    const reader = getCurrentProcess();
    // A process being killed takes nothing more: the value would be lost with it.
    if (reader?.signal.aborted === true) return Promise.reject(killedError(reader, this, reader.signal.reason));
    if (this.#count() > 0) return Promise.resolve(this.#take());
    if (timeout === 0) return Promise.reject(timeoutError(this, 0));
    const reason = options?.waitReason ?? `Waiting for a value from ${describe(this)}`;
    return new Promise<T>((resolve, reject) => {
      this.#wait({
        mailbox: this,
        process: reader,
        reason,
        timeout,
        timer: undefined,
        rest: timeout,
        deliver: resolve,
        fail: reject,
      });
    });
  }

  /**
   * Where a read starts waiting (the place to set the reader's `whostate` to `read.reason`): it
   * joins the readers, its timeout is armed and its process's kill ends it.
   */
  #wait(read: WaitingRead<T>): void {
    this.#readers.add(read);
    if (read.process !== undefined) read.previous = beginWait(read.process, read.reason);
    if (read.rest !== Infinity) Mailbox.#armTimer(read);
    if (read.process !== undefined) Mailbox.#watchKill(read.process, read);
  }

  /**
   * Where a read stops waiting, however it ends (a value, its timeout, its process killed), before
   * its promise settles (the place to clear the reader's `whostate`). Each read ends once.
   */
  #endWait(read: WaitingRead<T>): void {
    this.#readers.delete(read);
    if (read.process !== undefined) endWait(read.process, read.reason, read.previous);
    clearTimeout(read.timer);
    read.timer = undefined;
    if (read.process !== undefined) Mailbox.#unwatchKill(read.process, read);
  }

  static #armTimer<T>(read: WaitingRead<T>): void {
    const delay = Math.min(read.rest, MAX_TIMER_DELAY);
    read.rest -= delay;
    read.timer = setTimeout(Mailbox.#timerFired, delay, read);
  }

  static #timerFired<T>(read: WaitingRead<T>): void {
    if (read.rest > 0) {
      Mailbox.#armTimer(read);
      return;
    }
    const mailbox = read.mailbox;
    mailbox.#endWait(read);
    read.fail(timeoutError(mailbox, read.timeout));
  }

  static #watchKill<T>(process: Process, read: WaitingRead<T>): void {
    const watch = killWatches.get(process);
    if (watch !== undefined) {
      watch.reads.add(read);
      return;
    }
    const signal = process.signal;
    const reads = new Set<WaitingRead<unknown>>([read]);
    const onAbort = (): void => {
      for (const waiting of [...reads]) {
        waiting.mailbox.#endWait(waiting);
        waiting.fail(killedError(process, waiting.mailbox, signal.reason));
      }
    };
    killWatches.set(process, { reads, onAbort });
    signal.addEventListener("abort", onAbort, { once: true });
  }

  static #unwatchKill<T>(process: Process, read: WaitingRead<T>): void {
    const watch = killWatches.get(process);
    if (watch === undefined || !watch.reads.delete(read) || watch.reads.size > 0) return;
    killWatches.delete(process);
    process.signal.removeEventListener("abort", watch.onAbort);
  }
}

/** `mailbox "NAME"`, or `a mailbox` for one without a name. */
function describe(mailbox: Mailbox): string {
  const name = mailbox.name;
  return name === undefined ? "a mailbox" : `mailbox ${JSON.stringify(name)}`;
}

function timeoutError(mailbox: Mailbox, timeout: number): ConfabError {
  const what = timeout === 0 ? "was empty" : `had no value for ${timeout} ms`;
  return new ConfabError(ErrorCodes.TIMEOUT, `${describe(mailbox)} ${what}: mailboxRead timed out`);
}

function killedError(process: Process, mailbox: Mailbox, reason: unknown): ConfabError {
  return new ConfabError(
    ErrorCodes.PROCESS_KILLED,
    `process ${process.id} ${JSON.stringify(process.name)} was killed while reading ${describe(mailbox)}`,
    { cause: reason },
  );
}

/**
 * Makes a mailbox, as LispWorks' `mp:make-mailbox`. `size` bounds how many values it holds
 * (65,536 unless told, `Infinity` for no bound; in LispWorks `:size` is only a first allocation).
 *
 * @example
 * ```ts
 * const jobs = mp.makeMailbox<string>({ name: "jobs", size: 100 });
 * mp.mailboxSend(jobs, "first");
 * await mp.mailboxRead(jobs); // "first"
 * ```
 */
export function makeMailbox<T = unknown>(options?: MailboxOptions): Mailbox<T> {
  return new Mailbox<T>(options);
}

/**
 * Sends `value` to `mailbox`, as `mp:mailbox-send`, and returns at once: the oldest reader
 * waiting gets it, or it waits in the mailbox behind the values sent before it.
 *
 * Throws a `ConfabError` with code `ERR_MAILBOX_FULL`, naming the mailbox and its size, when the
 * mailbox already holds `size` values: a send never waits (as in LispWorks), so a reader that
 * falls behind costs bounded memory and the sender chooses whether to drop, retry or give up.
 */
export function mailboxSend<T>(mailbox: Mailbox<T>, value: T): void {
  send(mailbox, value);
}

/**
 * Resolves to the oldest value in `mailbox` not yet read, taking it out, as `mp:mailbox-read`;
 * waits for one to be sent if it is empty. Each value goes to one reader only, and waiting
 * readers are served in the order they started to wait.
 *
 * Rejects with a `ConfabError`:
 * - `ERR_TIMEOUT` when `options.timeout` ms pass first (a `timeout` of 0 only takes a value that
 *   is there);
 * - `ERR_PROCESS_KILLED` (the kill's reason as `cause`) when the process reading (the current
 *   process) is killed while it waits, or was killed already; the read ends at once and takes
 *   nothing, so the next value goes to the next reader;
 * - `ERR_INVALID_ARGUMENT` for a negative or NaN `timeout`.
 *
 * @example
 * ```ts
 * const value = await mp.mailboxRead(inbox, { timeout: 5000, waitReason: "Waiting for a job" });
 * ```
 */
export function mailboxRead<T>(mailbox: Mailbox<T>, options?: MailboxReadOptions): Promise<T> {
  return read(mailbox, options);
}

/**
 * The oldest value in `mailbox`, left there, or `undefined` if it is empty, as `mp:mailbox-peek`.
 * A value that is itself `undefined` looks the same: ask {@link mailboxEmptyP} to tell them apart.
 */
export function mailboxPeek<T>(mailbox: Mailbox<T>): T | undefined {
  return peek(mailbox);
}

/** How many values `mailbox` holds (sent and not yet read), as `mp:mailbox-count`. */
export function mailboxCount(mailbox: Mailbox): number {
  return count(mailbox);
}

/** `true` if `mailbox` holds no value, as `mp:mailbox-empty-p`. */
export function mailboxEmptyP(mailbox: Mailbox): boolean {
  return count(mailbox) === 0;
}

/**
 * Sends `value` to the mailbox of `process`, as `mp:process-send`: the mailbox it was given by
 * `processRunFunction(name, { mailbox: true }, fn)`. Returns at once.
 *
 * Throws a `ConfabError`: `ERR_INVALID_ARGUMENT` if the process has no mailbox, `ERR_PROCESS_ENDED`
 * if it has ended (nothing would read the value), and `ERR_MAILBOX_FULL` as {@link mailboxSend}.
 */
export function processSend(process: Process, value: unknown): void {
  const mailbox = process.mailbox;
  const who = `process ${process.id} ${JSON.stringify(process.name)}`;
  if (mailbox === undefined) {
    throw new ConfabError(
      ErrorCodes.INVALID_ARGUMENT,
      `${who} has no mailbox: start it with processRunFunction(name, { mailbox: true }, fn)`,
    );
  }
  if (!process.alive) {
    throw new ConfabError(
      ErrorCodes.PROCESS_ENDED,
      `${who} has ended (${process.state}): nothing would read its mailbox`,
    );
  }
  send(mailbox, value);
}
