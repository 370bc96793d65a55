import type { Socket } from "node:net";
import { TLSSocket, type PeerCertificate } from "node:tls";
import { ConfabError, ErrorCodes } from "../errors.js";
import type { ServerOptions } from "../comm/server-base.js";
import { SocketStream } from "../comm/socket-stream.js";
import { serverOf } from "../comm/socket-listeners.js";
import { processRunFunction, whenProcessEnded, type Process } from "../mp/process.js";
import { readListenerName } from "./lisp-reader.js";
import { runListener, type ListenerOptions, type SessionObserver } from "./listener.js";
import { AuditLog, type AuditOption, type InputOutcome } from "./audit.js";
import { SessionRecording, type RecordingOptions } from "./recording.js";
import { quoted } from "../comm/printable.js";
import { reportError } from "../report.js";
import { isLoopback, peerOf } from "../comm/address.js";
import { parseTokenLine } from "../comm/token-line.js";
import { REFUSAL_LINE, TokenAuthenticator, type TokenThrottleOptions } from "./auth.js";
import { requiresClientCertificates, unixSocketPath } from "../comm/endpoint.js";

/** Default ms a client has to send its name line. */
export const DEFAULT_NAME_TIMEOUT_MS = 10_000;
/** Default `maxConnections` of the listener server: most sessions at once (REPL sessions are few). */
export const DEFAULT_LISTENER_MAX_CONNECTIONS = 100;
/**
 * Default `maxStartups`: most connections at once that are not yet sessions (not yet
 * authenticated, or no name line yet). A real client sends its lines at once, so a start-up
 * lasts a round trip; this many leaves room for bursts while bounding what silent clients hold.
 */
export const DEFAULT_MAX_STARTUPS = 32;
// The name line is short: a client gets a small buffer until it has named its listener.
const NAME_LINE_LIMIT = 4096;

/**
 * The listener server's own options, beside comm's {@link ServerOptions}: the package's
 * `StartUpServerOptions` carries them for a `startUpServer` without a `function`.
 */
export interface ListenerServerSettings {
  /** Listener server only: objects every listener sees as variables, e.g. `{ app, db }`. */
  readonly context?: Readonly<Record<string, unknown>>;
  /** Listener server only: time limit in ms for the synchronous part of one input (default 5000; 0 disables). */
  readonly evalTimeout?: number;
  /** Listener server only: ms a client has to send its name line before it is dropped (default 10000). */
  readonly nameTimeout?: number;
  /**
   * Listener server only: most connections at once that are not yet sessions, because they
   * have not authenticated or not sent a valid name line yet (default 32; in the spirit of
   * OpenSSH's MaxStartups). They never take the places of sessions: when one more arrives,
   * the oldest still waiting is told `Error: connection dropped: ... (maxStartups N) ...` in
   * one line and closed, and the server counts and logs it as refused.
   */
  readonly maxStartups?: number;
  /**
   * Listener server only: a shared secret (at least 16 visible ASCII characters) every client
   * must send first, as the line `token SECRET`, before its name line. Compared in constant
   * time, never echoed or logged; a wrong one gets one generic refusal after a delay.
   */
  readonly token?: string;
  /**
   * Listener server only: users, each with a token of their own (`{ alice: "…", bob: "…" }`,
   * the same rules as `token`), instead of one shared `token`; or a function returning them,
   * asked at every attempt, so that users can be added and revoked without a restart. A session
   * authenticated by a user's token belongs to that user: `process.properties.user`, the USER
   * column of `ps()`, the monitor page and the server log show it. (With TLS client
   * certificates, a session's user is its certificate's subject common name.)
   */
  readonly users?: Readonly<Record<string, string>> | (() => Readonly<Record<string, string>>);
  /**
   * Listener server only: keep an audit, one JSON object per line: each session's start and
   * end (user, session, peer, how it ended), each input before it runs and how it ended, and
   * each connection refused, with why. A file path (created 0600, appended to), a writable
   * stream, or a function called with each record; see `src/listener/audit.ts`. No token is
   * ever in it.
   */
  readonly audit?: AuditOption;
  /**
   * Listener server only: record each session to a file of its own in this directory (or
   * `{ dir, maxBytes }`), in asciicast v2, so that `asciinema play FILE` replays it: what the
   * client was shown, with times, and what it sent. Files are named so that they sort by time
   * (`2026-12-02T14-40-00.123Z-7-ops.cast`), created 0600, and stop at `maxBytes` (default
   * 8 MiB) with a note at the end. The monitor page replays them (see its `recordings`). A
   * recording that cannot be made is reported; the session goes on without it.
   */
  readonly record?: string | RecordingOptions;
}

/** What the listener server is made from: comm's options, the listener's, and the session's `comm`. */
export type ListenerServerOptions = ServerOptions & ListenerServerSettings & Pick<ListenerOptions, "comm">;

/**
 * The listener server's exposure rule: on anything but loopback or a Unix socket (or behind a
 * PROXY-protocol balancer), a listener needs an authentication mode. Throws
 * `ERR_INSECURE_LISTENER`, saying how to enable one.
 * @internal
 */
export function assertListenerExposure(options: ListenerServerOptions, address: string): void {
  // Behind a PROXY-protocol balancer, a loopback bind is reachable from wherever the balancer is.
  const local =
    options.proxyProtocol !== true && (unixSocketPath(options.service) !== undefined || isLoopback(address));
  if (
    !local &&
    options.token === undefined &&
    options.users === undefined &&
    !requiresClientCertificates(options.tls)
  ) {
    throw new ConfabError(
      ErrorCodes.INSECURE_LISTENER,
      `refusing to serve listeners on ${address}${options.proxyProtocol === true ? " behind a PROXY-protocol balancer" : ""} without authentication: a listener runs any code it is sent. ` +
        "Bind a loopback address (the default 127.0.0.1) or a Unix socket path (service unix:PATH), or enable an authentication mode: " +
        "a shared token or users' own tokens (option token or users; for confab serve, CONFAB_TOKEN or --token-file FILE), " +
        "or TLS with client certificates (option tls: { key, cert, ca }; for confab serve, --tls-cert FILE --tls-key FILE --tls-ca FILE)",
    );
  }
}

/**
 * The built-in listener server's `function`, as in the seed: each client names a new process
 * on its first line (a Lisp string such as `"my listener"`), and that process runs a
 * listener on the connection. The name line is read without holding up the server; a first
 * line that is not a string gets a one-line error and the connection is closed, so that
 * nothing a stray HTTP request carries is ever evaluated. With a `token`, the client must
 * first send `token SECRET` (see `auth.ts`); until it has, nothing it sends is evaluated or
 * echoed.
 *
 * The limits on connections live here, not in comm: `maxConnections` limits sessions (a
 * connection is one once it has authenticated and named its listener, until its process
 * ends), and `maxStartups` the connections that are not yet sessions, which never take a
 * session's place. The package's `startUpServer` tells comm (`limitsConnections`) to apply no
 * limit of its own, so that a connection still starting does not count against `maxConnections` there.
 * @internal
 */
export function listenerServer(
  options: ListenerServerOptions,
  internals: ListenerServerInternals = {},
): (handle: Socket) => void {
  assertListenerExposure(options, options.address ?? "127.0.0.1");
  const maxSessions = options.maxConnections ?? DEFAULT_LISTENER_MAX_CONNECTIONS;
  const maxStartups = options.maxStartups ?? DEFAULT_MAX_STARTUPS;
  if (!Number.isInteger(maxStartups) || maxStartups < 1) {
    throw new ConfabError(
      ErrorCodes.INVALID_ARGUMENT,
      `maxStartups must be a whole number of connections, at least 1, got ${String(maxStartups)}`,
    );
  }
  if (options.token !== undefined && options.users !== undefined) {
    throw new ConfabError(
      ErrorCodes.INVALID_ARGUMENT,
      "give either token (one shared by every client) or users (one token each), not both",
    );
  }
  const credentials = options.users ?? options.token;
  const audit = options.audit === undefined ? undefined : new AuditLog(options.audit);
  const record = typeof options.record === "string" ? { dir: options.record } : options.record;
  const auth = credentials === undefined ? undefined : new TokenAuthenticator(credentials, internals.throttle);
  const nameTimeout = options.nameTimeout ?? DEFAULT_NAME_TIMEOUT_MS;
  const listenerOptions: ListenerOptions = {
    ...(options.context === undefined ? {} : { context: options.context }),
    ...(options.evalTimeout === undefined ? {} : { evalTimeout: options.evalTimeout }),
    ...(options.comm === undefined ? {} : { comm: options.comm }),
    observe: (session, stream) => observeSession(session, stream, audit, record),
  };
  const streamOptions = options.streamOptions ?? {};
  // Oldest first (a Set keeps insertion order): the one to drop when too many wait.
  const startups = new Set<Startup>();
  let sessions = 0;
  const tooMany = `Error: too many connections (maxConnections ${maxSessions}); try again later`;
  const gate: Gate = {
    auth,
    audit,
    nameTimeout,
    options: listenerOptions,
    roomForSession: (startup) => {
      if (sessions < maxSessions) return true;
      startup.refuse(tooMany, `maxConnections ${maxSessions}`);
      return false;
    },
    sessionStarted: (process) => {
      sessions++;
      void whenProcessEnded(process).then(() => {
        sessions--;
      });
    },
  };
  internals.onAuthenticator?.(auth);
  return (handle) => {
    // A REPL is a conversation of small writes: each answer goes out at once, never held back
    // by Nagle's algorithm waiting for the client's acknowledgement of the last one.
    handle.setNoDelay(true);
    const stream = new SocketStream({ ...streamOptions, socket: handle });
    const startup = new Startup(stream, handle, audit);
    // Full of sessions: say so at once rather than after the name line.
    if (!gate.roomForSession(startup)) return;
    startups.add(startup);
    if (startups.size > maxStartups) {
      const oldest = startups.values().next().value as Startup;
      startups.delete(oldest);
      oldest.refuse(
        `Error: connection dropped: more than ${maxStartups} connections are waiting to start a session (maxStartups ${maxStartups}); try again later`,
        `maxStartups ${maxStartups}`,
      );
    }
    void greet(startup, gate).finally(() => startups.delete(startup));
  };
}

/** @internal What tests may set on a listener server beyond its options. */
export interface ListenerServerInternals {
  /** How the token authenticator slows refusals. */
  readonly throttle?: TokenThrottleOptions;
  /** Called with the server's token authenticator (or `undefined` without a token), to look at it. */
  readonly onAuthenticator?: (auth: TokenAuthenticator | undefined) => void;
}

/** What every connection of one listener server shares. */
interface Gate {
  readonly auth: TokenAuthenticator | undefined;
  readonly audit: AuditLog | undefined;
  readonly nameTimeout: number;
  readonly options: ListenerOptions;
  /** `true` if a session may start now; otherwise refuses `startup` and returns `false`. */
  readonly roomForSession: (startup: Startup) => boolean;
  readonly sessionStarted: (process: Process) => void;
}

/** A connection that is not yet a session. */
class Startup {
  readonly stream: SocketStream;
  readonly #handle: Socket;
  readonly #audit: AuditLog | undefined;
  readonly #ended = new AbortController();

  constructor(stream: SocketStream, handle: Socket, audit: AuditLog | undefined) {
    this.stream = stream;
    this.#handle = handle;
    this.#audit = audit;
  }

  /** Aborts once the connection is closed: a wait on its behalf can stop. */
  get signal(): AbortSignal {
    return this.#ended.signal;
  }

  /** Closes the connection after one line. */
  close(line?: string): void {
    if (!this.stream.closed) {
      if (line !== undefined) this.stream.writeLine(line);
      this.stream.close();
    }
    this.#ended.abort();
  }

  /** Closes the connection after one line, counted and logged by its server (and the audit) as refused for `reason`. */
  refuse(line: string, reason: string): void {
    if (this.stream.closed) return;
    const server = serverOf(this.#handle);
    server?.refused(this.#handle, reason);
    this.#audit?.record({ event: "refused", server: server?.name ?? "?", peer: peerOf(this.#handle), reason });
    this.close(line);
  }
}

async function greet(startup: Startup, gate: Gate): Promise<void> {
  const { stream } = startup;
  const { auth, nameTimeout } = gate;
  let authenticated = auth === undefined;
  let user: string | undefined;
  const timer = setTimeout(() => {
    // Before authentication, a timeout is one more reason for the one generic refusal.
    if (authenticated) {
      startup.refuse(
        `Error: no name line within ${nameTimeout} ms; send a string such as "my listener" first`,
        `no name line within ${nameTimeout} ms`,
      );
    } else {
      startup.refuse(REFUSAL_LINE, `no token within ${nameTimeout} ms`);
    }
  }, nameTimeout);
  let name: string;
  try {
    let line = await readFirstLine(stream, auth !== undefined);
    if (line === null) {
      startup.close();
      return;
    }
    // A token line is never echoed, evaluated or kept; without a token configured it is ignored.
    const presented = parseTokenLine(line);
    if (auth !== undefined) {
      const admitted = await auth.verify(stream.remoteAddress, presented, startup.signal);
      if (stream.closed) return;
      if (admitted === false) {
        startup.refuse(REFUSAL_LINE, presented === undefined ? "no token line" : "wrong token");
        return;
      }
      authenticated = true;
      user = admitted.user;
    }
    if (presented !== undefined) {
      line = await readNameLine(stream);
      if (line === null) {
        startup.close();
        return;
      }
    }
    name = readListenerName(line);
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error);
    startup.refuse(`Error: ${message}`, `bad name line: ${message}`);
    return;
  } finally {
    clearTimeout(timer);
  }
  // Closed meanwhile (the name timer fired, the connection was dropped for a newer one, or the
  // peer went away mid-line): no listener.
  if (stream.closed || !gate.roomForSession(startup)) return;
  user ??= certificateUser(stream.socket);
  const properties = user === undefined ? { kind: "listener" } : { kind: "listener", user };
  gate.sessionStarted(processRunFunction(name, { properties }, runListener, stream, gate.options));
}

/**
 * What keeps the record of one session, when there is one to keep: the server's log (its start
 * and end) and the audit (those, and every input before it runs). The session's user is in its
 * properties (set before it started).
 */
function observeSession(
  session: Process | undefined,
  stream: SocketStream,
  audit: AuditLog | undefined,
  record: RecordingOptions | undefined,
): SessionObserver | undefined {
  const server = serverOf(stream.socket);
  if (session === undefined || (server === undefined && audit === undefined && record === undefined)) return undefined;
  const user = typeof session.properties.user === "string" ? session.properties.user : undefined;
  const who = { session: session.name, id: session.id, ...(user === undefined ? {} : { user }) };
  const serverName = server?.name ?? "?";
  const peer = peerOf(stream);
  server?.log({ event: "session-started", server: serverName, ...who, peer });
  audit?.record({ event: "session-start", server: serverName, ...who, peer });
  let recording: SessionRecording | undefined;
  if (record !== undefined) {
    try {
      recording = SessionRecording.start(
        { id: session.id, name: session.name, user, peer, startedAt: session.startedAt },
        record,
      );
    } catch (error) {
      reportError(`session ${session.id} ${quoted(session.name)} is not recorded`, error);
    }
  }
  return {
    ...(recording === undefined
      ? {}
      : {
          shown: (text: string) => {
            recording.shown(text);
          },
          sent: (line: string) => {
            recording.sent(line);
          },
        }),
    ...(audit === undefined
      ? {}
      : {
          inputStarted: (input: number, text: string) => {
            audit.record({ event: "input", ...who, input, text });
          },
          inputEnded: (input: number, outcome: InputOutcome, ms: number, error?: string) => {
            audit.record({ event: "outcome", ...who, input, outcome, ms, ...(error === undefined ? {} : { error }) });
          },
        }),
    ended: (how, inputs) => {
      server?.log({ event: "session-ended", server: serverName, ...who, how, inputs });
      audit?.record({ event: "session-end", ...who, how, inputs });
      void recording?.close(`session ended: ${how}`);
    },
  };
}

/** The user a verified TLS client certificate names: its subject's common name (the first, if several). */
function certificateUser(socket: Socket): string | undefined {
  if (!(socket instanceof TLSSocket) || !socket.authorized) return undefined;
  // An empty object when the peer sent none: its fields are not always there.
  const certificate: Partial<PeerCertificate> = socket.getPeerCertificate();
  const name: unknown = certificate.subject?.CN;
  const first: unknown = Array.isArray(name) ? name[0] : name;
  return typeof first === "string" && first !== "" ? first : undefined;
}

/** The first line; with a token, an overlong one is no token (the empty line), not an error that could say more. */
async function readFirstLine(stream: SocketStream, tokenExpected: boolean): Promise<string | null> {
  try {
    return await readNameLine(stream);
  } catch (error) {
    if (!tokenExpected || !(error instanceof ConfabError) || error.code !== ErrorCodes.BAD_NAME_LINE) throw error;
    return "";
  }
}

/** Reads the first line with a small limit of its own: the stream's limit is for inputs. */
async function readNameLine(stream: SocketStream): Promise<string | null> {
  let line = "";
  for (;;) {
    const ch = await stream.readChar();
    if (ch === null) return null; // a line cut short by end of file names nothing
    if (ch === "\n") return line.endsWith("\r") ? line.slice(0, -1) : line;
    line += ch;
    if (line.length > NAME_LINE_LIMIT) {
      throw new ConfabError(ErrorCodes.BAD_NAME_LINE, `the name line is longer than ${NAME_LINE_LIMIT} characters`);
    }
  }
}
