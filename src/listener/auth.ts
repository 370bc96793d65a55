/**
 * Token authentication for the listener server: one shared token, or users each with a token
 * of their own ({@link Credentials}; a token file holds either, see {@link parseTokenFile}).
 *
 * A listener runs any code it is sent, so on a server started with a token the first line a
 * client sends must be `token SECRET` (the word, one space, the secret, end of line); only
 * then comes the name line. See `protocol.ts` for the whole exchange. What this module
 * guarantees:
 *
 * - the secret is compared in constant time (`timingSafeEqual` over SHA-256 digests, which
 *   have the same length whatever was sent), and it never appears in a message or a report;
 * - the right token is let in at once, however many failures of the same address (every local
 *   user, everyone behind one NAT) are waiting for their answers;
 * - a wrong or missing token is answered, after a delay, by {@link REFUSAL_LINE}, the same
 *   line whatever was wrong;
 * - guessing is slow however many connections a guesser opens. A peer's failures are answered
 *   one after another, each after its own delay (which doubles with each failure, up to a
 *   cap), and each holds one of the peer's few places ({@link TokenThrottleOptions.maxPendingPerPeer})
 *   until its answer is due, whether or not its client is still there. While all its places
 *   are taken, a peer's further attempts are turned away at once with the same refusal,
 *   without their token being looked at. So a peer gets at most `maxPendingPerPeer` tokens
 *   judged at once, then one more each time its oldest answer falls due: one per delay, as
 *   if its attempts were taken one at a time, and memory stays bounded.
 *
 * Peers are remembered by address (IPv6 by /64 prefix, since one host owns a whole prefix)
 * in a table of bounded size: the oldest entry makes room.
 *
 * Why judging a token on arrival, and answering a wrong one only later, gives a guesser
 * nothing: a right token is let in at once, so an attempt not let in at once is known to be
 * wrong whenever its answer comes. What bounds guessing is how many tokens are judged per
 * unit of time, and that the places bound. The price: while an address keeps all its places
 * taken (it takes many concurrent wrong attempts, `maxPendingPerPeer` within one delay), the
 * right token from that address is turned away too, at once (never kept waiting): it cannot
 * be told from a guess without being judged.
 *
 * @module
 */
import { createHash, timingSafeEqual } from "node:crypto";
// The token line is shared with the client (`openTcpStream`'s `token`): it lives in comm.
import { validateToken } from "../comm/token-line.js";
import { quoted } from "../comm/printable.js";
import { ConfabError, ErrorCodes } from "../errors.js";
import { ReportLimiter, reportError } from "../report.js";

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
 * Default number of a peer's failures waiting for their answers at once: more than a few
 * misconfigured clients on one address, far fewer than a guesser would like.
 */
export const DEFAULT_MAX_PENDING_PER_PEER = 32;

/** Default number of answers to wrong tokens waiting at once, all peers together. */
export const DEFAULT_MAX_PENDING = 1024;

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
  /**
   * Most failures of one peer waiting for their answers (default 32). Each holds its place
   * until its answer is due, even when its client has gone, so closing connections buys a
   * guesser nothing. While all are taken, the peer's further attempts are refused at once
   * without being judged (a right token too: it cannot be told from a guess unjudged). This
   * bounds a peer's guesses: this many at once, then one per delay.
   */
  readonly maxPendingPerPeer?: number;
  /**
   * Most answers to wrong tokens waiting at once, all peers together (default 1024): a bound
   * on the memory they hold. An answer whose caller gave up (its `signal` aborted) no longer
   * counts here, though its place in its peer's turns stays taken. Past it, attempts are
   * refused at once without being judged.
   */
  readonly maxPending?: number;
}

interface PeerRecord {
  failures: number;
  lastFailure: number;
  /** When each of the peer's failures still to be answered is due, earliest first (its places). */
  readonly due: number[];
}

/**
 * Who may connect to a listener server: one shared token (its sessions belong to no user), or
 * users, each with a token of their own (`{ alice: "...", bob: "..." }`): a session
 * authenticated by a user's token belongs to that user (`process.properties.user`).
 */
export type Credentials = string | Readonly<Record<string, string>>;

/** What a user may be called: what `ps()`, the log and the audit show (letters, digits, `._@-`, 1 to 64). */
const USER_NAME = /^[\w.@-]{1,64}$/;

/** A token's digest and who it belongs to. */
interface Key {
  readonly user: string | undefined;
  readonly digest: Buffer;
}

/**
 * Checks credentials and turns them into the digests tokens are compared with: every token
 * valid, every user name printable, no token shared by two users (a session would not know
 * whose it is). `source` names them in errors, which never contain a token.
 */
export function credentialKeys(credentials: Credentials, source = "the token"): readonly Key[] {
  if (typeof credentials === "string") return [{ user: undefined, digest: digest(validateToken(credentials, source)) }];
  const keys: Key[] = [];
  const seen = new Set<string>();
  for (const [user, token] of Object.entries(credentials)) {
    if (!USER_NAME.test(user)) {
      throw new ConfabError(
        ErrorCodes.INVALID_ARGUMENT,
        `${source}: a user's name must be 1 to 64 letters, digits or ._@- (not ${quoted(user)})`,
      );
    }
    validateToken(token, `${source}: the token of ${user}`);
    if (seen.has(token)) {
      throw new ConfabError(
        ErrorCodes.INVALID_ARGUMENT,
        `${source}: ${user}'s token is another user's too; give each their own`,
      );
    }
    seen.add(token);
    keys.push({ user, digest: digest(token) });
  }
  if (keys.length === 0) throw new ConfabError(ErrorCodes.INVALID_ARGUMENT, `${source}: no users`);
  return keys;
}

/**
 * Reads a token file: one token on its own (surrounding whitespace removed), or lines
 * `NAME TOKEN`, one user each; blank lines and lines starting with `#` are skipped. Errors
 * name the file (`source`) and the line, never a token.
 */
export function parseTokenFile(text: string, source: string): Credentials {
  const lines = text.split(/\r?\n/);
  const users: Record<string, string> = {};
  let single: string | undefined;
  let count = 0;
  for (const [index, raw] of lines.entries()) {
    const line = raw.trim();
    if (line === "" || line.startsWith("#")) continue;
    count++;
    const fields = line.split(/\s+/);
    if (fields.length === 1) {
      single = fields[0];
      continue;
    }
    const [user, token] = fields;
    if (fields.length !== 2 || user === undefined || token === undefined) {
      throw new ConfabError(
        ErrorCodes.INVALID_ARGUMENT,
        `${source}, line ${index + 1}: expected NAME TOKEN (two fields), got ${fields.length}`,
      );
    }
    if (Object.hasOwn(users, user)) {
      throw new ConfabError(
        ErrorCodes.INVALID_ARGUMENT,
        `${source}, line ${index + 1}: ${quoted(user)} is listed twice`,
      );
    }
    users[user] = token;
  }
  if (single !== undefined) {
    if (count > 1) {
      throw new ConfabError(
        ErrorCodes.INVALID_ARGUMENT,
        `${source}: a file of several lines holds NAME TOKEN on each; a lone token must be alone in its file`,
      );
    }
    return validateToken(single, `the token in ${source}`);
  }
  if (count === 0) throw new ConfabError(ErrorCodes.INVALID_ARGUMENT, `${source} holds no token`);
  credentialKeys(users, source); // every token valid, none shared: said now, with the file's name
  return users;
}

/** A presented token that was right: whose it is (`undefined` for a shared token). */
export interface Admitted {
  readonly user: string | undefined;
}

/**
 * Decides whether a presented token is the server's, slowing down peers that guess. One per
 * listener server: each has its own secret and its own memory of failing peers.
 */
export class TokenAuthenticator {
  readonly #credentials: Credentials | (() => Credentials);
  readonly #credentialReports = new ReportLimiter(1, 60_000);
  #keysOf: { readonly credentials: Credentials; readonly keys: readonly Key[] } | undefined;
  readonly #delay: number;
  readonly #maxDelay: number;
  readonly #maxPeers: number;
  readonly #forgetAfter: number;
  readonly #maxPendingPerPeer: number;
  readonly #maxPending: number;
  readonly #peers = new Map<string, PeerRecord>();
  #pending = 0;
  #turnedAway = 0;

  /**
   * `credentials` may be a function, asked at every attempt: a program can add and revoke users
   * without a restart (`confab serve` re-reads its token file on SIGHUP). Credentials given as
   * they are are checked at once (a bad token throws); what a function returns is checked when
   * it changes, and while it is bad every attempt fails.
   */
  constructor(credentials: Credentials | (() => Credentials), options: TokenThrottleOptions = {}) {
    this.#credentials = credentials;
    if (typeof credentials !== "function") this.#keysOf = { credentials, keys: credentialKeys(credentials) };
    this.#delay = options.refusalDelay ?? DEFAULT_REFUSAL_DELAY_MS;
    this.#maxDelay = options.maxRefusalDelay ?? DEFAULT_MAX_REFUSAL_DELAY_MS;
    this.#maxPeers = Math.max(1, options.maxPeers ?? DEFAULT_MAX_PEERS);
    this.#forgetAfter = options.forgetAfter ?? DEFAULT_FORGET_AFTER_MS;
    this.#maxPendingPerPeer = Math.max(1, options.maxPendingPerPeer ?? DEFAULT_MAX_PENDING_PER_PEER);
    this.#maxPending = Math.max(1, options.maxPending ?? DEFAULT_MAX_PENDING);
  }

  /** Peers remembered now (for tests and monitoring: it never exceeds `maxPeers`). */
  get rememberedPeers(): number {
    return this.#peers.size;
  }

  /** Answers to wrong tokens waiting now, all peers together (never more than `maxPending`). */
  get pending(): number {
    return this.#pending;
  }

  /** Attempts refused at once, unjudged, because their peer's places (or `maxPending`) were all taken. */
  get turnedAway(): number {
    return this.#turnedAway;
  }

  /** Failures remembered for the peer at `address` (0 once it is forgotten). */
  failuresOf(address: string | undefined): number {
    return this.#fresh(peerKey(address), Date.now())?.failures ?? 0;
  }

  /** Places taken by failures of the peer at `address` whose answers are not yet due (never more than `maxPendingPerPeer`). */
  pendingOf(address: string | undefined): number {
    return this.#fresh(peerKey(address), Date.now())?.due.length ?? 0;
  }

  /**
   * Resolves at once with whose token `presented` is, if it is one. Resolves `false` if it is not, or is
   * `undefined` (no token line): once the peer's earlier failures have been answered and this
   * one's own delay has passed; or at once, without looking at the token, while the peer's
   * places (or `maxPending`) are all taken. When `signal` aborts (the caller's client has
   * gone), a wait for a refusal ends with `false` at once, and the peer's place stays taken
   * until the answer was due. Never rejects.
   */
  verify(address: string | undefined, presented: string | undefined, signal?: AbortSignal): Promise<Admitted | false> {
    const now = Date.now();
    const key = peerKey(address);
    const record = this.#fresh(key, now);
    // The bounds come before the comparison: an attempt turned away is not judged, so it
    // tells its sender nothing, and a guesser's judged tokens stay within its places.
    if ((record !== undefined && record.due.length >= this.#maxPendingPerPeer) || this.#pending >= this.#maxPending) {
      this.#turnedAway++;
      return Promise.resolve(false);
    }
    const admitted = presented === undefined ? undefined : this.#match(presented);
    if (admitted !== undefined) return Promise.resolve(admitted);
    const failed = this.#recordFailure(key, record, now);
    // This failure's turn starts when the peer's previous one is answered: answers come one
    // after another, each after its own (doubling) delay.
    const delay = Math.min(this.#delay * 2 ** Math.min(failed.failures - 1, 30), this.#maxDelay);
    const due = Math.max(now, failed.due.at(-1) ?? now) + delay;
    failed.due.push(due);
    if (signal?.aborted === true) return Promise.resolve(false);
    this.#pending++;
    return new Promise<false>((resolve) => {
      const answer = (): void => {
        clearTimeout(timer);
        signal?.removeEventListener("abort", answer);
        this.#pending--;
        resolve(false);
      };
      const timer = setTimeout(() => {
        // Due now, whatever the wall clock says: the place is free for the peer's next attempt.
        releaseDue(failed, due);
        answer();
      }, due - now);
      signal?.addEventListener("abort", answer, { once: true });
    });
  }

  /** Whose token `presented` is, comparing it with every key (the time taken says nothing of which matched). */
  #match(presented: string): Admitted | undefined {
    const keys = this.#keys();
    const presentedDigest = digest(presented);
    let found: Admitted | undefined;
    for (const key of keys) {
      if (timingSafeEqual(presentedDigest, key.digest)) found ??= { user: key.user };
    }
    return found;
  }

  #keys(): readonly Key[] {
    const source = this.#credentials;
    if (typeof source !== "function") return this.#keysOf?.keys ?? [];
    let credentials: Credentials;
    try {
      credentials = source();
      if (this.#keysOf?.credentials !== credentials) this.#keysOf = { credentials, keys: credentialKeys(credentials) };
    } catch (error) {
      // Every attempt fails until the credentials are right again; said once a minute.
      if (this.#credentialReports.allow(error instanceof Error ? error.message : String(error)) !== false) {
        reportError("the listener server's credentials (every token is refused until they are fixed)", error);
      }
      this.#keysOf = undefined;
      return [];
    }
    return this.#keysOf.keys;
  }

  /** The peer's record, with the places of answers already due given back; `undefined` once it is forgotten. */
  #fresh(key: string, now: number): PeerRecord | undefined {
    const record = this.#peers.get(key);
    if (record === undefined) return undefined;
    releaseDue(record, now);
    if (record.due.length === 0 && now - record.lastFailure > this.#forgetAfter) {
      this.#peers.delete(key);
      return undefined;
    }
    return record;
  }

  #recordFailure(key: string, record: PeerRecord | undefined, now: number): PeerRecord {
    if (record === undefined) {
      record = { failures: 0, lastFailure: now, due: [] };
      while (this.#peers.size >= this.#maxPeers) this.#forgetOne(now);
    } else {
      this.#peers.delete(key); // re-inserted below: the map's order is least recently failed first
    }
    record.failures++;
    record.lastFailure = now;
    this.#peers.set(key, record);
    return record;
  }

  /**
   * Makes room in the table: the least recently failed peer with no answer pending (such a
   * peer recently failed, so it is near the end), or else the least recently failed of all.
   */
  #forgetOne(now: number): void {
    let oldest: string | undefined;
    for (const [key, record] of this.#peers) {
      oldest ??= key;
      releaseDue(record, now);
      if (record.due.length === 0) {
        this.#peers.delete(key);
        return;
      }
    }
    if (oldest !== undefined) this.#peers.delete(oldest);
  }
}

/** Gives back the places of a peer's answers that are due by `now`. */
function releaseDue(record: PeerRecord, now: number): void {
  let done = 0;
  while (done < record.due.length && (record.due[done] as number) <= now) done++;
  if (done > 0) record.due.splice(0, done);
}

function digest(text: string): Buffer {
  return createHash("sha256").update(text, "utf8").digest();
}
