/**
 * The monitor's HTTP side (`node:http`): the page, a JSON snapshot, a Server-Sent Events stream
 * of snapshots, the kill endpoint and, with `recordings`, the session recordings. It runs as a
 * light-weight process of its own, so it shows in `ps()` and on its own page, and killing it
 * frees its port at once.
 *
 * Endpoints (all refuse a non-loopback `Host` with 403; see `guard.ts`):
 * - `GET /`: the page.
 * - `GET /api/snapshot`: one {@link MonitorSnapshot} as JSON.
 * - `GET /events`: `text/event-stream`, one snapshot (a `data:` line of JSON) about once a
 *   second, and one right after every kill.
 * - `POST /api/processes/ID/kill` with header `X-Confab-Token: TOKEN`: kills process ID;
 *   200 `{ killed, id, name }`, 403 `{ error }` when the guard refuses, 404 when no such
 *   process is running.
 *
 * With {@link MonitorOptions.recordings} only (404 without it):
 * - `GET /api/recordings` with the token header: a JSON array of {@link MonitorRecording}, the
 *   newest first (at most {@link DEFAULT_MAX_RECORDINGS}); 403 `{ error }` as for a kill.
 * - `GET /api/recordings/FILE` with the token header: that recording's content,
 *   `application/x-asciicast`; 400 when FILE is no plain `*.cast` name, 404 when there is no
 *   such regular file in the directory, 403 as for a kill.
 * - `GET /assets/asciinema-player.min.js` and `/assets/asciinema-player.css`: the page's
 *   replay player, from the installed `asciinema-player` package (see `player.ts`).
 *
 * Bounds, so that clients that connect and never finish a request cannot keep a browser from
 * the page: at most {@link MONITOR_MAX_CONNECTIONS} connections, of which at most
 * {@link MONITOR_MAX_WAITING} waiting for a request's headers (one more drops the oldest of
 * those with a 408), and {@link MONITOR_HEADERS_TIMEOUT_MS} to send the headers.
 *
 * @module
 */
import { randomBytes } from "node:crypto";
import http, { type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo, Socket } from "node:net";
import { resolve } from "node:path";
import { pipeline } from "node:stream/promises";
import { ConfabError, ErrorCodes } from "../errors.js";
import { formatHostPort, isLoopback } from "../comm/address.js";
import { bindError, listenOn, untilServerClosed } from "../comm/endpoint.js";
import { kKill, kOwner, Process, processKill, startProcess, type ProcessResource } from "../mp/process.js";
import { liveProcesses, processContext } from "../mp/registry.js";
import { reportError } from "../report.js";
import { checkHost, checkKillRequest, checkTokenRequest, newToken } from "./guard.js";
import { DEFAULT_HISTORY_LENGTH, History } from "./history.js";
import { renderPage } from "./page.js";
import { isPlayerAsset, playerAsset } from "./player.js";
import {
  DEFAULT_MAX_RECORDINGS,
  listRecordings,
  openRecording,
  type MonitorRecording,
  type OpenRecording,
} from "./recordings.js";
import { DEFAULT_MAX_ROWS, takeSnapshot, type MonitorSnapshot } from "./snapshot.js";

/** Options of {@link startMonitor}. */
export interface MonitorOptions {
  /** The port to serve on; 0 lets the OS pick one (read it from the monitor's `port`). */
  readonly port: number;
  /**
   * The loopback address to bind (default `127.0.0.1`; `::1` and `localhost` work too). The
   * monitor can kill processes and has no login, so any other address is refused: reach a
   * remote monitor through an SSH tunnel.
   */
  readonly address?: string;
  /** The monitor process's name; default `monitor HOST:PORT`. */
  readonly processName?: string;
  /** Milliseconds between two snapshots on the event stream (default 1000). */
  readonly interval?: number;
  /** Most pages (event streams) open at once (default 8); one more gets 503. */
  readonly maxClients?: number;
  /** Most processes listed in one snapshot (default 500); the rest are counted in `omitted`. */
  readonly maxRows?: number;
  /** Samples kept for the sparklines, one per `interval` (default 60: a minute). */
  readonly historyLength?: number;
  /**
   * The directory where listener sessions are recorded (asciicast v2, one
   * `<time>-<process id>-<name>.cast` file per session). When set, the page offers a replay
   * button beside each live session that has a recording and lists the recordings of ended
   * sessions, and plays them in the page with asciinema's player; the API reads them only with
   * the monitor's token (they hold whatever was typed in a session). Unset: no recordings.
   * The directory need not exist yet.
   */
  readonly recordings?: string;
}

/** Default {@link MonitorOptions.interval}. */
export const DEFAULT_MONITOR_INTERVAL_MS = 1000;
/** Default {@link MonitorOptions.maxClients}. */
export const DEFAULT_MONITOR_CLIENTS = 8;

/** Most connections to the monitor at once. */
export const MONITOR_MAX_CONNECTIONS = 64;
/**
 * Most connections to the monitor at once that are waiting for a request's headers: new ones,
 * and kept-alive ones between requests. One more drops the oldest of them, so clients that
 * open connections and never finish a request cannot keep a browser from the page.
 */
export const MONITOR_MAX_WAITING = 16;
/** Milliseconds a connection has to send a whole request's headers (Node checks once a second). */
export const MONITOR_HEADERS_TIMEOUT_MS = 5_000;

// What a connection dropped before its request hears, as Node's own headersTimeout says it.
const DROPPED_RESPONSE = "HTTP/1.1 408 Request Timeout\r\nConnection: close\r\nContent-Length: 0\r\n\r\n";

const KILL_PATH = /^\/api\/processes\/(\d{1,15})\/kill$/;
const RECORDINGS_PATH = "/api/recordings";
const RECORDING_PREFIX = "/api/recordings/";

/**
 * The process a monitor runs as. Kill it (from code, `ps()`/`kill()` in a listener, or its own
 * page) to close its port and every page's event stream.
 */
export class MonitorProcess extends Process implements ProcessResource {
  /** @internal */
  [kOwner]: Process | undefined;
  /** The bound port (the real one when `port` was 0). */
  readonly port: number;
  /** The bound address. */
  readonly address: string;
  /** Where to point a browser: `http://127.0.0.1:PORT/`. */
  readonly url: string;
  /**
   * The secret the kill endpoint and the recordings API require in `X-Confab-Token`. The page
   * carries it; code in this program can read it here to kill (or fetch a recording) over HTTP
   * from a script.
   */
  readonly token: string;

  readonly #http: http.Server;
  readonly #clients = new Set<ServerResponse>();
  readonly #maxClients: number;
  readonly #maxRows: number;
  readonly #history: History;
  readonly #timer: NodeJS.Timeout;
  readonly #recordings: string | undefined;
  // Every open connection, and those of them waiting for a request's headers, oldest first.
  readonly #open = new Set<Socket>();
  readonly #waiting = new Set<Socket>();
  #pushQueued = false;

  /** Not for users: use {@link startMonitor}. */
  constructor(name: string, server: http.Server, bound: AddressInfo, options: MonitorOptions) {
    super(name);
    this.#http = server;
    this.port = bound.port;
    this.address = bound.address;
    this.url = `http://${formatHostPort(bound.address, bound.port)}/`;
    this.token = newToken();
    this.#maxClients = options.maxClients ?? DEFAULT_MONITOR_CLIENTS;
    this.#maxRows = options.maxRows ?? DEFAULT_MAX_ROWS;
    this.#history = new History(options.historyLength ?? DEFAULT_HISTORY_LENGTH);
    // Resolved now: a later chdir of the program must not move the monitor's directory.
    this.#recordings = options.recordings === undefined ? undefined : resolve(options.recordings);
    this.own(this);
    server.on("connection", this.#onConnection);
    server.on("request", this.#onRequest);
    server.on("error", (error) => {
      reportError(`monitor "${this.name}" on ${formatHostPort(this.address, this.port)}`, error);
    });
    this.#timer = setInterval(this.#tick, options.interval ?? DEFAULT_MONITOR_INTERVAL_MS);
    this.#timer.unref();
  }

  /** The program now, as the page sees it. */
  snapshot(): MonitorSnapshot {
    return takeSnapshot({
      monitor: this,
      isMonitor: (p) => p instanceof MonitorProcess,
      maxRows: this.#maxRows,
      history: this.#history.samples(),
    });
  }

  /** Pages connected to the event stream now. */
  get clients(): number {
    return this.#clients.size;
  }

  readonly #tick = (): void => {
    try {
      this.#history.sample();
      if (this.#clients.size > 0) this.#push();
    } catch (error) {
      reportError(`monitor "${this.name}" taking a snapshot`, error);
    }
  };

  /** Sends a snapshot to every page now. */
  #push(): void {
    const event = `data: ${JSON.stringify(this.snapshot())}\n\n`;
    for (const res of this.#clients) {
      // A page that does not keep up misses snapshots instead of piling them up here.
      if (!res.writableNeedDrain) res.write(event);
    }
  }

  /** Sends a snapshot soon (after a kill), once however many kills come in one turn. */
  #pushSoon(): void {
    if (this.#pushQueued) return;
    this.#pushQueued = true;
    setImmediate(() => {
      this.#pushQueued = false;
      if (this.state === "running" && this.#clients.size > 0) this.#push();
    });
  }

  /**
   * Node's own `maxConnections` would refuse a browser while slow clients hold every place, and
   * its `headersTimeout` frees a place only at its next check: the monitor limits connections
   * itself, and one that arrives past a limit drops the oldest connection still waiting for its
   * request (with a 408), so the newcomer is served at once.
   */
  readonly #onConnection = (socket: Socket): void => {
    const open = this.#open;
    const waiting = this.#waiting;
    open.add(socket);
    waiting.add(socket);
    socket.once("close", () => {
      open.delete(socket);
      waiting.delete(socket);
    });
    if (waiting.size > MONITOR_MAX_WAITING || open.size > MONITOR_MAX_CONNECTIONS) {
      // The newcomer itself when every other place is held by a request in progress (event
      // streams, downloads).
      dropWaiting(waiting.values().next().value as Socket);
    }
  };

  readonly #onRequest = (req: IncomingMessage, res: ServerResponse): void => {
    const socket = req.socket;
    this.#waiting.delete(socket);
    // Kept alive after its response, the connection waits for its next request: the newest waiting.
    res.once("finish", () => {
      if (!socket.destroyed && this.#open.has(socket)) this.#waiting.add(socket);
    });
    res.setHeader("Cache-Control", "no-store");
    res.setHeader("X-Content-Type-Options", "nosniff");
    res.setHeader("Referrer-Policy", "no-referrer");
    try {
      const refused = checkHost(req);
      if (refused !== undefined) {
        sendJson(res, 403, { error: refused });
        return;
      }
      const path = (req.url ?? "/").split("?", 1)[0] ?? "/";
      const kill = KILL_PATH.exec(path);
      if (kill !== null) {
        if (req.method !== "POST") sendMethodNotAllowed(res, "POST");
        else this.#kill(req, res, Number(kill[1]));
        return;
      }
      const recordings = this.#recordings;
      if (recordings !== undefined && (path.startsWith(RECORDINGS_PATH) || isPlayerAsset(path))) {
        if (req.method !== "GET" && req.method !== "HEAD") sendMethodNotAllowed(res, "GET, HEAD");
        else this.#recordingRoute(req, res, path, recordings).catch((error: unknown) => this.#failed(req, res, error));
        return;
      }
      if (path !== "/" && path !== "/api/snapshot" && path !== "/events") {
        sendJson(res, 404, { error: `no ${path} here; the monitor is at /` });
        return;
      }
      if (req.method !== "GET" && req.method !== "HEAD") {
        sendMethodNotAllowed(res, "GET, HEAD");
        return;
      }
      if (path === "/") this.#page(res);
      else if (path === "/api/snapshot") sendJson(res, 200, this.snapshot());
      else this.#events(req, res);
    } catch (error) {
      this.#failed(req, res, error);
    }
  };

  #failed(req: IncomingMessage, res: ServerResponse, error: unknown): void {
    reportError(`monitor "${this.name}" answering ${req.method ?? "?"} ${req.url ?? "?"}`, error);
    if (!res.headersSent) sendJson(res, 500, { error: "internal error" });
    else res.destroy();
  }

  /** The recordings API and the player's files (only with `recordings`). */
  async #recordingRoute(req: IncomingMessage, res: ServerResponse, path: string, directory: string): Promise<void> {
    const asset = playerAsset(path);
    if (asset !== undefined) {
      const { body, type } = await asset;
      // The same bytes for the program's whole life: the browser may keep them a while.
      res.writeHead(200, {
        "Content-Type": type,
        "Content-Length": body.length,
        "Cache-Control": "private, max-age=3600",
      });
      res.end(req.method === "HEAD" ? undefined : body);
      return;
    }
    if (path !== RECORDINGS_PATH && !path.startsWith(RECORDING_PREFIX)) {
      sendJson(res, 404, { error: `no ${path} here; the monitor is at /` });
      return;
    }
    const refused = checkTokenRequest(req, this.token, "read recordings");
    if (refused !== undefined) {
      sendJson(res, 403, { error: refused });
      return;
    }
    if (path === RECORDINGS_PATH) {
      const list: MonitorRecording[] = await listRecordings(directory, DEFAULT_MAX_RECORDINGS);
      sendJson(res, 200, list);
      return;
    }
    // Not decoded: a recording's name has no character that needs encoding, so a `%` (an
    // encoded separator or dot) is simply no recording's name.
    const file = path.slice(RECORDING_PREFIX.length);
    let opened: OpenRecording;
    try {
      opened = await openRecording(directory, file);
    } catch (error) {
      if (error instanceof ConfabError && (error.code === ErrorCodes.INVALID_ARGUMENT || error.code === "ENOENT")) {
        sendJson(res, error.code === "ENOENT" ? 404 : 400, { error: error.message });
        return;
      }
      throw error;
    }
    const { handle, size } = opened;
    res.writeHead(200, {
      "Content-Type": "application/x-asciicast",
      "Content-Length": size,
      "Content-Disposition": `attachment; filename="${file}"`,
    });
    if (req.method === "HEAD" || size === 0) {
      await handle.close();
      res.end();
      return;
    }
    // As much as there was when it was opened: a live session's recording keeps growing.
    const stream = handle.createReadStream({ start: 0, end: size - 1 });
    await pipeline(stream, res).catch(() => {
      // The page went away mid-file: nothing to answer any more (the stream closes the file).
      res.destroy();
    });
  }

  #page(res: ServerResponse): void {
    const nonce = randomBytes(16).toString("base64");
    const recordings = this.#recordings !== undefined;
    const body = renderPage({
      token: this.token,
      nonce,
      where: formatHostPort(this.address, this.port),
      recordings,
    });
    // The player's terminal emulator is WebAssembly: compiling it needs 'wasm-unsafe-eval',
    // which allows that alone (no eval, no inline script), and only on a page with the player.
    const wasm = recordings ? " 'wasm-unsafe-eval'" : "";
    res.writeHead(200, {
      "Content-Type": "text/html; charset=utf-8",
      // Only this page's own style and scripts run (the player's files too, by the same nonce);
      // it may talk to this origin alone, and no other site may frame it (its kill buttons
      // must not be clickjacked).
      "Content-Security-Policy": `default-src 'none'; style-src 'nonce-${nonce}'; script-src 'nonce-${nonce}'${wasm}; connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'`,
      "X-Frame-Options": "DENY",
    });
    res.end(body);
  }

  #events(req: IncomingMessage, res: ServerResponse): void {
    if (this.#clients.size >= this.#maxClients) {
      sendJson(res, 503, {
        error: `too many monitor pages open (maxClients ${this.#maxClients}); close one and reload`,
      });
      return;
    }
    res.writeHead(200, { "Content-Type": "text/event-stream; charset=utf-8", "X-Accel-Buffering": "no" });
    if (req.method === "HEAD") {
      res.end();
      return;
    }
    req.socket.setNoDelay(true);
    res.write("retry: 2000\n\n");
    this.#clients.add(res);
    res.on("close", () => this.#clients.delete(res));
    res.write(`data: ${JSON.stringify(this.snapshot())}\n\n`);
  }

  #kill(req: IncomingMessage, res: ServerResponse, id: number): void {
    req.resume(); // a body, if any, means nothing
    const refused = checkKillRequest(req, this.token);
    if (refused !== undefined) {
      sendJson(res, 403, { error: refused });
      return;
    }
    const target = liveProcesses.get(id);
    if (target === undefined) {
      sendJson(res, 404, { error: `no running process has id ${id}` });
      return;
    }
    const killed = processKill(target);
    // When the target was this monitor (or took it down with it), the response still goes
    // out: the monitor closes in-flight requests only after this turn.
    sendJson(res, 200, { killed, id, name: target.name });
    this.#pushSoon();
  }

  /** Killing the monitor frees its port at once and ends every page's stream (see {@link ProcessResource}). */
  [kKill](): void {
    clearInterval(this.#timer);
    this.#http.close();
    for (const res of this.#clients) res.end();
    this.#clients.clear();
    this.#http.closeIdleConnections();
    // A response being written in this turn (the answer to a kill of this monitor) goes out first.
    setImmediate(() => this.#http.closeAllConnections());
  }
}

/** Drops a connection before its request: it is told 408 and closed (destroyed once the line is out). */
function dropWaiting(socket: Socket): void {
  if (socket.destroyed) return;
  if (!socket.writable) {
    socket.destroy();
    return;
  }
  socket.end(DROPPED_RESPONSE, () => socket.destroy());
}

function sendJson(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    "Content-Type": "application/json; charset=utf-8",
    "Content-Length": Buffer.byteLength(text),
  });
  res.end(text);
}

function sendMethodNotAllowed(res: ServerResponse, allow: string): void {
  res.setHeader("Allow", allow);
  sendJson(res, 405, { error: `use ${allow}` });
}

function validPort(port: unknown): port is number {
  return typeof port === "number" && Number.isInteger(port) && port >= 0 && port <= 65535;
}

/**
 * Starts the live monitor page: a small web page showing this program's servers, processes
 * and connections, updated every second, with sparklines of open connections and throughput
 * and a kill button per process. Resolves once the port is bound, to the monitor's process.
 *
 * Loopback only, by design: it can kill any process and has no login. A non-loopback
 * `address` is refused with `ERR_INSECURE_MONITOR`; reach a remote one through an SSH tunnel.
 *
 * @example
 * ```ts
 * const monitor = await startMonitor({ port: 9000 });
 * console.log(`open ${monitor.url}`); // http://127.0.0.1:9000/
 * // ... later
 * mp.processKill(monitor);
 * ```
 */
export async function startMonitor(options: MonitorOptions): Promise<MonitorProcess> {
  const host = options.address ?? "127.0.0.1";
  const port = options.port;
  if (!validPort(port)) {
    throw new ConfabError(
      ErrorCodes.INVALID_ARGUMENT,
      `the monitor's port must be a whole number from 0 to 65535, got ${String(port)}`,
    );
  }
  if (!isLoopback(host)) {
    throw new ConfabError(
      ErrorCodes.INSECURE_MONITOR,
      `cannot start the monitor on ${formatHostPort(host, port)}: it can kill processes and has no login, so it binds loopback only ` +
        `(127.0.0.1, ::1 or localhost). To watch a remote program, tunnel to it: ssh -L ${port || 9000}:127.0.0.1:${port || 9000} HOST`,
    );
  }
  if (options.recordings !== undefined && (typeof options.recordings !== "string" || options.recordings === "")) {
    throw new ConfabError(
      ErrorCodes.INVALID_ARGUMENT,
      `the monitor's recordings must be a directory's path, got ${JSON.stringify(options.recordings)}`,
    );
  }
  for (const [name, value] of [
    ["interval", options.interval],
    ["maxClients", options.maxClients],
    ["maxRows", options.maxRows],
    ["historyLength", options.historyLength],
  ] as const) {
    if (value !== undefined && !(typeof value === "number" && Number.isFinite(value) && value >= 1)) {
      throw new ConfabError(
        ErrorCodes.INVALID_ARGUMENT,
        `the monitor's ${name} must be a number of at least 1, got ${String(value)}`,
      );
    }
  }
  // Made outside any process: its sockets belong to no connection process, and a listener
  // that starts a monitor does not own (and close) its port.
  const server = processContext.exit(() =>
    http.createServer({
      headersTimeout: MONITOR_HEADERS_TIMEOUT_MS,
      requestTimeout: 15_000,
      keepAliveTimeout: 5_000,
      maxHeaderSize: 16 * 1024,
      // Node checks the two timeouts above every 30 s by default: a slow client would hold
      // its connection up to 35 s instead of 5.
      connectionsCheckingInterval: 1_000,
    }),
  );
  // The monitor limits its connections itself (see #onConnection): not server.maxConnections.
  let bound: AddressInfo;
  try {
    await processContext.exit(() => listenOn(server, { port, host }));
    bound = server.address() as AddressInfo;
  } catch (error) {
    throw bindError(error as NodeJS.ErrnoException, { host, processName: "the monitor" }, formatHostPort(host, port));
  }
  const monitor = new MonitorProcess(
    options.processName ?? `monitor ${formatHostPort(bound.address, bound.port)}`,
    server,
    bound,
    options,
  );
  // The process lives as long as the HTTP server.
  startProcess(monitor, () => untilServerClosed(server), []);
  return monitor;
}
