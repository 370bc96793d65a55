import net from "node:net";
import { isThenable, kKill, kOwner, Process, processKill, runAsParentOf, startProcess, watchChildren, type ProcessResource } from "../mp/process.js";
import { PROXY_HEADER_TIMEOUT_MS, readProxyHeader } from "./proxy-protocol.js";
import { serverLogger, type Logger, type LoggerOption, type ServerEvent } from "./server-log.js";
import { reportError } from "../report.js";
import { endConnection, formatHostPort, SocketStream, type SocketStreamOptions } from "./socket-stream.js";
import { serverOf, watchAccepted, type LocalEnd } from "./socket-listeners.js";
import { DEFAULT_SERVICE, resolveService } from "./services.js";
import { bindEndpoint, describeEndpoint, unixSocketPath, UNIX_FAMILY, type BoundEndpoint, type ServerTlsOptions } from "./endpoint.js";
import { ConfabError, ErrorCodes } from "../errors.js";
import type { MonitorOption } from "../monitor/attach.js";

/** A server's `function`: called with each accepted socket, one at a time. */
export type ConnectionFunction<H> = (handle: H) => unknown;

/**
 * What `announce` may be: `true` for standard output, a writable stream, or a function called
 * with the bound address once listening (or with the error if binding failed).
 */
export type Announce =
  | boolean
  | NodeJS.WritableStream
  | ((address: net.AddressInfo | null, error: Error | null) => void);

/** Options of {@link startUpServer}. */
export interface StartUpServerOptions extends ConnectionLimits, ServerLogging {
  /**
   * Called with each accepted connection's socket handle (a paused `net.Socket`: no byte is
   * lost before a stream is made on it). The next connection is not taken until it returns,
   * or until its promise settles. It runs outside any process, so what it makes belongs to
   * the process it starts. Without it, the server is the built-in listener server.
   */
  readonly function?: ConnectionFunction<net.Socket>;
  /** Hand `function` a ready {@link SocketStream} (made with `streamOptions`) instead of the socket. */
  readonly createStream?: boolean;
  /** Options for the streams the server makes (with `createStream`, and the listener's). */
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
  /**
   * Serve an inherited, already listening socket (a file descriptor) instead of binding
   * `service`/`address`: systemd socket activation passes it as fd 3 (`confab serve` takes it
   * from `LISTEN_FDS`/`LISTEN_PID` by itself). The listener server checks the socket's real
   * address against its loopback rule.
   */
  readonly fd?: number;
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
   * Processes to spread the service over (default 1: this process alone). With more, the
   * program's entry script runs again in each of that many `node:cluster` workers, where this
   * same call just listens on the shared port; here it resolves once all listen, and killing
   * it stops them. `function` runs in the workers, never here; the listener server refuses
   * workers. See `ClusterServerProcess` (src/comm/workers.ts).
   */
  readonly workers?: number;
  /**
   * Speak TLS (`node:tls`): `{ key, cert }`, plus `ca` to admit only clients whose certificate
   * that CA signed. `function` then gets a `tls.TLSSocket` whose handshake has succeeded; a
   * failed handshake is reported and never reaches it. See {@link ServerTlsOptions}.
   */
  readonly tls?: ServerTlsOptions;
  /**
   * Listener server only: a shared secret (at least 16 visible ASCII characters) every client
   * must send first, as the line `token SECRET`, before its name line. Compared in constant
   * time, never echoed or logged; a wrong one gets one generic refusal after a delay.
   */
  readonly token?: string;
  /**
   * Also serve the live monitor page (see `startMonitor`): a port (0: any free one), or
   * `{ port, address }` (loopback only). The monitor is the server's child and is killed with
   * it; `monitorOf(server)` gives its `url`. Not with `workers`.
   */
  readonly monitor?: MonitorOption;
}

/** Limits on a server's connections. */
export interface ConnectionLimits {
  /**
   * Most connections open at once (default: no limit). A connection past the limit is
   * accepted, told `Error: too many connections ...` in one line, and closed; the counters
   * count it as refused. For the listener server it is the most sessions at once (default
   * 100): a connection counts once it has authenticated and named its listener, and those
   * not yet there are limited by `maxStartups` instead.
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
}

/** Where a server's events go; see {@link LoggerOption}. */
export interface ServerLogging {
  /** A function, `"text"`, `"json"`, or `false`; default: text lines on the `announce` stream when there is one. */
  readonly logger?: LoggerOption;
}

/** {@link StartUpServerOptions} for a server whose `function` takes a {@link SocketStream}. */
export interface StartUpStreamServerOptions extends Omit<StartUpServerOptions, "function" | "createStream"> {
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
 * Lisp's `(format nil "~S server" service)`: a number prints bare (`10243 server`), a string in
 * double quotes with any double quote or backslash in it escaped by a backslash (`"confab" server`).
 */
export function defaultProcessName(service: number | string): string {
  if (typeof service === "number") return `${service} server`;
  return `"${service.replace(/["\\]/g, "\\$&")}" server`;
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
  /** Bytes received on the server's connections (closed and open). */
  readonly bytesIn: number;
  /** Bytes sent on the server's connections (closed and open). */
  readonly bytesOut: number;
  /** Times `function` threw or rejected, and accept errors. */
  readonly errors: number;
}

/** How often one kind of accept error is reported while it repeats. */
const ACCEPT_ERROR_REPORT_MS = 5000;

/**
 * The process a server runs as: a {@link Process} that also carries the bound `port` and
 * `address`. Kill it (or call {@link serverTerminate}) to close the listening socket.
 */
export class ServerProcess extends Process implements ProcessResource {
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
   * the listener server, which applies its `maxConnections` to sessions itself.
   */
  readonly maxConnections: number;

  readonly #server: net.Server;
  readonly #localEnd: LocalEnd | undefined;
  readonly #dispatch: (handle: net.Socket) => unknown;
  readonly #queue: net.Socket[] = [];
  readonly #active = new Set<net.Socket>();
  readonly #idleTimeout: number;
  readonly #proxyProtocol: boolean;
  readonly #logger: Logger | undefined;
  #busy = false;
  #accepted = 0;
  #refused = 0;
  #timedOut = 0;
  #errors = 0;
  #closedBytesIn = 0;
  #closedBytesOut = 0;
  #lastAcceptError = "";
  #lastAcceptErrorAt = 0;

  /** Not for users: use {@link startUpServer}. */
  constructor(name: string, endpoint: BoundEndpoint, dispatch: (handle: net.Socket) => unknown, limits: ConnectionLimits = {}, logger?: Logger) {
    super(name);
    this.#logger = logger;
    watchChildren(this, (child) => this.#childEnded(child));
    this.maxConnections = limits.maxConnections ?? Infinity;
    this.#idleTimeout = limits.idleTimeout ?? 0;
    this.#proxyProtocol = (limits.proxyProtocol ?? false) && endpoint.proxyHandled !== true;
    const server = endpoint.server;
    this.port = endpoint.port;
    this.address = endpoint.address;
    this.family = endpoint.family;
    this.#server = server;
    this.#dispatch = dispatch;
    // Every connection's local end is the listening address, unless that is a wildcard.
    if (endpoint.family !== UNIX_FAMILY && endpoint.address !== "0.0.0.0" && endpoint.address !== "::") {
      this.#localEnd = Object.freeze({ address: endpoint.address, port: endpoint.port });
    }
    this.own(this);
    server.on("connection", this.#onConnection);
    server.on("error", this.#onError);
  }

  /** The server's counters now. */
  get counters(): ServerCounters {
    let bytesIn = this.#closedBytesIn;
    let bytesOut = this.#closedBytesOut;
    for (const socket of this.#active) {
      bytesIn += socket.bytesRead;
      bytesOut += socket.bytesWritten;
    }
    return {
      accepted: this.#accepted,
      active: this.#active.size,
      waiting: this.#queue.length,
      refused: this.#refused,
      timedOut: this.#timedOut,
      bytesIn,
      bytesOut,
      errors: this.#errors,
    };
  }

  readonly #onConnection = (socket: net.Socket): void => {
    this.#accepted++;
    if (this.#active.size >= this.maxConnections) {
      // Without a listener, a reset while we say why would crash the host.
      socket.on("error", ignoreError);
      this.countRefused(socket, `maxConnections ${this.maxConnections}`);
      socket.end(`Error: too many connections (maxConnections ${this.maxConnections}); try again later\n`, () => socket.destroy());
      return;
    }
    // Sockets fail while waiting or after: the shared listeners keep a reset from crashing
    // the host, and tell this server when the connection is gone.
    watchAccepted(socket, this);
    this.#active.add(socket);
    if (this.#idleTimeout > 0) {
      socket.setTimeout(this.#idleTimeout);
      socket.on("timeout", ServerProcess.#onSocketIdle);
    }
    if (this.#proxyProtocol) {
      // The header comes first and says who the client is; the connection waits for it
      // without holding up the server.
      readProxyHeader(socket, PROXY_HEADER_TIMEOUT_MS).then(
        () => {
          this.#admit(socket);
        },
        (error: unknown) => {
          this.#refused++;
          this.#log({ event: "refused", server: this.name, peer: peerOf(socket), reason: errorMessage(error, false) });
          socket.destroy();
        },
      );
      return;
    }
    this.#admit(socket);
  };

  #admit(socket: net.Socket): void {
    if (this.#logger !== undefined) this.#log({ event: "accepted", server: this.name, peer: peerOf(socket) });
    if (this.#busy) {
      this.#queue.push(socket);
      return;
    }
    this.#serve(socket);
  }

  /**
   * @internal Counts `socket` as refused and logs why: for a `function` with limits of its
   * own, which closes the connection itself.
   */
  countRefused(socket: net.Socket, reason: string): void {
    this.#refused++;
    this.#log({ event: "refused", server: this.name, peer: peerOf(socket), reason });
  }

  /** @internal Every connection's local end (the listening address), unless that is a wildcard. */
  get localEnd(): LocalEnd | undefined {
    return this.#localEnd;
  }

  /** @internal One of this server's connections closed. */
  socketClosed(socket: net.Socket): void {
    this.#active.delete(socket);
    this.#closedBytesIn += socket.bytesRead;
    this.#closedBytesOut += socket.bytesWritten;
  }

  static #onSocketIdle(this: net.Socket): void {
    const server = serverOf(this);
    if (!(server instanceof ServerProcess)) {
      this.destroy();
      return;
    }
    server.#timedOut++;
    // The peer is told why in one line, after what is queued for it; its stream's reads see
    // end of file. No second idle period: the socket is dropped if the peer has not closed
    // within a few seconds.
    this.setTimeout(0);
    endConnection(this, `connection idle for ${server.#idleTimeout} ms (the server's idleTimeout); closing`);
  }

  readonly #onError = (error: NodeJS.ErrnoException): void => {
    this.#errors++;
    // Out of descriptors, the OS keeps failing accepts until some close: say so once in a
    // while, not once per attempt. libuv keeps the listening socket and drops the
    // connections it cannot accept, so the server recovers by itself.
    const code = error.code ?? error.name;
    const now = Date.now();
    if (code === this.#lastAcceptError && now - this.#lastAcceptErrorAt < ACCEPT_ERROR_REPORT_MS) return;
    this.#lastAcceptError = code;
    this.#lastAcceptErrorAt = now;
    const hint = code === "EMFILE" || code === "ENFILE" ? " (out of file descriptors: connections are dropped until some close)" : "";
    this.#log({ event: "error", server: this.name, message: `${error.message}${hint}` });
    reportError(`${this.name} on ${formatHostPort(this.address, this.port)}${hint}`, error);
  };

  /** @internal Hands `event` to the server's logger; a logger that throws is reported, not fatal. */
  log(event: ServerEvent): void {
    this.#log(event);
  }

  #log(event: ServerEvent): void {
    if (this.#logger === undefined) return;
    try {
      this.#logger(event);
    } catch (error) {
      reportError(`the logger of ${this.name}`, error);
    }
  }

  /** Logs how a process started by this server's `function` ended. */
  #childEnded(child: Process): void {
    if (this.#logger === undefined) return;
    const reason = child.state === "failed" ? errorMessage(child.error) : undefined;
    this.#log({
      event: "process-ended",
      server: this.name,
      process: child.name,
      id: child.id,
      state: child.state as "finished" | "killed" | "failed",
      ...(reason === undefined ? {} : { reason }),
    });
  }

  #serve(socket: net.Socket): void {
    for (;;) {
      let outcome: unknown;
      try {
        // Processes the function starts are this server's children (for logging and ps()).
        outcome = runAsParentOf(this, this.#dispatch, socket);
      } catch (error) {
        this.#functionFailed(error);
      }
      if (isThenable(outcome)) {
        this.#busy = true;
        outcome.then(this.#next, (error: unknown) => {
          this.#functionFailed(error);
          this.#next();
        });
        return;
      }
      const waiting = this.#queue.shift();
      if (waiting === undefined) return;
      if (this.state !== "running") {
        this.#dropQueue(waiting);
        return;
      }
      socket = waiting;
    }
  }

  readonly #next = (): void => {
    this.#busy = false;
    const waiting = this.#queue.shift();
    if (waiting === undefined) return;
    if (this.state !== "running") this.#dropQueue(waiting);
    else this.#serve(waiting);
  };

  #functionFailed(error: unknown): void {
    this.#errors++;
    this.#log({ event: "error", server: this.name, message: `function failed: ${errorMessage(error)}` });
    reportError(`the function of ${this.name} failed`, error);
  }

  #dropQueue(first: net.Socket): void {
    first.destroy();
    for (const socket of this.#queue.splice(0)) socket.destroy();
  }

  /** @internal The process's body: lives as long as the listening socket. */
  untilClosed(): Promise<void> {
    return new Promise((resolve) => {
      if (!this.#server.listening) resolve();
      else this.#server.once("close", () => resolve());
    });
  }

  /** Killing the server process closes the listening socket at once (see {@link ProcessResource}). */
  [kKill](): void {
    this.#server.close();
    for (const socket of this.#queue.splice(0)) socket.destroy();
    this.#log({ event: "stopped", server: this.name, accepted: this.#accepted, refused: this.#refused });
  }
}

function peerOf(socket: net.Socket): string {
  const address = socket.remoteAddress;
  return address === undefined ? "?" : formatHostPort(address, socket.remotePort ?? "?");
}

function errorMessage(error: unknown, withName = true): string {
  if (!(error instanceof Error)) return String(error);
  return withName ? `${error.name}: ${error.message}` : error.message;
}

function ignoreError(): void {
  // The stream or handler that owns the socket sees the error through its own listener.
}


/** @internal Writes the start-up line to `announce`, or hands it the address or the error. */
export function announceTo(announce: Announce | undefined, line: string, address: net.AddressInfo | null, error: Error | null): void {
  if (announce === undefined || announce === false) return;
  try {
    if (typeof announce === "function") announce(address, error);
    else if (error === null) (announce === true ? process.stdout : announce).write(`${line}\n`);
  } catch (failure) {
    reportError("announce", failure);
  }
}

/**
 * Starts a TCP server in a new process, as LispWorks' `comm:start-up-server`, and resolves to
 * that process once the port is bound. Rejects with a {@link ConfabError} naming the port or
 * service when binding fails (`EADDRINUSE`, `EACCES`, `ERR_UNKNOWN_SERVICE`).
 *
 * @example
 * ```ts
 * import type { Socket } from "node:net";
 * import { startUpServer, SocketStream, processRunFunction, processKill } from "confab";
 *
 * async function talkOnStream(stream: SocketStream) {
 *   for await (const line of stream) {
 *     stream.writeLine(`You sent: '${line}'`);
 *     stream.forceOutput();
 *   }
 *   stream.close();
 * }
 * function makeStreamAndTalk(handle: Socket) {
 *   const stream = new SocketStream({ socket: handle, direction: "io" });
 *   processRunFunction(`talk ${stream.remotePort}`, {}, talkOnStream, stream);
 * }
 * const server = await startUpServer({ function: makeStreamAndTalk, service: 10244 });
 * // ... later
 * processKill(server);
 * ```
 */
export function startUpServer(options: StartUpStreamServerOptions): Promise<ServerProcess>;
export function startUpServer(options?: StartUpServerOptions): Promise<ServerProcess>;
export async function startUpServer(options: StartUpServerOptions | StartUpStreamServerOptions = {}): Promise<ServerProcess> {
  if (options.workers !== undefined && options.workers !== 1) {
    if (options.monitor !== undefined) throw new ConfabError(ErrorCodes.INVALID_ARGUMENT, "the monitor option cannot be combined with workers: each worker is a program of its own; start a monitor in each with startMonitor");
    // Loaded on demand, like the listener: a one-process server never loads node:cluster.
    return (await import("./workers.js")).startUpWorkers(options);
  }
  const service = options.service ?? DEFAULT_SERVICE;
  const processName = options.processName ?? defaultProcessName(service);
  const host = options.address ?? "127.0.0.1";
  let port: number;
  let path: string | undefined;
  try {
    // A path (`unix:PATH`, or anything with a `/`) is a Unix domain socket: no port.
    path = unixSocketPath(service);
    port = path === undefined ? resolveService(service) : 0;
    if (options.token !== undefined && options.function !== undefined) {
      throw new ConfabError(ErrorCodes.INVALID_ARGUMENT, `cannot start ${processName}: the token option is for the listener server; a server with a function authenticates its own clients`);
    }
  } catch (error) {
    announceTo(options.announce, "", null, error as Error);
    throw error;
  }

  // Ready before the socket listens: an inherited socket may hold connections already, taken
  // at the first turn of the event loop. Its address is known only once it is ours, so the
  // listener's exposure rule is checked then.
  const dispatch = await connectionDispatcher(options.fd === undefined ? options : { ...options, address: "127.0.0.1" });
  const exposureRule =
    options.fd !== undefined && options.function === undefined ? (await import("../listener/listener-server.js")).assertListenerExposure : undefined;
  let endpoint: BoundEndpoint;
  try {
    endpoint = await bindEndpoint({ port, host, path, fd: options.fd, backlog: options.backlog, tls: options.tls, proxyProtocol: options.proxyProtocol, processName });
  } catch (error) {
    announceTo(options.announce, "", null, error as Error);
    throw error;
  }
  // No await from here until the server process listens for connections: none may be missed.
  if (exposureRule !== undefined && endpoint.family !== UNIX_FAMILY) {
    try {
      exposureRule(options as StartUpServerOptions, endpoint.address);
    } catch (error) {
      endpoint.server.close();
      throw error;
    }
  }

  const limits: ConnectionLimits = {
    // The listener server counts its sessions against maxConnections itself, and its
    // connections not yet sessions against maxStartups: here it has no limit, so that a
    // connection still starting never takes a session's place.
    ...(options.function === undefined || options.maxConnections === undefined ? {} : { maxConnections: options.maxConnections }),
    ...(options.idleTimeout === undefined ? {} : { idleTimeout: options.idleTimeout }),
    ...(options.proxyProtocol === undefined ? {} : { proxyProtocol: options.proxyProtocol }),
  };
  const logger = serverLogger(options.logger, options.announce);
  const started = new ServerProcess(processName, endpoint, dispatch, limits, logger);
  startProcess(started, () => started.untilClosed(), []);
  const bound = { address: endpoint.address, family: endpoint.family, port: endpoint.port };
  announceTo(options.announce, `${processName}: listening on ${describeEndpoint(bound)}`, bound, null);
  // The announce line already says it on the default log stream; a chosen logger hears it too.
  if (options.logger !== undefined) started.log({ event: "started", server: processName, address: bound.address, port: bound.port });
  if (options.monitor !== undefined) await (await import("../monitor/attach.js")).attachMonitor(started, options.monitor, options.announce);
  return started;
}

async function connectionDispatcher(options: StartUpServerOptions | StartUpStreamServerOptions): Promise<(handle: net.Socket) => unknown> {
  const fn = options.function;
  if (fn === undefined) {
    // Loaded on demand: a plain TCP server never pays for the REPL's parser and type stripper.
    const { listenerServer } = await import("../listener/listener-server.js");
    return listenerServer(options as StartUpServerOptions);
  }
  if (options.createStream === true) {
    const streamFn = fn as ConnectionFunction<SocketStream>;
    const streamOptions = options.streamOptions ?? {};
    return (handle) => streamFn(new SocketStream({ ...streamOptions, socket: handle }));
  }
  return fn as ConnectionFunction<net.Socket>;
}

/**
 * Closes a server's listening socket at once (the port can be bound again immediately), as
 * newer LispWorks' `comm:server-terminate`. Connections it started live on. Returns `true`
 * if the server was running.
 */
export function serverTerminate(server: ServerProcess): boolean {
  return processKill(server);
}
