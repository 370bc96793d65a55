/**
 * Shared-token authentication for the listener server.
 *
 * A listener runs any code it is sent, so on a server started with a token the first line a
 * client sends must be `token SECRET` (the word, one space, the secret, end of line); only
 * then comes the name line. See `protocol.ts` for the whole exchange. What this module
 * guarantees:
 *
 * - the secret is compared in constant time (`timingSafeEqual` over SHA-256 digests, which
 *   have the same length whatever was sent), and it never appears in a message or a report;
 * - a wrong or missing token is answered, after a delay, by {@link REFUSAL_LINE}, the same
 *   line whatever was wrong;
 * - a peer that keeps failing waits longer each time (the delay doubles, up to a cap), and
 *   its further attempts are taken one at a time, so opening many connections at once does
 *   not multiply its guesses. Peers are remembered by address (IPv6 by /64 prefix, since
 *   one host owns a whole prefix) in a table of bounded size: the oldest entry makes room.
 *
 * @module
 */
import { createHash, timingSafeEqual } from "node:crypto";
import { ConfabError, ErrorCodes } from "../errors.js";

/** What a token line starts with: `token SECRET`. */
export const TOKEN_LINE_PREFIX = "token ";

/** The shortest token accepted: a guessable secret would make the listener an open door. */
export const MIN_TOKEN_LENGTH = 16;

/** The longest token accepted (it travels on one short first line). */
export const MAX_TOKEN_LENGTH = 1024;

/**
 * The one line a client that did not authenticate gets, whatever went wrong (no token line,
 * a wrong token, an overlong line), so that it learns nothing about the secret.
 */
export const REFUSAL_LINE = "Error: not authorized (the first line must be: token SECRET)";

/** Default delay in ms before a first refusal; it doubles with each further failure of a peer. */
export const DEFAULT_REFUSAL_DELAY_MS = 300;

/** Default cap in ms of the refusal delay. */
export const DEFAULT_MAX_REFUSAL_DELAY_MS = 10_000;

/** Default number of failing peers remembered. */
export const DEFAULT_MAX_PEERS = 4096;

/** Default ms after its last failure that a peer is forgotten. */
export const DEFAULT_FORGET_AFTER_MS = 15 * 60_000;

/**
 * Checks that `token` can be used: visible ASCII (no spaces: it must survive being typed and
 * read back from a file), {@link MIN_TOKEN_LENGTH} to {@link MAX_TOKEN_LENGTH} characters.
 * The message never contains the token.
 */
export function validateToken(token: unknown, source = "the token"): string {
  if (typeof token !== "string" || !/^[\x21-\x7e]*$/.test(token)) {
    throw new ConfabError(ErrorCodes.INVALID_ARGUMENT, `${source} must be visible ASCII characters without spaces`);
  }
  if (token.length < MIN_TOKEN_LENGTH || token.length > MAX_TOKEN_LENGTH) {
    throw new ConfabError(
      ErrorCodes.INVALID_ARGUMENT,
      `${source} must be ${MIN_TOKEN_LENGTH} to ${MAX_TOKEN_LENGTH} characters long, got ${token.length} (make one with: openssl rand -hex 24)`,
    );
  }
  return token;
}

/** The line a client sends to authenticate, without its newline. */
export function tokenLine(token: string): string {
  return `${TOKEN_LINE_PREFIX}${token}`;
}

/** The secret of a token line (`token SECRET`), or `undefined` if the line is not one. */
export function parseTokenLine(line: string): string | undefined {
  return line.startsWith(TOKEN_LINE_PREFIX) ? line.slice(TOKEN_LINE_PREFIX.length) : undefined;
}

/**
 * The key a peer is remembered by: an IPv4 address as is (also when IPv4-mapped), an IPv6
 * address by its /64 prefix, and every client of a Unix socket as `local`.
 */
export function peerKey(address: string | undefined): string {
  if (address === undefined || address === "") return "local";
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address);
  if (mapped?.[1] !== undefined) return mapped[1];
  if (!address.includes(":")) return address;
  const bare = address.replace(/%.*$/, "").toLowerCase();
  const [head = "", tail] = bare.split("::", 2);
  const groups = (text: string | undefined): string[] => (text === undefined || text === "" ? [] : text.split(":"));
  const front = groups(head);
  const back = groups(tail);
  // A trailing dotted quad stands for two groups.
  const width = (parts: string[]): number => parts.reduce((n, part) => n + (part.includes(".") ? 2 : 1), 0);
  const all = [...front, ...Array<string>(Math.max(0, 8 - width(front) - width(back))).fill("0"), ...back];
  const prefix = all.slice(0, 4).map((group) => (Number.parseInt(group, 16) || 0).toString(16));
  return `${prefix.join(":")}::/64`;
}

/** How refusals are slowed; defaults suit a listener on a network. */
export interface TokenThrottleOptions {
  /** Delay in ms before a peer's first refusal; doubles with each further failure (default 300). */
  readonly refusalDelay?: number;
  /** Cap of the delay in ms (default 10000). */
  readonly maxRefusalDelay?: number;
  /** Most peers remembered at once (default 4096). */
  readonly maxPeers?: number;
  /** Ms after its last failure that a peer starts afresh (default 15 minutes). */
  readonly forgetAfter?: number;
}

interface PeerRecord {
  failures: number;
  lastFailure: number;
  /** Settles when this peer's latest attempt has been answered. */
  tail: Promise<unknown>;
}

/**
 * Decides whether a presented token is the server's, slowing down peers that guess. One per
 * listener server: each has its own secret and its own memory of failing peers.
 */
export class TokenAuthenticator {
  readonly #digest: Buffer;
  readonly #delay: number;
  readonly #maxDelay: number;
  readonly #maxPeers: number;
  readonly #forgetAfter: number;
  readonly #peers = new Map<string, PeerRecord>();

  constructor(token: string, options: TokenThrottleOptions = {}) {
    this.#digest = digest(validateToken(token));
    this.#delay = options.refusalDelay ?? DEFAULT_REFUSAL_DELAY_MS;
    this.#maxDelay = options.maxRefusalDelay ?? DEFAULT_MAX_REFUSAL_DELAY_MS;
    this.#maxPeers = Math.max(1, options.maxPeers ?? DEFAULT_MAX_PEERS);
    this.#forgetAfter = options.forgetAfter ?? DEFAULT_FORGET_AFTER_MS;
  }

  /** Peers remembered now (for tests and monitoring: it never exceeds `maxPeers`). */
  get rememberedPeers(): number {
    return this.#peers.size;
  }

  /** Failures remembered for the peer at `address` (0 once it is forgotten). */
  failuresOf(address: string | undefined): number {
    return this.#fresh(peerKey(address))?.failures ?? 0;
  }

  /**
   * Resolves `true` if `presented` is the token, `false` (only after the refusal delay) if it
   * is not or is `undefined` (no token line). A peer with recent failures waits for its
   * previous attempt to be answered before this one is looked at. Never rejects.
   */
  verify(address: string | undefined, presented: string | undefined): Promise<boolean> {
    const key = peerKey(address);
    const record = this.#fresh(key);
    if (record === undefined) return this.#judge(key, presented);
    const turn = record.tail.then(() => this.#judge(key, presented));
    record.tail = turn;
    return turn;
  }

  #judge(key: string, presented: string | undefined): Promise<boolean> {
    if (presented !== undefined && timingSafeEqual(digest(presented), this.#digest)) return Promise.resolve(true);
    const { record, created } = this.#recordFailure(key);
    const delay = Math.min(this.#delay * 2 ** Math.min(record.failures - 1, 30), this.#maxDelay);
    const refused = new Promise<boolean>((resolve) => setTimeout(resolve, delay, false));
    // A first failure opens the peer's queue: attempts arriving during its delay wait for it.
    if (created) record.tail = refused;
    return refused;
  }

  #fresh(key: string): PeerRecord | undefined {
    const record = this.#peers.get(key);
    if (record !== undefined && Date.now() - record.lastFailure > this.#forgetAfter) {
      this.#peers.delete(key);
      return undefined;
    }
    return record;
  }

  #recordFailure(key: string): { record: PeerRecord; created: boolean } {
    const now = Date.now();
    let record = this.#peers.get(key);
    const created = record === undefined;
    if (record === undefined) {
      record = { failures: 0, lastFailure: now, tail: Promise.resolve() };
      while (this.#peers.size >= this.#maxPeers) {
        const oldest = this.#peers.keys().next();
        if (oldest.done === true) break;
        this.#peers.delete(oldest.value);
      }
    } else {
      this.#peers.delete(key); // re-inserted below: the map's order is least recently failed first
    }
    record.failures++;
    record.lastFailure = now;
    this.#peers.set(key, record);
    return { record, created };
  }
}

function digest(text: string): Buffer {
  return createHash("sha256").update(text, "utf8").digest();
}
