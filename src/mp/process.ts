import { ConfabError, ErrorCodes } from "../errors.js";
import { reportError } from "../report.js";
import { beginWait, endWait, kWait, waitText, type Wait, type Waiter } from "./wait-state.js";
import { Mailbox } from "./mailbox.js";
import { liveProcesses, processContext } from "./registry.js";

/** How a process stands: running, or how it ended. */
export type ProcessState = "running" | "finished" | "killed" | "failed";

/** Options of {@link processRunFunction}, the counterpart of LispWorks' keyword arguments. */
export interface ProcessKeywords {
  /** Arbitrary data to carry on the process (shown by tools such as the listener's `ps()`). */
  readonly properties?: Readonly<Record<string, unknown>>;
  /**
   * A mailbox of the process's own, as LispWorks' `:mailbox`: `true` makes one named after the
   * process (of the default size), a {@link Mailbox} is used as it is. It is `process.mailbox`, and
   * `processSend(process, value)` sends to it. Default: none.
   */
  readonly mailbox?: boolean | Mailbox;
}

/** Marks the process that owns a resource. */
export const kOwner: unique symbol = Symbol("confab.owner");
/** Closes a resource because its owning process was killed. */
export const kKill: unique symbol = Symbol("confab.kill");

/**
 * Something a process owns and closes when it is killed: a socket stream, a server's
 * listening socket. Implemented by confab's own classes; users rarely need it.
 */
export interface ProcessResource {
  /** The process that owns the resource now, if any (set by {@link Process.own}). */
  [kOwner]?: Process | undefined;
  /** Closes the resource because its owner was killed (or failed). */
  [kKill](): void;
}

let nextId = 1;
// A settled promise every new process's start is chained on, in its creator's async context.
const STARTED = Promise.resolve();
// Whether processContext has been entered once, which turns its async hooks on where it has any.
let contextTracked = false;
const NO_PROPERTIES: Readonly<Record<string, unknown>> = Object.freeze({});

// The server whose `function` is running: the processes it starts are its children.
let adoptingParent: Process | undefined;

/**
 * Runs `fn` so that processes it starts have `parent` as their parent, although it runs
 * outside any process (a server's `function`).
 * @internal
 */
export function runAsParentOf<A, T>(parent: Process, fn: (arg: A) => T, arg: A): T {
  const previous = adoptingParent;
  adoptingParent = parent;
  try {
    return fn(arg);
  } finally {
    adoptingParent = previous;
  }
}

type Start = (process: Process, fn: (...args: never[]) => unknown, args: readonly unknown[]) => void;

/**
 * Runs `fn(...args)` as the body of `process` at once, inside its async context, and records how
 * it ends (for the processes confab makes of its own classes: servers, the monitor). Not
 * exported by the package: users start processes with {@link processRunFunction}.
 * @internal
 */
export let startProcess: Start;
// Starts the process on the next microtask, in the caller's async context.
let startProcessSoon: Start;
// Kills the process (processKill is the public face).
let killProcess: (process: Process) => boolean;
/**
 * Resolves once `process` has ended, however it ended (never rejects). Not exported by the
 * package: users call {@link processJoin}.
 * @internal
 */
export let whenProcessEnded: (process: Process) => Promise<void>;
/**
 * Makes `watch` hear of every process whose parent is `process` when it ends (servers log how
 * their connections' processes ended). One watcher per process; not exported by the package.
 * @internal
 */
export let watchChildren: (process: Process, watch: (child: Process) => void) => void;
// Aborts the process's signal with `reason` without killing it (processTerminate).
let abortProcess: (process: Process, reason: Error) => boolean;

/**
 * A light-weight process: a named, cooperatively scheduled async task, as LispWorks' `mp:process`.
 *
 * Killing is prompt at the task's next `await`: JavaScript cannot pre-empt a synchronous
 * loop, so a process stuck in `while (true) {}` is only stopped by a time limit where one
 * applies (the listener's evaluation timeout).
 */
export class Process implements Waiter {
  /** @internal What the process waits for now (see `wait-state.ts`): one field, set per wait. */
  [kWait]: Wait | undefined = undefined;
  readonly #id: number = nextId++;
  readonly #name: string;
  readonly #properties: Readonly<Record<string, unknown>>;
  readonly #startedAt: number = Date.now();
  readonly #parent: Process | undefined;
  readonly #mailbox: Mailbox | undefined;
  #endedAt: number | undefined;
  #state: ProcessState = "running";
  #result: unknown;
  #error: unknown;

  // One resource is the common case (a connection's stream), so a Set is made only for more.
  #resource: ProcessResource | Set<ProcessResource> | undefined;
  // Made on demand: most processes are never joined and their signal never read.
  #abort: AbortController | undefined;
  #joiners: (() => void)[] | undefined;
  #childEnded: ((child: Process) => void) | undefined;

  static {
    // What other confab modules may do to a process, through functions of this module that
    // the package does not export (see startProcess, whenProcessEnded, processKill).
    startProcess = (process, fn, args) => {
      process.#start(fn, args);
    };
    startProcessSoon = (process, fn, args) => {
      process.#startSoon(fn, args);
    };
    killProcess = (process) => process.#kill();
    whenProcessEnded = (process) => process.#whenEnded();
    watchChildren = (process, watch) => {
      process.#childEnded = watch;
    };
    abortProcess = (process, reason) => {
      if (process.#state !== "running") return false;
      process.#abort ??= new AbortController();
      if (!process.#abort.signal.aborted) {
        try {
          process.#abort.abort(reason);
        } catch (error) {
          reportError(`an abort listener of process "${process.name}" threw`, error);
        }
      }
      return true;
    };
  }

  /** Not for users: use {@link processRunFunction}. */
  constructor(name: string, keywords?: ProcessKeywords) {
    this.#name = name;
    this.#properties = keywords?.properties ?? NO_PROPERTIES;
    this.#mailbox = mailboxOf(name, keywords?.mailbox);
    this.#parent = adoptingParent ?? processContext.getStore();
    liveProcesses.set(this.#id, this);
  }

  /** Unique, increasing id. */
  get id(): number {
    return this.#id;
  }

  /** The name given at start. Names need not be unique. */
  get name(): string {
    return this.#name;
  }

  /** Data given in `keywords.properties`. */
  get properties(): Readonly<Record<string, unknown>> {
    return this.#properties;
  }

  /** When the process started (milliseconds since the epoch). */
  get startedAt(): number {
    return this.#startedAt;
  }

  /**
   * The process that started this one: the process whose code called `processRunFunction`, or
   * the server whose `function` did. `undefined` for a process started from plain code.
   */
  get parent(): Process | undefined {
    return this.#parent;
  }

  /**
   * The process's own mailbox, given by `keywords.mailbox` (see `processSend`), or `undefined`.
   * It stays readable after the process ends; `processSend` then refuses to send to it.
   */
  get mailbox(): Mailbox | undefined {
    return this.#mailbox;
  }

  /** When it ended, or `undefined` while running. */
  get endedAt(): number | undefined {
    return this.#endedAt;
  }

  /** running, finished, killed or failed. */
  get state(): ProcessState {
    return this.#state;
  }

  /** What the function returned (after awaiting), once finished. */
  get result(): unknown {
    return this.#result;
  }

  /** What the function threw or rejected with, once failed. */
  get error(): unknown {
    return this.#error;
  }

  /** Aborts when the process is killed; pass it to APIs that accept an `AbortSignal`. */
  get signal(): AbortSignal {
    this.#abort ??= new AbortController();
    if (this.#state === "killed" && !this.#abort.signal.aborted) this.#abort.abort(killedReason(this));
    return this.#abort.signal;
  }

  /**
   * What the process is waiting for, as LispWorks' `process-whostate`: a short text while it
   * waits in one of confab's waits (`Waiting for input from 127.0.0.1:5000`,
   * `Finishing output to ...`, `Waiting for process 7 "worker" to end`, a mailbox read, a
   * `processWait` reason, a listener's `Evaluating input 3 for 2.5 s`), `null` otherwise.
   */
  get whostate(): string | null {
    return this.#state === "running" ? waitText(this[kWait]) : null;
  }

  /** `true` while the process runs. */
  get alive(): boolean {
    return this.#state === "running";
  }

  /** Milliseconds since start (until the end, once ended). */
  get age(): number {
    return (this.#endedAt ?? Date.now()) - this.#startedAt;
  }

  /** What the process owns now (its streams, a server's listening socket): closed if it is killed. */
  get resources(): readonly ProcessResource[] {
    const held = this.#resource;
    return held === undefined ? [] : held instanceof Set ? [...held] : [held];
  }

  /**
   * Makes this process own `resource`, so that killing the process closes it. A resource
   * owned by another process moves here. Owning anything after the process ended closes it
   * at once if the process was killed.
   */
  own(resource: ProcessResource): void {
    const previous = resource[kOwner];
    if (previous === this) return;
    previous?.disown(resource);
    resource[kOwner] = this;
    if (this.#state === "killed") {
      resource[kKill]();
      return;
    }
    const held = this.#resource;
    if (held === undefined) this.#resource = resource;
    else if (held instanceof Set) held.add(resource);
    else this.#resource = new Set([held, resource]);
  }

  /** Stops owning `resource` (it is being closed, or handed elsewhere). */
  disown(resource: ProcessResource): void {
    if (resource[kOwner] !== this) return;
    resource[kOwner] = undefined;
    const held = this.#resource;
    if (held === resource) this.#resource = undefined;
    else if (held instanceof Set) held.delete(resource);
  }

  /** Runs `fn` inside this process's async context and records how it ends. */
  #start(fn: (...args: never[]) => unknown, args: readonly unknown[]): void {
    if (this.#state !== "running") return; // killed before it got to run
    try {
      processContext.run(this, Process.#body, this, fn as (...a: unknown[]) => unknown, args);
    } catch (error) {
      this.#fail(error);
    }
    contextTracked = true;
  }

  /**
   * Starts the process from a promise reaction made for it alone: the reaction's async context
   * becomes the process's with `enterWith`, which lasts until the reaction returns. `run`
   * would also build a context to restore afterwards, which on Node 24 is a second `Map` per
   * process, copied entry by entry.
   */
  #startInOwnReaction(fn: (...args: unknown[]) => unknown, args: readonly unknown[]): void {
    if (this.#state !== "running") return; // killed before it got to run
    try {
      processContext.enterWith(this);
      Process.#body(this, fn, args);
    } catch (error) {
      this.#fail(error);
    }
  }

  /** Starts the process on the next microtask, in the caller's async context. */
  #startSoon(fn: (...args: never[]) => unknown, args: readonly unknown[]): void {
    // A promise reaction rather than queueMicrotask, which makes an AsyncResource per call
    // while AsyncLocalStorage is in use. Where AsyncLocalStorage rests on async_hooks (Node 20,
    // 22), a reaction has a context of its own only if the hooks were on when it was made;
    // until then the process starts with `run`, which puts the old context back.
    const ownContext = contextTracked;
    void STARTED.then(() => {
      if (ownContext) this.#startInOwnReaction(fn as (...a: unknown[]) => unknown, args);
      else this.#start(fn, args);
    });
  }

  static #body(process: Process, fn: (...args: unknown[]) => unknown, args: readonly unknown[]): void {
    const outcome = fn(...args);
    if (outcome instanceof Promise) {
      // Registered inside the process's context, so the callbacks find the process there:
      // two shared functions instead of two closures per process.
      outcome.then(Process.#finishCurrent, Process.#failCurrent);
    } else if (isThenable(outcome)) {
      outcome.then(
        (value) => {
          process.#finish(value);
        },
        (error: unknown) => {
          process.#fail(error);
        },
      );
    } else {
      process.#finish(outcome);
    }
  }

  static #finishCurrent(value: unknown): void {
    const process = processContext.getStore();
    if (process !== undefined) process.#finish(value);
  }

  static #failCurrent(error: unknown): void {
    const process = processContext.getStore();
    if (process !== undefined) process.#fail(error);
  }

  /** See {@link processKill}. */
  #kill(): boolean {
    if (this.#state !== "running") return false;
    this.#state = "killed";
    this.#end();
    if (this.#abort !== undefined) {
      try {
        this.#abort.abort(killedReason(this));
      } catch (error) {
        reportError(`an abort listener of process "${this.name}" threw`, error);
      }
    }
    this.#closeResources();
    return true;
  }

  #closeResources(): void {
    const held = this.resources;
    this.#resource = undefined;
    for (const resource of held) {
      resource[kOwner] = undefined;
      try {
        resource[kKill]();
      } catch (error) {
        reportError(`closing a resource of ${this.state} process "${this.name}"`, error);
      }
    }
  }

  /** Resolves once the process has ended. */
  #whenEnded(): Promise<void> {
    if (this.#state !== "running") return Promise.resolve();
    return new Promise((resolve) => {
      (this.#joiners ??= []).push(resolve);
    });
  }

  #finish(value: unknown): void {
    if (this.#state !== "running") return;
    this.#state = "finished";
    this.#result = value;
    // What it still owns is released, not closed: a process may make a stream for another to
    // use. The next process that uses it owns it.
    const held = this.#resource;
    this.#resource = undefined;
    if (held instanceof Set) for (const resource of held) resource[kOwner] = undefined;
    else if (held !== undefined) held[kOwner] = undefined;
    this.#end();
  }

  #fail(error: unknown): void {
    if (this.#state !== "running") return; // a killed process's last await may reject: not news
    if (this.#abort?.signal.aborted === true && error === this.#abort.signal.reason) {
      // Ended by the termination it was asked for (it threw its signal's reason): not a failure.
      this.#state = "killed";
      this.#closeResources();
      this.#end();
      return;
    }
    this.#state = "failed";
    this.#error = error;
    // A crashed connection process must not leave its connection open for ever.
    this.#closeResources();
    this.#end();
    reportError(`process "${this.name}" failed`, error);
  }

  #end(): void {
    this.#endedAt = Date.now();
    liveProcesses.delete(this.#id);
    const joiners = this.#joiners;
    this.#joiners = undefined;
    if (joiners !== undefined) for (const wake of joiners) wake();
    const parent = this.#parent;
    const watch = parent === undefined ? undefined : parent.#childEnded;
    if (watch !== undefined) {
      try {
        watch(this);
      } catch (error) {
        reportError(`process "${parent?.name}" handling the end of "${this.#name}"`, error);
      }
    }
  }
}

/** The mailbox that `keywords.mailbox` asks for: a new one named `name`, the one given, or none. */
function mailboxOf(name: string, wanted: boolean | Mailbox | undefined): Mailbox | undefined {
  if (wanted === undefined || wanted === false) return undefined;
  if (wanted === true) return new Mailbox({ name });
  // Plain JavaScript may pass what LispWorks would take (a name string): say so rather than keep it.
  if (!(wanted instanceof Mailbox)) {
    throw new ConfabError(
      ErrorCodes.INVALID_ARGUMENT,
      `a process's mailbox keyword is true, false or a Mailbox (from makeMailbox): got ${typeof wanted}`,
    );
  }
  return wanted;
}

function killedReason(p: Process): Error {
  const error = new Error(`process ${p.id} "${p.name}" was killed`);
  error.name = "AbortError";
  return error;
}

/** @internal Whether `value` can be awaited like a promise (has a callable `then`). */
export function isThenable(value: unknown): value is PromiseLike<unknown> {
  return (
    value !== null &&
    (typeof value === "object" || typeof value === "function") &&
    typeof (value as { then?: unknown }).then === "function"
  );
}

function isUnownedResource(value: unknown): value is ProcessResource {
  return (
    typeof value === "object" && value !== null && kKill in value && (value as ProcessResource)[kOwner] === undefined
  );
}

/**
 * Starts `fn(...args)` as a new light-weight process named `name` and returns the process at
 * once, as LispWorks' `mp:process-run-function`. The function starts on the next microtask.
 *
 * A resource made outside any process and passed here in `args` (such as the stream a
 * server's `function` makes) becomes the new process's, so killing the process closes it.
 * What the function throws or rejects with is recorded on the process and reported once;
 * it never becomes an unhandled rejection.
 *
 * @example
 * ```ts
 * const p = mp.processRunFunction("ticker", {}, async (n: number) => {
 *   for (let i = 0; i < n; i++) await new Promise((r) => setTimeout(r, 100));
 *   return n;
 * }, 5);
 * await mp.processJoin(p); // p.result === 5
 * ```
 */
export function processRunFunction<A extends unknown[]>(
  name: string,
  keywords: ProcessKeywords | undefined,
  fn: (...args: A) => unknown,
  ...args: A
): Process {
  const process = new Process(name, keywords);
  for (const arg of args) if (isUnownedResource(arg)) process.own(arg);
  startProcessSoon(process, fn, args);
  return process;
}

/**
 * Kills `process`, as `mp:process-kill`: its `signal` aborts, everything it owns is closed
 * (as it is when a process fails; a process that finishes normally only lets go of what it owns)
 * (pending reads on its streams settle with end of file), and its state becomes `killed`.
 * Returns `true` if it was running.
 */
export function processKill(process: Process): boolean {
  return killProcess(process);
}

/**
 * Resolves `true` once `process` has ended (finished, killed or failed), or `false` if
 * `timeout` milliseconds pass first. Never rejects: read the outcome from the process.
 */
export async function processJoin(process: Process, options?: { timeout?: number }): Promise<boolean> {
  const ended = whenProcessEnded(process);
  const timeout = options?.timeout;
  const waiter = processContext.getStore();
  if (waiter === undefined || !process.alive) return joined(ended, timeout);
  const wait = `Waiting for process ${process.id} "${process.name}" to end`;
  const previous = beginWait(waiter, wait);
  try {
    return await joined(ended, timeout);
  } finally {
    endWait(waiter, wait, previous);
  }
}

async function joined(ended: Promise<void>, timeout: number | undefined): Promise<boolean> {
  if (timeout === undefined || !Number.isFinite(timeout)) {
    await ended;
    return true;
  }
  let timer: NodeJS.Timeout | undefined;
  const timedOut = new Promise<boolean>((resolve) => {
    timer = setTimeout(resolve, Math.max(0, timeout), false);
  });
  try {
    return await Promise.race([ended.then(() => true), timedOut]);
  } finally {
    clearTimeout(timer);
  }
}

/** `true` while `process` runs, as `mp:process-alive-p`. */
export function processAliveP(process: Process): boolean {
  return process.alive;
}

/**
 * Ends `process` gracefully, as LispWorks 7's `mp:process-terminate` (the successor of
 * `process-kill`): its `signal` aborts with a termination reason (an `AbortError` saying so)
 * and the process gets `joinTimeout` ms (default 5000) to end by itself: its `finally` blocks
 * run, and a stream it closes still sends what it had buffered. If it has not ended by then,
 * what it owns is closed as {@link processKill} closes it. A process that ends by throwing its
 * signal's reason counts as killed, not failed. Resolves `true` once the process has ended, or
 * `false` at once if it had ended already.
 *
 * @example
 * ```ts
 * const worker = mp.processRunFunction("worker", {}, async () => {
 *   const { signal } = mp.getCurrentProcess()!;
 *   try { while (!signal.aborted) await step(); } finally { await flushState(); }
 * });
 * await mp.processTerminate(worker, { joinTimeout: 2000 });
 * ```
 */
export async function processTerminate(process: Process, options?: { joinTimeout?: number }): Promise<boolean> {
  const reason = new Error(`process ${process.id} "${process.name}" is being terminated`);
  reason.name = "AbortError";
  if (!abortProcess(process, reason)) return false;
  if (!(await processJoin(process, { timeout: options?.joinTimeout ?? DEFAULT_JOIN_TIMEOUT_MS }))) {
    processKill(process);
    await whenProcessEnded(process);
  }
  return true;
}

/** How long {@link processTerminate} lets a process end by itself, by default. */
export const DEFAULT_JOIN_TIMEOUT_MS = 5000;
