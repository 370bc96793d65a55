/**
 * What a listener session reads from its client. The session's stream is read on while an input is
 * being evaluated, so that an interrupt, or the end of the connection, is heard at once rather than
 * after an input that may never settle. Lines that arrive meanwhile wait here, up to a bound; past
 * it the stream is no longer read, and the socket's own flow control holds the client back.
 * @module
 */
import type { SocketStream } from "../comm/socket-stream.js";
import { isInterruptRequest } from "./structured-protocol.js";

/**
 * The interrupt, on the wire: a line holding just ETX (U+0003, what Ctrl-C types), as
 * `printf '\003\n'` sends. While an input is evaluated it abandons that input; otherwise it drops
 * a multi-line input in progress.
 */
export const INTERRUPT_LINE = "\u0003";

/** What the session is told as it happens, whatever it is waiting for. */
export interface SessionInputEvents {
  /**
   * An interrupt line arrived (the line, for a structured request that may name its input);
   * return `true` if it was taken (an input was running): lines waiting behind it are dropped.
   */
  interrupt(line: string): boolean;
  /** The connection's input ended (end of file, reset, the stream closed), on a later turn of the event loop. */
  ended(): void;
}

/** The session's line reader: see the module's comment. */
export class SessionInput {
  readonly #stream: SocketStream;
  readonly #maxQueued: number;
  readonly #events: SessionInputEvents;
  #queue: string[] = [];
  #head = 0;
  #queuedChars = 0;
  #waiter: ((line: string | null) => void) | undefined;
  #reading = false;
  #done = false;
  #endedTold = false;
  #failure: Error | undefined;
  #structured = false;

  /** Starts reading `stream` at once; at most about `maxQueued` characters wait unread. */
  constructor(stream: SocketStream, maxQueued: number, events: SessionInputEvents) {
    this.#stream = stream;
    this.#maxQueued = maxQueued;
    this.#events = events;
    void this.#pump();
  }

  /** `true` once {@link SessionInputEvents.ended} has been told. */
  get ended(): boolean {
    return this.#endedTold;
  }

  /** `true` when another line is already here or on its way in (more input is buffered): a paste, not a person typing. */
  get more(): boolean {
    return this.#head < this.#queue.length || this.#stream.listen();
  }

  /**
   * From now on the session is in structured mode: the interrupt request
   * (`{"op":"interrupt"}`) interrupts too, and an interrupt drops only itself, since every
   * input queued behind it has an id that is owed an answer.
   */
  structure(): void {
    this.#structured = true;
  }

  /**
   * Takes an interrupt that arrived before the session was ready to be told of it (it came just
   * behind the input now starting): `true` if one was waiting, and then the lines queued with it
   * are dropped too. In structured mode, `meant` says which waiting interrupt is meant for the
   * input now starting (given each interrupt line and whether it is the first line waiting), and
   * only that line is dropped.
   */
  takeInterrupt(meant?: (line: string, first: boolean) => boolean): boolean {
    if (!this.#structured || meant === undefined) {
      if (!this.#queue.includes(INTERRUPT_LINE, this.#head)) return false;
      this.#clear();
      return true;
    }
    for (let at = this.#head; at < this.#queue.length; at++) {
      const line = this.#queue[at] as string;
      if (!(line === INTERRUPT_LINE || isInterruptRequest(line)) || !meant(line, at === this.#head)) continue;
      this.#queue.splice(at, 1);
      this.#queuedChars -= line.length;
      return true;
    }
    return false;
  }

  #clear(): void {
    this.#queue = [];
    this.#head = 0;
    this.#queuedChars = 0;
    if (!this.#reading && !this.#done) void this.#pump();
  }

  /** What ended the input, if it was an error of the stream (a line too long, say) rather than end of file. */
  get failure(): Error | undefined {
    return this.#failure;
  }

  /** The next line; `null` once the input has ended (see {@link failure}). */
  next(): Promise<string | null> {
    if (this.#head < this.#queue.length) {
      const line = this.#queue[this.#head] as string;
      this.#head++;
      this.#queuedChars -= line.length;
      if (this.#head === this.#queue.length) {
        this.#queue = [];
        this.#head = 0;
      }
      if (!this.#reading && !this.#done) void this.#pump();
      return Promise.resolve(line);
    }
    if (this.#done) return Promise.resolve(null);
    return new Promise((resolve) => {
      this.#waiter = resolve;
    });
  }

  async #pump(): Promise<void> {
    this.#reading = true;
    try {
      while (!this.#done && this.#queuedChars < this.#maxQueued) {
        let line: string | null;
        try {
          line = await this.#stream.readLine();
        } catch (error) {
          this.#failure = error instanceof Error ? error : new Error(String(error));
          line = null;
        }
        if (line === null) {
          this.#end();
          return;
        }
        // The plain test first: in plain mode a line costs one comparison, as before.
        if (
          (line === INTERRUPT_LINE || (this.#structured && isInterruptRequest(line))) &&
          this.#waiter === undefined &&
          this.#events.interrupt(line)
        ) {
          if (!this.#structured) this.#clear();
          continue;
        }
        const waiter = this.#waiter;
        if (waiter !== undefined) {
          this.#waiter = undefined;
          waiter(line);
        } else {
          this.#queue.push(line);
          this.#queuedChars += line.length;
        }
      }
    } finally {
      this.#reading = false;
    }
  }

  #end(): void {
    this.#done = true;
    const waiter = this.#waiter;
    this.#waiter = undefined;
    waiter?.(null);
    // A later turn: an input that settles without waiting for anything (a synchronous one, sent
    // together with the end of file) still gets its answer out first, as in Node's REPL.
    setImmediate(() => {
      this.#endedTold = true;
      this.#events.ended();
    });
  }
}
