/**
 * A server's bound on the unread input its connections hold together ({@link InputBudget}, the
 * `maxBufferedInput` option). Each stream bounds its own lines (`maxLineLength`), but that
 * bound times the number of connections is no bound: 2,000 peers each holding an unfinished
 * 1 MB line took 2 GB. A budget adds up what the streams on one server's connections hold and,
 * when the sum passes the limit, drops the connection holding the most, until it is back under.
 *
 * The accounting is cheap where it runs often: a stream reports what it holds once per chunk
 * it receives (one `Map` lookup), not once per line it reads, so the sum can be stale upwards
 * (by what reads took since each stream's last chunk). Only when the stale sum passes the
 * limit is every holder asked what it really holds; the limit is then applied to the true sum.
 *
 * @module
 */
import { ConfabError, ErrorCodes } from "../errors.js";

/** Default `maxBufferedInput` of a server: 64 MiB of unread input across its connections. */
export const DEFAULT_MAX_BUFFERED_INPUT = 64 * 1024 * 1024;

/**
 * @internal What a budget needs of the streams it accounts for, registered once by the stream
 * class (see {@link accountHolders}): functions, not methods of the stream, so that they stay
 * off a stream's public surface.
 */
export interface HolderAccess<H extends object> {
  /** Bytes of input `holder` holds now. */
  held(holder: H): number;
  /** Fails `holder`'s input with `error` and ends its connection with the line `Error: <reason>`. */
  drop(holder: H, error: ConfabError, reason: string): void;
  /** `holder`'s peer, `host:port`, for messages and the log. */
  peer(holder: H): string;
}

let access: HolderAccess<object> | undefined;

/** @internal Registers how budgets reach their holders. Called once, by SocketStream when it is defined. */
export function accountHolders<H extends object>(holders: HolderAccess<H>): void {
  access = holders;
}

/** @internal Told of each connection a budget dropped: its peer, the bytes it held, and why in words. */
export type BudgetDropped = (peer: string, held: number, reason: string) => void;

/**
 * @internal The unread input of one server's streams, bounded by `limit` bytes in total. A
 * stream reports what it holds with {@link hold} (and 0 once it holds nothing for good); the
 * budget keeps only streams that hold something, so idle connections cost it nothing.
 */
export class InputBudget {
  /** Most bytes of unread input the server's streams may hold together. */
  readonly limit: number;
  // What each holder held at its last report; the sum of it is #total.
  readonly #held = new Map<object, number>();
  #total = 0;
  readonly #dropped: BudgetDropped;

  /** `limit`: a positive, finite number of bytes. `dropped` hears of every connection dropped. */
  constructor(limit: number, dropped: BudgetDropped) {
    this.limit = limit;
    this.#dropped = dropped;
  }

  /** Bytes held at the holders' last reports (an upper bound: reads since then are not counted). */
  get total(): number {
    return this.#total;
  }

  /** `holder` holds `bytes` of unread input now. More than before may drop the largest holders. */
  hold(holder: object, bytes: number): void {
    const before = this.#held.get(holder) ?? 0;
    if (bytes === before) return;
    this.#total += bytes - before;
    if (bytes === 0) this.#held.delete(holder);
    else this.#held.set(holder, bytes);
    if (bytes > before && this.#total > this.limit) this.#overLimit();
  }

  /** `holder` holds nothing any more (its input failed, it closed, or its connection did). */
  release(holder: object): void {
    this.hold(holder, 0);
  }

  /** The reported sum passed the limit: learn the true one, and drop the largest holders while it is over. */
  #overLimit(): void {
    const holders = access;
    if (holders === undefined) return;
    let total = 0;
    for (const holder of this.#held.keys()) {
      const now = holders.held(holder);
      if (now === 0) this.#held.delete(holder);
      else this.#held.set(holder, now);
      total += now;
    }
    this.#total = total;
    while (this.#total > this.limit) {
      let largest: object | undefined;
      let most = 0;
      for (const [holder, bytes] of this.#held) {
        if (bytes > most) {
          most = bytes;
          largest = holder;
        }
      }
      if (largest === undefined) return;
      // Forgotten before it is dropped: dropping it releases it, which must find nothing.
      this.#held.delete(largest);
      const over = this.#total;
      this.#total -= most;
      const peer = holders.peer(largest);
      const reason = `the server held ${over} bytes of unread input, over its maxBufferedInput of ${this.limit}, and this connection the most (${most} bytes); closing`;
      holders.drop(
        largest,
        new ConfabError(
          ErrorCodes.INPUT_BUDGET,
          `input from ${peer} dropped: the server held ${over} bytes of unread input across its connections, over its maxBufferedInput of ${this.limit}, and this connection the most (${most} bytes); connection closed`,
        ),
        reason,
      );
      this.#dropped(
        peer,
        most,
        `maxBufferedInput ${this.limit}: held ${most} of the ${over} bytes of unread input, the most of any connection`,
      );
    }
  }
}

/**
 * @internal `maxBufferedInput` as a budget's limit: `undefined` (no budget) for `0` or
 * `Infinity`; throws `ERR_INVALID_ARGUMENT` for anything but a non-negative number.
 */
export function budgetLimit(value: number | undefined): number | undefined {
  if (value === undefined) return DEFAULT_MAX_BUFFERED_INPUT;
  if (typeof value !== "number" || Number.isNaN(value) || value < 0) {
    throw new ConfabError(
      ErrorCodes.INVALID_ARGUMENT,
      `maxBufferedInput must be a non-negative number of bytes (0 or Infinity: no bound), got ${String(value)}`,
    );
  }
  return value === 0 || value === Infinity ? undefined : value;
}
