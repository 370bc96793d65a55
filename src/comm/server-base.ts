/**
 * What every server process shares, whether it listens itself (`TcpServerProcess`, in
 * `server.ts`) or spreads its service over workers (`ClusterServerProcess`, in `workers.ts`):
 * the abstract {@link ServerProcess}, the core options of comm's `startUpServer`, and the
 * small helpers both starters use. Neither kind of server imports the other: both import this.
 *
 * @module
 */
import type net from "node:net";
import { kKill, kOwner, Process, watchChildren, type ProcessResource } from "../mp/process.js";
import { reportError } from "../report.js";
import { lispString } from "./lisp-string.js";
import type { Logger, LoggerOption, ServerEvent } from "./server-log.js";
import type { SocketStream, SocketStreamOptions } from "./socket-stream.js";
import type { ServerTlsOptions } from "./endpoint.js";

/** A server's `function`: called with each accepted socket, one at a time. */
export type ConnectionFunction<H> = (handle: H) => unknown;

/**
 * What `announce` may be: `true` for standard output, a writable stream, or a function called
 * with the bound address once listening (or with the error if binding failed).
 */
export type Announce =
  boolean | NodeJS.WritableStream | ((address: net.AddressInfo | null, error: Error | null) => void);

/** Limits on a server's connections. */
export interface ConnectionLimits {
  /**
   * Most connections open at once (default: no limit). A connection past the limit is
   * accepted, told `Error: too many connections ...` in one line, and closed; the counters
   * count it as refused. A server whose connections are served through {@link ServerHooks}
   * that limit connections themselves (the listener server) leaves this limit to them.
   */
  readonly maxConnections?: number;
  /**
   * Expect a PROXY protocol header (HAProxy's v1 or v2) first on every connection, as sent by
   * HAProxy's `send-proxy`/`send-proxy-v2`, nginx's `proxy_protocol on` or a cloud load
   * balancer: the handle `function` gets, its streams and `ps()` then report the real client as
   * the peer. A connection whose header is missing, malformed or not complete within 5 s is
   * closed and logged as refused. Off by default: then a header is just data.
   */
  readonly proxyProtocol?: boolean;
  /**
   * Milliseconds a connection may go without traffic before it is closed (default: no limit).
   * The peer is first sent the line
   * `Error: connection idle for N ms (the server's idleTimeout); closing`, after any output
   * still queued for it; the connection's stream then reads end of file.
   */
  readonly idleTimeout?: number;
  /**
   * Most bytes of unread input the streams on the server's connections may hold together
   * (default 64 MiB): those made with `createStream`, and those its `function` makes on the
   * sockets it is handed. Each stream bounds its own lines (`streamOptions.maxLineLength`,
   * 1 MiB), but not how many peers hold an unfinished one. When the total passes this, the
   * connection holding the most is dropped, then the next largest while the total is still
   * over: its reads fail with `ERR_INPUT_BUDGET`, its peer is sent the line
   * `Error: the server held N bytes of unread input, over its maxBufferedInput of M, and this connection the most (K bytes); closing`
   * after any output still queued for it, the counters count it as `dropped` and the logger
   * hears a `dropped` event. Every other connection is served on. `0` or `Infinity`: no bound
   * (each stream's own limits still apply). With `workers`, each worker has this budget.
   * Input a `function` reads from the socket itself, without a stream, is its own to bound.
   */
  readonly maxBufferedInput?: number;
}

/** Where a server's events go; see {@link LoggerOption}. */
export interface ServerLogging {
  /** A function, `"text"`, `"json"`, or `false`; default: text lines on the `announce` stream when there is one. */
  readonly logger?: LoggerOption;
}

/**
 * Options of comm's core `startUpServer`: a TCP server and nothing else. It knows no default
 * `function`; the package's `startUpServer` (the face, `src/start-up-server.ts`) fills one in.
 */
export interface ServerOptions extends ConnectionLimits, ServerLogging {
  /**
   * Called with each accepted connection's socket handle (a paused `net.Socket`: no byte is
   * lost before a stream is made on it). The next connection is not taken until it returns,
   * or until its promise settles. It runs outside any process, so what it makes belongs to
   * the process it starts. Required, unless {@link ServerHooks.dispatcher} makes one.
   */
  readonly function?: ConnectionFunction<net.Socket>;
  /** Hand `function` a ready {@link SocketStream} (made with `streamOptions`) instead of the socket. */
  readonly createStream?: boolean;
  /** Options for the streams the server makes (with `createStream`, or by its hooks' `function`). */
  readonly streamOptions?: Omit<SocketStreamOptions, "socket">;
  /** Where to write a one-line start-up message; see {@link Announce}. */
  readonly announce?: Announce;
  /** Port number, numeric string, or a name from the services database. Default `"confab"` (10243). */
  readonly service?: number | string;
  /** The server process's name; default Lisp's `(format nil "~S server" service)`. */
  readonly processName?: string;
  /** Local address to bind; default `127.0.0.1`, so nothing is open to the network by accident. */
  readonly address?: string;
  /** Length of the kernel's queue of connections not yet accepted. */
  readonly backlog?: number;
  /** Send each write on an accepted connection at once (`TCP_NODELAY`), as LispWorks 8's `:nodelay`: for request/response protocols. */
  readonly nodelay?: boolean;
  /** Probe idle accepted connections (`SO_KEEPALIVE`), so that a vanished peer is noticed: `true`, or the idle ms before the first probe. */
  readonly keepalive?: boolean | number;
  /**
   * Let several processes bind the same port, the kernel spreading connections over them
   * (`SO_REUSEPORT`, Linux and the BSDs). Needs Node 22.12 or 23.1 and later (where
   * `net.Server#listen` takes it); on older lines the start is refused with
   * `ERR_INVALID_ARGUMENT` rather than binding without it.
   */
  readonly reusePort?: boolean;
  /**
   * Serve an inherited, already listening socket (a file descriptor) instead of binding
   * `service`/`address`: systemd socket activation passes it as fd 3 (`confab serve` takes it
   * from `LISTEN_FDS`/`LISTEN_PID` by itself). {@link ServerHooks.checkAddress} sees the
   * socket's real address once it is known.
   */
  readonly fd?: number;
  /**
   * Processes to spread the service over (default 1: this process alone). With more, the
   * program's entry script runs again in each of that many `node:cluster` workers, where this
   * same call just listens on the shared port; here it resolves once all listen, and killing
   * it stops them. `function` runs in the workers, never here. See `ClusterServerProcess`
   * (src/comm/workers.ts).
   */
  readonly workers?: number;
  /**
   * Speak TLS (`node:tls`): `{ key, cert }`, plus `ca` to admit only clients whose certificate
   * that CA signed. `function` then gets a `tls.TLSSocket` whose handshake has succeeded; a
   * failed handshake is reported and never reaches it. See {@link ServerTlsOptions}.
   */
  readonly tls?: ServerTlsOptions;
}

/** {@link ServerOptions} for a server whose `function` takes a {@link SocketStream}. */
export interface StreamServerOptions extends Omit<ServerOptions, "function" | "createStream"> {
  /** Always `true` here: `function` gets a ready {@link SocketStream} made with `streamOptions`. */
  readonly createStream: true;
  /**
   * Called with a {@link SocketStream} on each accepted connection, one at a time as a plain
   * server's `function` (the next connection is not taken until it returns or its promise
   * settles). The stream is made outside any process: it belongs to the process it is handed
   * to (a `processRunFunction` argument), or else to the first process that reads or writes it.
   */
  readonly function: ConnectionFunction<SocketStream>;
}

/**
 * How a layer above comm serves a server's connections with a protocol of its own (the
 * face's `startUpServer` uses them for the listener server), given to comm's core
 * `startUpServer` beside its options. Every hook is optional.
 */
export interface ServerHooks {
  /**
   * Throws if the options do not suit what serves the connections. Called once the service
   * is resolved, before anything is bound; what it throws is announced as a binding error is.
   */
  readonly check?: () => void;
  /**
   * Makes the connection function when the options have none (it may load its module on
   * demand). Called before the socket is bound: an inherited socket may hold connections
   * already, taken at the first turn of the event loop.
   */
  readonly dispatcher?: () => ConnectionFunction<net.Socket> | Promise<ConnectionFunction<net.Socket>>;
  /**
   * `true`: the connection function counts and limits connections itself (and calls
   * `countRefused` for those it turns away), so comm applies no `maxConnections` of its own.
   */
  readonly limitsConnections?: boolean;
  /**
   * Called with the real address of the listening socket once bound (not for a Unix socket),
   * before any connection is taken; throwing closes the socket and rejects the start.
   */
  readonly checkAddress?: (address: string) => void;
  /** Why this server cannot have `workers`, if it cannot: the start then rejects with `ERR_INVALID_ARGUMENT` and this message. */
  readonly workersRefused?: string;
}

/**
 * Lisp's `(format nil "~S server" service)`: a number prints bare (`10243 server`), a string in
 * double quotes with any double quote or backslash in it escaped by a backslash (`"confab" server`).
 */
export function defaultProcessName(service: number | string): string {
  if (typeof service === "number") return `${service} server`;
  return `${lispString(service)} server`;
}

/** A snapshot of a server's counters, from {@link ServerProcess.counters}. */
export interface ServerCounters {
  /** Connections accepted since start (refused ones included). */
  readonly accepted: number;
  /** Connections open now. */
  readonly active: number;
  /** Connections accepted and waiting for `function` to be free. */
  readonly waiting: number;
  /**
   * Connections refused: past `maxConnections`, with a bad PROXY header, or turned away by a
   * limit of the server's `function` (the listener server's sessions and start-ups).
   */
  readonly refused: number;
  /** Connections closed by `idleTimeout`. */
  readonly timedOut: number;
  /** Connections dropped for holding the most unread input when the server's total passed `maxBufferedInput`. */
  readonly dropped: number;
  /** Bytes received on the server's connections (closed and open). */
  readonly bytesIn: number;
  /** Bytes sent on the server's connections (closed and open). */
  readonly bytesOut: number;
  /** Times `function` threw or rejected, and accept errors. */
  readonly errors: number;
}

/** Where a server listens: what both kinds of server process are made with. */
export interface ServerAddress {
  readonly port: number;
  readonly address: string;
  readonly family: string;
}

// Set by ServerProcess's static block: they reach its private logger.
let logTo: (server: ServerProcess, event: ServerEvent) => void;
let hasLogger: (server: ServerProcess) => boolean;

/**
 * The process a server runs as: a {@link Process} that also carries the bound `port` and
 * `address`. Kill it (or call `serverTerminate`) to close the listening socket. This is the
 * abstract base of the two kinds: `TcpServerProcess` (one process listening itself) and
 * `ClusterServerProcess` (a service spread over workers); `instanceof ServerProcess` is true
 * of both.
 */
export abstract class ServerProcess extends Process implements ProcessResource {
  /** @internal */
  [kOwner]: Process | undefined;
  /** The bound port (the real one when the service was 0). */
  readonly port: number;
  /** The bound local address. */
  readonly address: string;
  /** `IPv4`, `IPv6`, or `unix` for a Unix domain socket. */
  readonly family: string;
  /**
   * Most connections open at once; more are refused with a one-line message. `Infinity` for
   * a server whose `function` applies its `maxConnections` itself (the listener server).
   */
  readonly maxConnections: number;

  readonly #logger: Logger | undefined;

  /** @internal Use `startUpServer`. */
  protected constructor(name: string, where: ServerAddress, limits: ConnectionLimits, logger: Logger | undefined) {
    super(name);
    this.#logger = logger;
    watchChildren(this, (child) => {
      this.#childEnded(child);
    });
    this.maxConnections = limits.maxConnections ?? Infinity;
    this.port = where.port;
    this.address = where.address;
    this.family = where.family;
    this.own(this);
  }

  /** The server's counters now. */
  abstract get counters(): ServerCounters;

  /** Hands `event` to the server's logger; a logger that throws is reported, not fatal. */
  #log(event: ServerEvent): void {
    if (this.#logger === undefined) return;
    try {
      this.#logger(event);
    } catch (error) {
      reportError(`the logger of ${this.name}`, error);
    }
  }

  static {
    logTo = (server, event) => {
      server.#log(event);
    };
    hasLogger = (server) => server.#logger !== undefined;
  }

  /** Logs how a process started by this server's `function` ended. */
  #childEnded(child: Process): void {
    if (this.#logger === undefined) return;
    const state = child.state as "finished" | "killed" | "failed";
    // One literal per shape, not a spread: a spread into an object literal is a generic copy.
    this.#log(
      state === "failed"
        ? {
            event: "process-ended",
            server: this.name,
            process: child.name,
            id: child.id,
            state,
            reason: errorMessage(child.error),
          }
        : { event: "process-ended", server: this.name, process: child.name, id: child.id, state },
    );
  }

  /** Killing the server process stops it serving at once (see {@link ProcessResource}). */
  abstract [kKill](): void;
}

/**
 * @internal Hands `event` to `server`'s logger (a logger that throws is reported, not fatal).
 * A function of the module, not a method, so that it is not on a server's public surface.
 */
export function logServerEvent(server: ServerProcess, event: ServerEvent): void {
  logTo(server, event);
}

/** @internal Whether `server` has a logger: events need not be made otherwise. */
export function serverLogs(server: ServerProcess): boolean {
  return hasLogger(server);
}

/** @internal An error as one line: `Name: message`, or the message alone. */
export function errorMessage(error: unknown, withName = true): string {
  if (!(error instanceof Error)) return String(error);
  return withName ? `${error.name}: ${error.message}` : error.message;
}

/** @internal Writes the start-up line to `announce`, or hands it the address or the error. */
export function announceTo(
  announce: Announce | undefined,
  line: string,
  address: net.AddressInfo | null,
  error: Error | null,
): void {
  if (announce === undefined || announce === false) return;
  try {
    if (typeof announce === "function") announce(address, error);
    else if (error === null) (announce === true ? process.stdout : announce).write(`${line}\n`);
  } catch (failure) {
    reportError("announce", failure);
  }
}

/** @internal What starts one server in this process: `workers.ts` calls it in each worker. */
export type StartOneServer = (
  options: ServerOptions | StreamServerOptions,
  hooks: ServerHooks,
) => Promise<ServerProcess>;
