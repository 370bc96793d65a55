/**
 * The package's `startUpServer`: a thin preset over comm's core (as hono's `hono.ts` over
 * `hono-base.ts`). comm's core serves a `function` and knows no default; this fills in the
 * built-in listener server when there is no `function`, and attaches the live monitor when
 * `monitor` is given. It is the `startUpServer` of the package's `comm` namespace and the
 * named export; the listener server and the monitor are loaded on demand, so a plain TCP
 * server never pays for the REPL's parser or the page.
 *
 * @module
 */
import type net from "node:net";
import { ConfabError, ErrorCodes } from "./errors.js";
import { startUpServer as startUpCoreServer } from "./comm/server.js";
import {
  defaultProcessName,
  type ConnectionFunction,
  type ServerHooks,
  type ServerOptions,
  type ServerProcess,
} from "./comm/server-base.js";
import { DEFAULT_SERVICE } from "./comm/services.js";
import type { SocketStream } from "./comm/socket-stream.js";
import type { ListenerServerSettings } from "./listener/listener-server.js";
import type { MonitorOption } from "./monitor/attach.js";

/** Options of {@link startUpServer}: comm's server options, the listener server's, and the monitor. */
export interface StartUpServerOptions extends ServerOptions, ListenerServerSettings {
  /**
   * Called with each accepted connection's socket handle (a paused `net.Socket`: no byte is
   * lost before a stream is made on it). The next connection is not taken until it returns,
   * or until its promise settles. It runs outside any process, so what it makes belongs to
   * the process it starts. Without it, the server is the built-in listener server.
   */
  readonly function?: ConnectionFunction<net.Socket>;
  /**
   * Most connections open at once (default: no limit). A connection past the limit is
   * accepted, told `Error: too many connections ...` in one line, and closed; the counters
   * count it as refused. For the listener server it is the most sessions at once (default
   * 100): a connection counts once it has authenticated and named its listener, and those
   * not yet there are limited by `maxStartups` instead.
   */
  readonly maxConnections?: number;
  /**
   * Serve an inherited, already listening socket (a file descriptor) instead of binding
   * `service`/`address`: systemd socket activation passes it as fd 3 (`confab serve` takes it
   * from `LISTEN_FDS`/`LISTEN_PID` by itself). The listener server checks the socket's real
   * address against its loopback rule.
   */
  readonly fd?: number;
  /**
   * Processes to spread the service over (default 1: this process alone). With more, the
   * program's entry script runs again in each of that many `node:cluster` workers, where this
   * same call just listens on the shared port; here it resolves once all listen, and killing
   * it stops them. `function` runs in the workers, never here; the listener server refuses
   * workers. See `ClusterServerProcess` (src/comm/workers.ts).
   */
  readonly workers?: number;
  /**
   * Also serve the live monitor page (see `startMonitor`): a port (0: any free one), or
   * `{ port, address }` (loopback only). The monitor is the server's child and is killed with
   * it; `monitorOf(server)` gives its `url`. Not with `workers`.
   */
  readonly monitor?: MonitorOption;
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

/** The `comm` namespace listener sessions see: the package's, once `src/index.ts` has set it. */
let sessionComm: object | undefined;

/**
 * @internal Sets the `comm` namespace listener sessions see (`src/index.ts` passes the
 * package's, whose `startUpServer` is this one).
 */
export function setSessionComm(namespace: object): void {
  sessionComm = namespace;
}

const LISTENER_REFUSES_WORKERS =
  "the listener server runs in one process and cannot have workers: each would be a separate program with its own objects, " +
  "and a client would land in one of them at random; give a function to serve with workers";

/**
 * Starts a TCP server in a new process, as LispWorks' `comm:start-up-server`, and resolves to
 * that process once the port is bound. Without a `function` it serves the built-in listener
 * server; with `monitor`, the monitor page too. Rejects with a {@link ConfabError} naming the
 * port or service when binding fails (`EADDRINUSE`, `EACCES`, `ERR_UNKNOWN_SERVICE`).
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
export async function startUpServer(
  options: StartUpServerOptions | StartUpStreamServerOptions = {},
): Promise<ServerProcess> {
  if (options.workers !== undefined && options.workers !== 1 && options.monitor !== undefined) {
    throw new ConfabError(
      ErrorCodes.INVALID_ARGUMENT,
      "the monitor option cannot be combined with workers: each worker is a program of its own; start a monitor in each with startMonitor",
    );
  }
  // Both option types are the core's, with a socket or a stream `function`: the core tells them apart by `createStream`.
  const started = await startUpCoreServer(options as StartUpServerOptions, hooksFor(options));
  if (options.monitor !== undefined) {
    // The monitor replays the sessions this server records.
    const record = (options as StartUpServerOptions).record;
    const recordings = typeof record === "string" ? record : record?.dir;
    const monitor = typeof options.monitor === "number" ? { port: options.monitor } : options.monitor;
    const withRecordings =
      recordings === undefined || monitor.recordings !== undefined ? monitor : { ...monitor, recordings };
    await (await import("./monitor/attach.js")).attachMonitor(started, withRecordings, options.announce);
  }
  return started;
}

/** What comm needs to know beyond its options: the listener server when there is no `function`. */
function hooksFor(options: StartUpServerOptions | StartUpStreamServerOptions): ServerHooks {
  if (options.function !== undefined) {
    // What only the listener server has: a server with a function authenticates and keeps the record of its own clients.
    const listenerOnly = (["token", "users", "audit", "record"] as const).filter(
      (key) => (options as Partial<Record<string, unknown>>)[key] !== undefined,
    );
    if (listenerOnly.length === 0) return {};
    const processName = options.processName ?? defaultProcessName(options.service ?? DEFAULT_SERVICE);
    return {
      check: () => {
        throw new ConfabError(
          ErrorCodes.INVALID_ARGUMENT,
          `cannot start ${processName}: ${listenerOnly.join(", ")} ${listenerOnly.length === 1 ? "is an option" : "are options"} of the listener server; a server with a function authenticates and keeps the record of its own clients`,
        );
      },
    };
  }
  const listenerOptions = options as StartUpServerOptions;
  let listener: typeof import("./listener/listener-server.js") | undefined;
  return {
    dispatcher: async () => {
      // Loaded on demand: a plain TCP server never pays for the REPL's parser and type stripper.
      listener = await import("./listener/listener-server.js");
      // An inherited socket's address is known only once it is ours: its exposure rule is checked then.
      return listener.listenerServer({
        ...listenerOptions,
        ...(options.fd === undefined ? {} : { address: "127.0.0.1" }),
        ...(sessionComm === undefined ? {} : { comm: sessionComm }),
      });
    },
    // The listener counts its sessions against maxConnections itself, and its connections
    // not yet sessions against maxStartups.
    limitsConnections: true,
    workersRefused: LISTENER_REFUSES_WORKERS,
    ...(options.fd === undefined
      ? {}
      : { checkAddress: (address: string) => listener?.assertListenerExposure(listenerOptions, address) }),
  };
}
