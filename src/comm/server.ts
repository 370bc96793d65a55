/**
 * The TCP server: {@link TcpServerProcess}, a server process that listens itself, and comm's
 * core {@link startUpServer}, which starts one (or, with `workers`, a `ClusterServerProcess`
 * from `workers.ts`, loaded on demand). The core knows no default `function`: the package's
 * `startUpServer` (`src/start-up-server.ts`) fills in the listener server and the monitor.
 *
 * @module
 */
import net from "node:net";
import { isThenable, kKill, runAsParentOf, processKill, startProcess } from "../mp/process.js";
import { PROXY_HEADER_TIMEOUT_MS, readProxyHeader } from "./proxy-protocol.js";
import { serverLogger, type Logger, type ServerEvent } from "./server-log.js";
import { ReportLimiter, reportError } from "../report.js";
import { formatHostPort, peerOf } from "./address.js";
import { endConnection, SocketStream } from "./socket-stream.js";
import { budgetLimit, InputBudget } from "./input-budget.js";
import { serverOf, watchAccepted, type SocketServer } from "./socket-listeners.js";
import { DEFAULT_SERVICE, resolveService } from "./services.js";
import {
  bindEndpoint,
  listeningLine,
  unixSocketPath,
  untilServerClosed,
  UNIX_FAMILY,
  type BoundEndpoint,
} from "./endpoint.js";
import { ConfabError, ErrorCodes } from "../errors.js";
import {
  announceTo,
  defaultProcessName,
  errorMessage,
  logServerEvent,
  ServerProcess,
  serverLogs,
  type ConnectionFunction,
  type ConnectionLimits,
  type ServerCounters,
  type ServerHooks,
  type ServerOptions,
  type StreamServerOptions,
} from "./server-base.js";

/** Whether `net.Server#listen` takes `reusePort` here: Node 22.12+ and 23.1+. */
const REUSE_PORT_SUPPORTED = ((): boolean => {
  const [major = 0, minor = 0] = process.versions.node.split(".").map(Number);
  return major > 23 || (major === 23 && minor >= 1) || (major === 22 && minor >= 12);
})();

/** What is set on every accepted socket: `TCP_NODELAY`, and `SO_KEEPALIVE` with its idle delay. */
interface SocketTuning {
  readonly nodelay: boolean;
  readonly keepalive: number | undefined;
}

/** How often one kind of accept error is reported while it repeats. */
const ACCEPT_ERROR_REPORT_MS = 5000;

/** A socket's `timeout` event under `idleTimeout`: its server counts it and ends it, saying why. */
function onSocketIdle(this: net.Socket): void {
  const server = serverOf(this);
  if (server === undefined) this.destroy();
  else server.idle(this);
}

/**
 * The process of a server that listens itself, in this process: a {@link ServerProcess} that
 * accepts connections on its socket and hands them to its `function` one at a time. Kill it
 * (or call {@link serverTerminate}) to close the listening socket.
 */
export class TcpServerProcess extends ServerProcess {
  readonly #server: net.Server;
  readonly #watcher: SocketServer;
  readonly #tuning: SocketTuning | undefined;
  readonly #dispatch: (handle: net.Socket) => unknown;
  readonly #queue: net.Socket[] = [];
  readonly #active = new Set<net.Socket>();
  readonly #idleTimeout: number;
  readonly #proxyProtocol: boolean;
  readonly #inputBudget: InputBudget | undefined;
  #busy = false;
  #accepted = 0;
  #refused = 0;
  #timedOut = 0;
  #dropped = 0;
  #errors = 0;
  #closedBytesIn = 0;
  #closedBytesOut = 0;
  readonly #acceptReports = new ReportLimiter(1, ACCEPT_ERROR_REPORT_MS);

  /** @internal Use {@link startUpServer}. */
  constructor(
    name: string,
    endpoint: BoundEndpoint,
    dispatch: (handle: net.Socket) => unknown,
    limits: ConnectionLimits = {},
    logger?: Logger,
    tuning: SocketTuning = { nodelay: false, keepalive: undefined },
  ) {
    super(name, endpoint, limits, logger);
    this.#idleTimeout = limits.idleTimeout ?? 0;
    this.#tuning = tuning.nodelay || tuning.keepalive !== undefined ? tuning : undefined;
    this.#proxyProtocol = (limits.proxyProtocol ?? false) && endpoint.proxyHandled !== true;
    const server = endpoint.server;
    this.#server = server;
    this.#dispatch = dispatch;
    const limit = budgetLimit(limits.maxBufferedInput);
    this.#inputBudget =
      limit === undefined
        ? undefined
        : new InputBudget(limit, (peer, _held, reason) => {
            this.#dropped++;
            this.#log({ event: "dropped", server: name, peer, reason });
          });
    // Every connection's local end is the listening address, unless that is a wildcard.
    const knownEnd = endpoint.family !== UNIX_FAMILY && endpoint.address !== "0.0.0.0" && endpoint.address !== "::";
    this.#watcher = {
      localEnd: knownEnd ? Object.freeze({ address: endpoint.address, port: endpoint.port }) : undefined,
      inputBudget: this.#inputBudget,
      closed: (socket) => {
        this.#socketClosed(socket);
      },
      idle: (socket) => {
        this.#socketIdle(socket);
      },
      refused: (socket, reason) => {
        this.#countRefused(socket, reason);
      },
      log: (event) => {
        this.#log(event);
      },
      name,
    };
    server.on("connection", this.#onConnection);
    server.on("error", this.#onError);
  }

  /** The server's counters now. */
  override get counters(): ServerCounters {
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
      dropped: this.#dropped,
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
      this.#countRefused(socket, `maxConnections ${this.maxConnections}`);
      socket.end(`Error: too many connections (maxConnections ${this.maxConnections}); try again later\n`, () =>
        socket.destroy(),
      );
      return;
    }
    // Sockets fail while waiting or after: the shared listeners keep a reset from crashing
    // the host, and tell this server when the connection is gone.
    watchAccepted(socket, this.#watcher);
    const tuning = this.#tuning;
    if (tuning !== undefined) {
      if (tuning.nodelay) socket.setNoDelay(true);
      if (tuning.keepalive !== undefined) socket.setKeepAlive(true, tuning.keepalive);
    }
    this.#active.add(socket);
    if (this.#idleTimeout > 0) {
      socket.setTimeout(this.#idleTimeout);
      socket.on("timeout", onSocketIdle);
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
    if (serverLogs(this)) this.#log({ event: "accepted", server: this.name, peer: peerOf(socket) });
    if (this.#busy) {
      this.#queue.push(socket);
      return;
    }
    this.#serve(socket);
  }

  #log(event: ServerEvent): void {
    logServerEvent(this, event);
  }

  #countRefused(socket: net.Socket, reason: string): void {
    this.#refused++;
    this.#log({ event: "refused", server: this.name, peer: peerOf(socket), reason });
  }

  #socketClosed(socket: net.Socket): void {
    this.#active.delete(socket);
    this.#closedBytesIn += socket.bytesRead;
    this.#closedBytesOut += socket.bytesWritten;
  }

  #socketIdle(socket: net.Socket): void {
    this.#timedOut++;
    // The peer is told why in one line, after what is queued for it; its stream's reads see
    // end of file. No second idle period: the socket is dropped if the peer has not closed
    // within a few seconds.
    socket.setTimeout(0);
    endConnection(socket, `connection idle for ${this.#idleTimeout} ms (the server's idleTimeout); closing`);
  }

  readonly #onError = (error: NodeJS.ErrnoException): void => {
    this.#errors++;
    // Out of descriptors, the OS keeps failing accepts until some close: say so once in a
    // while, not once per attempt. libuv keeps the listening socket and drops the
    // connections it cannot accept, so the server recovers by itself.
    const code = error.code ?? error.name;
    const held = this.#acceptReports.allow(code);
    if (held === false) return;
    const hint =
      (code === "EMFILE" || code === "ENFILE"
        ? " (out of file descriptors: connections are dropped until some close)"
        : "") + (held > 0 ? ` (${held} more accept errors not reported)` : "");
    this.#log({ event: "error", server: this.name, message: `${error.message}${hint}` });
    reportError(`${this.name} on ${formatHostPort(this.address, this.port)}${hint}`, error);
  };

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

  /** Killing the server process closes the listening socket at once (see {@link ProcessResource}). */
  override [kKill](): void {
    this.#server.close();
    for (const socket of this.#queue.splice(0)) socket.destroy();
    this.#log({ event: "stopped", server: this.name, accepted: this.#accepted, refused: this.#refused });
  }
}

function ignoreError(): void {
  // The stream or handler that owns the socket sees the error through its own listener.
}

/**
 * comm's core `comm:start-up-server`: starts a TCP server in a new process serving `function`
 * and resolves to that process once the port is bound. Rejects with a {@link ConfabError}
 * naming the port or service when binding fails (`EADDRINUSE`, `EACCES`,
 * `ERR_UNKNOWN_SERVICE`). It knows no default: without `function` (and without `hooks` that
 * make one) it rejects with `ERR_INVALID_ARGUMENT`. The package's `startUpServer` is the
 * preset over it that serves listeners without a `function`; use that one.
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
export function startUpServer(options: StreamServerOptions, hooks?: ServerHooks): Promise<ServerProcess>;
export function startUpServer(options?: ServerOptions, hooks?: ServerHooks): Promise<ServerProcess>;
export async function startUpServer(
  options: ServerOptions | StreamServerOptions = {},
  hooks: ServerHooks = {},
): Promise<ServerProcess> {
  if (options.workers !== undefined && options.workers !== 1) {
    // Loaded on demand: a one-process server never loads node:cluster.
    return (await import("./workers.js")).startUpWorkers(options, hooks, startOneServer);
  }
  return startOneServer(options, hooks);
}

/** Starts a server that listens in this process: {@link startUpServer} without workers. */
async function startOneServer(
  options: ServerOptions | StreamServerOptions,
  hooks: ServerHooks = {},
): Promise<TcpServerProcess> {
  const service = options.service ?? DEFAULT_SERVICE;
  const processName = options.processName ?? defaultProcessName(service);
  const host = options.address ?? "127.0.0.1";
  let port: number;
  let path: string | undefined;
  try {
    // A path (`unix:PATH`, or anything with a `/`) is a Unix domain socket: no port.
    path = unixSocketPath(service);
    port = path === undefined ? resolveService(service) : 0;
    budgetLimit(options.maxBufferedInput); // checked before anything is bound
    hooks.check?.();
    if (options.reusePort === true && !REUSE_PORT_SUPPORTED) {
      throw new ConfabError(
        ErrorCodes.INVALID_ARGUMENT,
        `cannot start ${processName}: reusePort needs Node 22.12 or later (this is ${process.version})`,
      );
    }
  } catch (error) {
    announceTo(options.announce, "", null, error as Error);
    throw error;
  }

  // Ready before the socket listens: an inherited socket may hold connections already, taken
  // at the first turn of the event loop.
  const dispatch = await connectionDispatcher(options, hooks, processName);
  let endpoint: BoundEndpoint;
  try {
    endpoint = await bindEndpoint({
      port,
      host,
      path,
      fd: options.fd,
      backlog: options.backlog,
      reusePort: options.reusePort,
      tls: options.tls,
      proxyProtocol: options.proxyProtocol,
      processName,
    });
  } catch (error) {
    announceTo(options.announce, "", null, error as Error);
    throw error;
  }
  // No await from here until the server process listens for connections: none may be missed.
  if (hooks.checkAddress !== undefined && endpoint.family !== UNIX_FAMILY) {
    try {
      hooks.checkAddress(endpoint.address);
    } catch (error) {
      endpoint.server.close();
      throw error;
    }
  }

  const limits: ConnectionLimits = {
    // A function that limits its connections itself gets none from here, so that (for the
    // listener server) a connection still starting never takes a session's place.
    ...(hooks.limitsConnections === true || options.maxConnections === undefined
      ? {}
      : { maxConnections: options.maxConnections }),
    ...(options.idleTimeout === undefined ? {} : { idleTimeout: options.idleTimeout }),
    ...(options.maxBufferedInput === undefined ? {} : { maxBufferedInput: options.maxBufferedInput }),
    ...(options.proxyProtocol === undefined ? {} : { proxyProtocol: options.proxyProtocol }),
  };
  const logger = serverLogger(options.logger, options.announce);
  const started = new TcpServerProcess(processName, endpoint, dispatch, limits, logger, {
    nodelay: options.nodelay === true,
    keepalive: options.keepalive === true ? 0 : options.keepalive === false ? undefined : options.keepalive,
  });
  // The process lives as long as the listening socket.
  startProcess(started, () => untilServerClosed(endpoint.server), []);
  const bound = { address: endpoint.address, family: endpoint.family, port: endpoint.port };
  announceTo(options.announce, listeningLine(processName, bound), bound, null);
  // The announce line already says it on the default log stream; a chosen logger hears it too.
  if (options.logger !== undefined)
    logServerEvent(started, { event: "started", server: processName, address: bound.address, port: bound.port });
  return started;
}

async function connectionDispatcher(
  options: ServerOptions | StreamServerOptions,
  hooks: ServerHooks,
  processName: string,
): Promise<(handle: net.Socket) => unknown> {
  const fn = options.function;
  if (fn === undefined) {
    if (hooks.dispatcher !== undefined) return hooks.dispatcher();
    throw new ConfabError(
      ErrorCodes.INVALID_ARGUMENT,
      `cannot start ${processName}: comm's core startUpServer needs a function; the package's startUpServer serves listeners without one`,
    );
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
