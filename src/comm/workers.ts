/**
 * `startUpServer({ workers: N })`: one service spread over N processes with `node:cluster`.
 *
 * How it works, and what it means for a program:
 *
 * - cluster re-runs the program's entry script (`process.argv[1]`, with the same `execArgv`,
 *   so `--import tsx` carries over) in every worker. The worker reaches the same
 *   `startUpServer` call, which there just listens: cluster shares the port, including
 *   port 0 (every worker gets the port the first one was given). Code before the call runs
 *   in every process; guard what only the primary should do with `cluster.isPrimary`.
 * - `function` runs in the workers, each its own copy with its own memory: the primary never
 *   handles a connection. Whatever `function` shares (a cache, a counter) is per worker.
 * - The built-in listener server refuses `workers`: a REPL is a window into one program's
 *   live objects, and N separate programs behind one port would hand each client a
 *   different one at random, with state that silently differs from session to session.
 * - In the primary, `startUpServer` resolves once every worker listens, to a
 *   {@link ClusterServerProcess}: a {@link ServerProcess} (a sibling of the one-process
 *   `TcpServerProcess`) whose `port` and `address` are the workers' and whose kill stops them all. A worker that dies on its own is reported and
 *   replaced after a bounded backoff.
 * - Connections are spread by cluster's scheduling policy: round robin by the primary (the
 *   default except on Windows: even, but the primary accepts every connection and passes it
 *   over IPC, which roughly halves the connection rate on a small machine), or by the kernel
 *   with `NODE_CLUSTER_SCHED_POLICY=none` (no hop through the primary: the better choice for
 *   many short connections; see bench/README.md). `reusePort` listening (Node 22.12 / 23.1 on
 *   Linux) is not used: confab supports Node 20, where it does not exist, the policy above
 *   already gives the kernel's spread, and port 0 would need a two-step bind.
 * - One pool per program at a time: cluster's settings are process-wide, and a worker re-running
 *   the script could not tell which of two pools it belongs to.
 *
 * @module
 */
import type { Cluster, Worker } from "node:cluster";
import { ConfabError, ErrorCodes, type ConfabErrorCode } from "../errors.js";
import { kKill, processJoin, processKill, startProcess } from "../mp/process.js";
import { reportError } from "../report.js";
import { DEFAULT_SERVICE, resolveService } from "./services.js";
import { formatHostPort } from "./address.js";
import { listeningLine, unixSocketPath } from "./endpoint.js";
import { budgetLimit } from "./input-budget.js";
import {
  announceTo,
  defaultProcessName,
  ServerProcess,
  type ConnectionLimits,
  type ServerCounters,
  type ServerHooks,
  type ServerOptions,
  type StartOneServer,
  type StreamServerOptions,
} from "./server-base.js";

/** The most workers one server may have: far past any core count, short of a fork bomb. */
export const MAX_WORKERS = 1024;
/** How long the primary waits for every worker to listen before giving up. */
export const WORKER_START_TIMEOUT_MS = 30_000;
/** How long a stopping worker may take after SIGTERM (to drain) before it gets SIGKILL. */
export const WORKER_STOP_GRACE_MS = 10_000;
/** Delay before the first replacement of a crashed worker; it doubles with each crash in a row. */
export const RESTART_DELAY_MIN_MS = 100;
/** The longest delay before replacing a crashed worker. */
export const RESTART_DELAY_MAX_MS = 5_000;
/** A worker that listened this long before it died resets the backoff: it was not a crash loop. */
const STABLE_MS = 10_000;
/** How often a worker sends its counters to the primary. */
const COUNTERS_INTERVAL_MS = 1_000;
/** Set by the primary in a worker's environment: the port the worker is to listen on. */
const PORT_ENV = "CONFAB_WORKER_PORT";
/** Counters that say how things are now, rather than how many happened: not summed over dead workers. */
const GAUGES: ReadonlySet<keyof ServerCounters> = new Set<keyof ServerCounters>(["active", "waiting"]);

type AnyOptions = ServerOptions | StreamServerOptions;

/** What a worker tells the primary over cluster's IPC channel. */
type WorkerMessage =
  | { readonly confab: "listening"; readonly port: number; readonly address: string; readonly family: string }
  | { readonly confab: "failed"; readonly code: ConfabErrorCode; readonly message: string }
  | { readonly confab: "counters"; readonly counters: ServerCounters };

function isWorkerMessage(value: unknown): value is WorkerMessage {
  if (typeof value !== "object" || value === null) return false;
  const tag = (value as { confab?: unknown }).confab;
  return tag === "listening" || tag === "failed" || tag === "counters";
}

/** One worker as the primary sees it. */
export interface ServerWorkerInfo {
  /** cluster's id of the worker (increasing; a replacement gets a new one). */
  readonly id: number;
  /** The worker's operating-system process id. */
  readonly pid: number | undefined;
  /** `true` once the worker's server listens. */
  readonly listening: boolean;
  /** When the worker was forked (milliseconds since the epoch). */
  readonly startedAt: number;
}

interface Slot {
  readonly worker: Worker;
  /** The port the worker was told to listen on: 0 until the first worker bound one. */
  readonly specPort: number;
  readonly startedAt: number;
  listenedAt: number | undefined;
  counters: ServerCounters | undefined;
}

interface Bound {
  readonly port: number;
  readonly address: string;
  readonly family: string;
}

let clusterModule: Cluster | undefined;
async function loadCluster(): Promise<Cluster> {
  // Loaded on demand: a program without workers never pays for node:cluster.
  clusterModule ??= (await import("node:cluster")).default;
  return clusterModule;
}

/** The pool running in this (primary) process, if any: one at a time. */
let activePool: WorkerPool | undefined;
/** Set in a worker once its server is up: a second `workers` server there is refused, as in the primary. */
let servingInWorker = false;

function workerStartError(message: string): ConfabError {
  return new ConfabError(ErrorCodes.WORKER_START, message);
}

/** Counters of a server that accepts nothing itself: all zero. */
const NO_COUNTERS: ServerCounters = Object.freeze({
  accepted: 0,
  active: 0,
  waiting: 0,
  refused: 0,
  timedOut: 0,
  dropped: 0,
  bytesIn: 0,
  bytesOut: 0,
  errors: 0,
});

/** A report-only error: the primary's stack says nothing about why a child died. */
function workerExitError(message: string): ConfabError {
  const error = new ConfabError(ErrorCodes.WORKER_EXITED, message);
  error.stack = `${error.name} [${error.code}]: ${message}`;
  return error;
}

function describeExit(code: number | null, signal: string | null): string {
  return signal !== null ? `was killed by ${signal}` : `exited with code ${code ?? "?"}`;
}

/**
 * @internal Forks, watches, replaces and stops the workers of one server, in the primary. Kept
 * apart from {@link ClusterServerProcess} because the workers exist (and must be cleaned up if
 * starting fails) before the port is known, and a server process is made only once it is.
 */
export class WorkerPool {
  readonly name: string;
  readonly count: number;
  readonly stopped: Promise<void>;
  bound: Bound | undefined;
  restarts = 0;

  readonly #cluster: Cluster;
  readonly #basePort: number;
  readonly #slots = new Map<Worker, Slot>();
  readonly #timers = new Set<NodeJS.Timeout>();
  /** What workers that exited had counted, summed (gauges left out). */
  readonly #retired: Partial<Record<keyof ServerCounters, number>> = {};
  #resolveStopped: () => void = () => undefined;
  #stopping = false;
  #killTimer: NodeJS.Timeout | undefined;
  #streak = 0;
  #starting: { resolve: (bound: Bound) => void; reject: (error: Error) => void; timer: NodeJS.Timeout } | undefined;

  constructor(cluster: Cluster, name: string, count: number, basePort: number) {
    this.#cluster = cluster;
    this.name = name;
    this.count = count;
    this.#basePort = basePort;
    this.stopped = new Promise((resolve) => {
      this.#resolveStopped = resolve;
    });
    process.on("exit", this.#killAllNow);
  }

  /** Forks every worker; resolves once all listen, or stops them all and rejects. */
  start(): Promise<Bound> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        const waiting = [...this.#slots.values()].filter((s) => s.listenedAt === undefined).length;
        this.#failStart(
          workerStartError(
            `cannot start ${this.name}: ${waiting} of ${this.count} workers did not listen within ${WORKER_START_TIMEOUT_MS} ms`,
          ),
        );
      }, WORKER_START_TIMEOUT_MS);
      this.#starting = { resolve, reject, timer };
      for (let i = 0; i < this.count; i++) this.#fork(this.#basePort);
    });
  }

  get workers(): readonly ServerWorkerInfo[] {
    return [...this.#slots.values()].map((s) => ({
      id: s.worker.id,
      pid: s.worker.process.pid,
      listening: s.listenedAt !== undefined,
      startedAt: s.startedAt,
    }));
  }

  /** The workers' counters summed: the latest each live worker sent, plus the totals of dead ones. */
  counters(template: ServerCounters): ServerCounters {
    const total = { ...template };
    for (const key of Object.keys(total) as (keyof ServerCounters)[]) {
      total[key] = GAUGES.has(key) ? 0 : (this.#retired[key] ?? 0);
      for (const slot of this.#slots.values()) total[key] += slot.counters?.[key] ?? 0;
    }
    return total;
  }

  /** SIGTERM to every worker, SIGKILL to those still there after `graceMs`; resolves once all exited. */
  stop(graceMs: number = WORKER_STOP_GRACE_MS): Promise<void> {
    if (!this.#stopping) {
      this.#stopping = true;
      for (const timer of this.#timers) clearTimeout(timer);
      this.#timers.clear();
      for (const slot of this.#slots.values()) signal(slot.worker, "SIGTERM");
      this.#killTimer = setTimeout(
        () => {
          for (const slot of this.#slots.values()) signal(slot.worker, "SIGKILL");
        },
        Math.max(0, graceMs),
      );
      this.#killTimer.unref(); // the workers themselves keep the primary alive meanwhile
      this.#checkStopped();
    }
    return this.stopped;
  }

  #fork(specPort: number): void {
    if (this.#stopping) return; // a failed start or a kill came first
    let worker: Worker;
    try {
      worker = this.#cluster.fork({ [PORT_ENV]: String(specPort) });
    } catch (error) {
      // Forking fails synchronously only for bad settings (no entry script, a bad execArgv).
      const why = `cannot fork a worker: ${(error as Error).message}`;
      if (this.#starting !== undefined) this.#failStart(workerStartError(`cannot start ${this.name}: ${why}`));
      else this.#replaceLater(this.name, why, false);
      return;
    }
    const slot: Slot = { worker, specPort, startedAt: Date.now(), listenedAt: undefined, counters: undefined };
    this.#slots.set(worker, slot);
    worker.on("message", (message: unknown) => {
      if (isWorkerMessage(message)) this.#onMessage(slot, message);
    });
    // A spawn failure is an 'error' on the worker; without a listener it would crash the primary.
    worker.on("error", (error: Error) => {
      if (this.#starting !== undefined)
        this.#failStart(workerStartError(`cannot start ${this.name}: worker ${worker.id}: ${error.message}`));
      else if (!this.#stopping) reportError(`${this.name}: worker ${worker.id}`, error);
    });
    worker.once("exit", (code: number | null, sig: string | null) => {
      this.#onExit(slot, code, sig);
    });
  }

  #onMessage(slot: Slot, message: WorkerMessage): void {
    const { worker } = slot;
    switch (message.confab) {
      case "counters":
        slot.counters = message.counters;
        return;
      case "failed": {
        const error = new ConfabError(message.code, message.message);
        if (this.#starting !== undefined) {
          this.#failStart(error);
        } else if (!this.#stopping) {
          reportError(`${this.name}: worker ${worker.id} (pid ${worker.process.pid ?? "?"}) could not listen`, error);
          signal(worker, "SIGKILL"); // its exit schedules a replacement, with backoff
        }
        return;
      }
      case "listening": {
        if (this.bound === undefined) {
          this.bound = { port: message.port, address: message.address, family: message.family };
        } else if (message.port !== this.bound.port || message.address !== this.bound.address) {
          // Only if every other worker died while this one started: cluster made a new socket.
          if (!this.#stopping) {
            reportError(
              `${this.name}: worker ${worker.id}`,
              workerExitError(
                `listened on ${formatHostPort(message.address, message.port)} instead of ${formatHostPort(this.bound.address, this.bound.port)}; replacing it`,
              ),
            );
            signal(worker, "SIGKILL");
          }
          return;
        }
        slot.listenedAt = Date.now();
        const starting = this.#starting;
        if (
          starting !== undefined &&
          [...this.#slots.values()].every((s) => s.listenedAt !== undefined) &&
          this.#slots.size === this.count
        ) {
          this.#starting = undefined;
          clearTimeout(starting.timer);
          starting.resolve(this.bound);
        }
        return;
      }
    }
  }

  #onExit(slot: Slot, code: number | null, sig: string | null): void {
    const { worker } = slot;
    this.#slots.delete(worker);
    const last = slot.counters;
    if (last !== undefined) {
      for (const key of Object.keys(last) as (keyof ServerCounters)[]) {
        if (!GAUGES.has(key) && typeof last[key] === "number")
          this.#retired[key] = (this.#retired[key] ?? 0) + last[key];
      }
    }
    if (this.#stopping) {
      this.#checkStopped();
      return;
    }
    const how = describeExit(code, sig);
    if (this.#starting !== undefined) {
      this.#failStart(
        workerStartError(
          `cannot start ${this.name}: worker ${worker.id} (pid ${worker.process.pid ?? "?"}) ${how} ${slot.listenedAt === undefined ? "before listening" : "before every worker was listening"} (its standard error says why)`,
        ),
      );
      return;
    }
    if (slot.listenedAt !== undefined && Date.now() - slot.listenedAt >= STABLE_MS) this.#streak = 0;
    // A terminal's Ctrl-C reaches the whole process group: a worker dead of SIGINT is most
    // likely a primary about to stop too, so it is reported only if the pool still runs then.
    this.#replaceLater(
      `${this.name}: worker ${worker.id} (pid ${worker.process.pid ?? "?"})`,
      `${how} unexpectedly`,
      sig === "SIGINT",
    );
  }

  /** Reports a lost worker and forks a replacement after the backoff: 100 ms, doubling per loss in a row, at most 5 s. */
  #replaceLater(what: string, how: string, reportLate: boolean): void {
    const delay = Math.min(RESTART_DELAY_MAX_MS, RESTART_DELAY_MIN_MS * 2 ** Math.min(this.#streak, 20));
    this.#streak++;
    const report = (): void => {
      reportError(what, workerExitError(`${how}; a new worker starts in ${delay} ms`));
    };
    if (!reportLate) report();
    const timer = setTimeout(() => {
      this.#timers.delete(timer);
      if (this.#stopping) return;
      if (reportLate) report();
      this.restarts++;
      this.#fork(this.#restartPort());
    }, delay);
    this.#timers.add(timer);
  }

  /**
   * The port a replacement is told to use. cluster shares one socket per (address, port asked
   * for): while a worker lives, a replacement must ask for what the others asked for (0 for
   * an ephemeral port) to join their socket; once none lives, that socket is gone and asking
   * for 0 would get a new port, so the replacement asks for the bound one.
   */
  #restartPort(): number {
    for (const slot of this.#slots.values()) return slot.specPort;
    return this.bound?.port ?? this.#basePort;
  }

  #failStart(error: Error): void {
    const starting = this.#starting;
    if (starting === undefined) return;
    this.#starting = undefined;
    clearTimeout(starting.timer);
    // Reject only once every worker is gone: no child outlives a failed start, and the port is free.
    void this.stop(0).then(() => {
      starting.reject(error);
    });
  }

  #checkStopped(): void {
    if (!this.#stopping || this.#slots.size > 0) return;
    clearTimeout(this.#killTimer);
    process.off("exit", this.#killAllNow);
    if (activePool === this) activePool = undefined;
    this.#resolveStopped();
  }

  // If the primary exits with workers still running (process.exit, an uncaught error), they go too.
  readonly #killAllNow = (): void => {
    for (const slot of this.#slots.values()) signal(slot.worker, "SIGKILL");
  };
}

function signal(worker: Worker, sig: NodeJS.Signals): void {
  const child = worker.process;
  if (child.exitCode !== null || child.signalCode !== null) return;
  try {
    child.kill(sig);
  } catch {
    // Already gone.
  }
}

/**
 * The server process of a `startUpServer({ workers: N })` server, in the primary: a
 * {@link ServerProcess} whose `port` and `address` are where the workers listen. Killing it
 * (`mp.processKill`, `comm.serverTerminate`) stops every worker: SIGTERM (so a worker's own
 * handler can drain, as `confab serve`'s does), then SIGKILL after `WORKER_STOP_GRACE_MS` (10 s).
 * Unlike a one-process server, the port is free only once the workers are gone: await
 * {@link ClusterServerProcess.stopped}. `counters` are the workers' summed, as of their last
 * report (each sends one a second); `maxConnections` is each worker's own limit.
 */
export class ClusterServerProcess extends ServerProcess {
  /** How many workers the server keeps running. */
  readonly workerCount: number;
  /** Resolves once every worker has exited after a kill: the port is then free. Never rejects. */
  readonly stopped: Promise<void>;
  readonly #pool: WorkerPool;
  #graceMs = WORKER_STOP_GRACE_MS;

  /** @internal Use `startUpServer` with `workers`. */
  constructor(name: string, pool: WorkerPool, bound: Bound, limits: ConnectionLimits) {
    // The primary never accepts: its listening socket is cluster's, inside node:cluster.
    super(name, bound, limits, undefined);
    this.#pool = pool;
    this.workerCount = pool.count;
    this.stopped = pool.stopped;
  }

  /** The workers running now (a replacement for a crashed one shows once forked). */
  get workers(): readonly ServerWorkerInfo[] {
    return this.#pool.workers;
  }

  /** Workers started to replace ones that died. */
  get restarts(): number {
    return this.#pool.restarts;
  }

  /** The workers' counters summed, as of each one's last report (at most a second old). */
  override get counters(): ServerCounters {
    return this.#pool.counters(NO_COUNTERS);
  }

  /**
   * Kills the server as `mp.processKill` does, but lets the workers drain for `graceMs` before
   * SIGKILL; resolves once they are all gone. For a controlled shutdown (`confab serve`).
   */
  terminate(graceMs: number = WORKER_STOP_GRACE_MS): Promise<void> {
    if (this.state === "running") {
      this.#graceMs = graceMs;
      processKill(this);
    }
    return this.stopped;
  }

  /** @internal Killing the process stops the workers. */
  override [kKill](): void {
    void this.#pool.stop(this.#graceMs);
  }
}

function checkWorkers(options: AnyOptions, hooks: ServerHooks): number {
  const workers = options.workers ?? 1;
  if (!Number.isInteger(workers) || workers < 1 || workers > MAX_WORKERS) {
    throw new ConfabError(
      ErrorCodes.INVALID_ARGUMENT,
      `workers must be a whole number from 1 to ${MAX_WORKERS}, got ${String(workers)}`,
    );
  }
  if (hooks.workersRefused !== undefined) throw new ConfabError(ErrorCodes.INVALID_ARGUMENT, hooks.workersRefused);
  if (options.function === undefined) {
    throw new ConfabError(ErrorCodes.INVALID_ARGUMENT, "a server with workers needs a function: the workers run it");
  }
  if (unixSocketPath(options.service) !== undefined) {
    throw new ConfabError(
      ErrorCodes.INVALID_ARGUMENT,
      `workers share a TCP port; a Unix socket service (${String(options.service)}) cannot have workers`,
    );
  }
  return workers;
}

/**
 * @internal `startUpServer` for `workers` other than 1 (called by it, with `startOne` to start
 * a one-process server in each worker): in the primary, forks the
 * workers and resolves to a {@link ClusterServerProcess} once all listen; in a worker,
 * starts the server there (it listens on the port cluster shares) and tells the primary.
 * Rejects with a {@link ConfabError}: `ERR_INVALID_ARGUMENT` for a bad count or a server
 * whose hooks refuse workers (the listener server), the bind error of the workers (`EADDRINUSE`, ...), or `ERR_WORKER_START`.
 */
export async function startUpWorkers(
  options: AnyOptions,
  hooks: ServerHooks,
  startOne: StartOneServer,
): Promise<ServerProcess> {
  const processName = options.processName ?? defaultProcessName(options.service ?? DEFAULT_SERVICE);
  let count: number;
  let cluster: Cluster;
  let port: number;
  try {
    count = checkWorkers(options, hooks);
    budgetLimit(options.maxBufferedInput); // refused here, not in every worker
    cluster = await loadCluster();
    port = resolveService(options.service ?? DEFAULT_SERVICE);
  } catch (error) {
    announceTo(options.announce, "", null, error as Error);
    throw error;
  }
  if (cluster.isWorker) return serveInWorker(options, hooks, startOne, processName, port);

  if (activePool !== undefined) {
    throw workerStartError(
      `cannot start ${processName} with workers: ${activePool.name} already runs workers in this program (one pool at a time)`,
    );
  }
  if (process.argv[1] === undefined && cluster.settings.exec === undefined) {
    throw workerStartError(
      `cannot start ${processName} with workers: workers re-run the program's entry script, and this program has none (node -e, a REPL)`,
    );
  }
  const pool = new WorkerPool(cluster, processName, count, port);
  activePool = pool;
  let bound: Bound;
  try {
    bound = await pool.start();
  } catch (error) {
    announceTo(options.announce, "", null, error as Error);
    throw error;
  }
  const limits: ConnectionLimits = {
    ...(options.maxConnections === undefined ? {} : { maxConnections: options.maxConnections }),
    ...(options.idleTimeout === undefined ? {} : { idleTimeout: options.idleTimeout }),
  };
  const server = new ClusterServerProcess(processName, pool, bound, limits);
  // The process lives until every worker has exited.
  startProcess(server, () => server.stopped, []);
  announceTo(
    options.announce,
    listeningLine(processName, bound, count),
    { address: bound.address, family: bound.family, port: bound.port },
    null,
  );
  return server;
}

async function serveInWorker(
  options: AnyOptions,
  hooks: ServerHooks,
  startOne: StartOneServer,
  processName: string,
  port: number,
): Promise<ServerProcess> {
  if (servingInWorker) {
    throw workerStartError(
      `cannot start ${processName} with workers: this program already serves with workers (one pool at a time)`,
    );
  }
  servingInWorker = true;
  const portText = process.env[PORT_ENV];
  const listenPort = portText === undefined || !/^\d+$/.test(portText) ? port : Number(portText);
  let server: ServerProcess;
  try {
    // The primary announces for the pool; N workers saying it again would be noise.
    server = await startOne({ ...options, workers: 1, service: listenPort, processName, announce: undefined }, hooks);
  } catch (error) {
    servingInWorker = false;
    const code = error instanceof ConfabError ? error.code : ErrorCodes.WORKER_START;
    tellPrimary({ confab: "failed", code, message: error instanceof Error ? error.message : String(error) });
    throw error;
  }
  tellPrimary({ confab: "listening", port: server.port, address: server.address, family: server.family });
  const timer = setInterval(() => {
    tellPrimary({ confab: "counters", counters: server.counters });
  }, COUNTERS_INTERVAL_MS);
  timer.unref();
  void processJoin(server).then(() => {
    clearInterval(timer);
    servingInWorker = false;
  });
  return server;
}

function tellPrimary(message: WorkerMessage): void {
  if (process.send === undefined || !process.connected) return;
  try {
    process.send(message, undefined, {}, ignoreSendError);
  } catch {
    // The primary is gone: cluster ends this worker on its own.
  }
}

function ignoreSendError(): void {
  // A failed send means the primary went away; nothing to tell anyone.
}
