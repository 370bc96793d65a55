// Soak test for the talk server (examples/talk.ts): `npm run soak [-- options]`. Loopback only,
// bounded in time, not part of `npm test`.
//
// Many concurrent clients (1,000 by default) connect, send batches of lines of random length
// (multi-byte UTF-8 and NULs included, LF or CRLF), wait for the answers, think, and end their
// session in one of four ways: gracefully, by dropping the connection right after sending, by
// resetting it in the middle of a line, or by dropping it while idle; then they reconnect. Every
// answer a client receives must be the answer to its oldest unanswered line: an answer is never
// duplicated, reordered or corrupted, and a session that ends gracefully gets every answer.
// The run reports totals, latency percentiles and the server's memory, and exits 1 on any
// violation (2 on bad usage or too low a file descriptor limit).
//
// The server runs in a child process (this file with --server): its memory is then the
// server's alone, not mixed with 1,000 client sockets and their bookkeeping; the clients and
// the server each get a core of their own; and a crash of the server (an uncaught exception,
// an unhandled rejection under --unhandled-rejections=strict) shows up as the child's exit.
//
// Options (or environment variables): --seconds N (SOAK_SECONDS, default 60), --clients N
// (SOAK_CLIENTS, default 1000), --seed N (SOAK_SEED). The clients need about one descriptor
// each, as does the server: the soft limit (`ulimit -n`) must be at least clients + 64 (Node
// cannot raise it itself; the script checks it and says so).
//
// To check the checker: SOAK_INJECT_FAULT=duplicate|reorder|corrupt|drop makes the server
// misbehave once every 5,000 lines; such a run must end with violations and exit 1.
import { fork, type ChildProcess } from "node:child_process";
import { readFileSync } from "node:fs";
import net from "node:net";
import { fileURLToPath } from "node:url";
import { Rng } from "../test/rng.js";
import { Waker } from "../test/waker.js";

// ------------------------------------------------------------------ messages between the two processes

interface MemoryFigures {
  rss: number;
  heapUsed: number;
  arrayBuffers: number;
  /** Live confab processes in the server (the server's own and one per open connection). */
  processes: number;
}

type ToServer = { type: "memory"; id: number; gc: boolean } | { type: "stop" };
type FromServer =
  | { type: "ready"; port: number }
  | { type: "memory"; id: number; figures: MemoryFigures }
  | { type: "report"; what: string; kind: string; message: string };

function isFromServer(value: unknown): value is FromServer {
  return typeof value === "object" && value !== null && typeof (value as { type?: unknown }).type === "string";
}

// ------------------------------------------------------------------ the server process

async function serverMain(): Promise<void> {
  const { startTalkServer } = await import("../examples/talk.js");
  const { ConfabError, listAllProcesses, serverTerminate, setErrorReporter } = await import("../src/index.js");
  const send = (message: FromServer): void => {
    process.send?.(message);
  };
  setErrorReporter((what, error) => {
    const kind = error instanceof ConfabError ? error.code : error instanceof Error ? error.name : typeof error;
    send({ type: "report", what, kind, message: error instanceof Error ? error.message : String(error) });
  });
  const fault = process.env.SOAK_INJECT_FAULT ?? "";
  const server = fault === "" ? await startTalkServer(0) : await faultyTalkServer(fault);
  const gc = (globalThis as { gc?: () => void }).gc;
  process.on("message", (message: ToServer) => {
    if (message.type === "memory") {
      if (message.gc) gc?.();
      const { rss, heapUsed, arrayBuffers } = process.memoryUsage();
      send({
        type: "memory",
        id: message.id,
        figures: { rss, heapUsed, arrayBuffers, processes: listAllProcesses().length },
      });
    } else {
      serverTerminate(server);
      process.disconnect();
    }
  });
  send({ type: "ready", port: server.port });
}

const FAULTS = ["duplicate", "reorder", "corrupt", "drop"];

/**
 * The talk server with a deliberate fault once every 5,000 lines (SOAK_INJECT_FAULT): a run
 * against it must report violations, which shows the checker can see them.
 */
async function faultyTalkServer(fault: string): Promise<import("../src/index.js").ServerProcess> {
  if (!FAULTS.includes(fault)) throw new Error(`SOAK_INJECT_FAULT must be one of ${FAULTS.join(", ")}`);
  const { processRunFunction, SocketStream, startUpServer } = await import("../src/index.js");
  let lines = 0;
  const talk = async (stream: InstanceType<typeof SocketStream>): Promise<void> => {
    try {
      let held = "";
      for (let line; (line = await stream.readLine()) !== null;) {
        const reply = `You sent: '${line}'\n`;
        if (++lines % 5000 !== 0) stream.writeString(reply + held);
        else if (fault === "duplicate") stream.writeString(reply + reply);
        else if (fault === "reorder") held = reply;
        else if (fault === "corrupt") stream.writeString(reply.replace("'", "`"));
        if (held !== "" && lines % 5000 !== 0) held = "";
        stream.forceOutput();
      }
    } finally {
      stream.close();
    }
  };
  return startUpServer({
    service: 0,
    function: (handle) => {
      const stream = new SocketStream({ socket: handle, elementType: "base-char" });
      processRunFunction(`faulty talk ${String(stream.remotePort)}`, {}, talk, stream);
    },
  });
}

// ------------------------------------------------------------------ options

interface Options {
  seconds: number;
  clients: number;
  seed: number;
}

function usage(problem: string): never {
  process.stderr.write(`soak: ${problem}\nusage: npm run soak -- [--seconds N] [--clients N] [--seed N]\n`);
  process.exit(2);
}

function parseOptions(argv: string[]): Options {
  const values: Record<string, string | undefined> = {
    seconds: process.env.SOAK_SECONDS,
    clients: process.env.SOAK_CLIENTS,
    seed: process.env.SOAK_SEED,
  };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] as string;
    const match = /^--(seconds|clients|seed)(?:=(.*))?$/.exec(arg);
    if (match === null) usage(`unknown argument ${arg}`);
    const key = match[1] as string;
    values[key] = match[2] ?? argv[++i];
  }
  const number = (key: string, fallback: number, min: number): number => {
    const text = values[key];
    if (text === undefined || text === "") return fallback;
    const n = Number(text);
    if (!Number.isFinite(n) || n < min) usage(`--${key} must be a number of at least ${min}, got ${text}`);
    return n;
  };
  return {
    seconds: number("seconds", 60, 1),
    clients: Math.floor(number("clients", 1000, 1)),
    seed: Math.floor(number("seed", Date.now() % 2 ** 31, 0)),
  };
}

/** The soft limit on open files, from /proc on Linux; undefined elsewhere. */
function openFileLimit(): number | undefined {
  try {
    const line = readFileSync("/proc/self/limits", "utf8")
      .split("\n")
      .find((l) => l.startsWith("Max open files"));
    const soft = line?.split(/\s{2,}/)[1];
    return soft === undefined || soft === "unlimited" ? undefined : Number(soft);
  } catch {
    return undefined;
  }
}

// ------------------------------------------------------------------ random choices

const ASCII = Array.from({ length: 95 }, (_, i) => String.fromCharCode(32 + i));
// Multi-byte UTF-8 (2, 3 and 4 bytes), a NUL and a tab: the server's stream is base-char, so
// the bytes must come back exactly as sent.
const SPECIAL = ["é", "ß", "€", "日本", "🎉", "\u0000", "\t", "'", "\u2028"];

function randomText(r: Rng, length: number): string {
  let text = "";
  while (text.length < length) text += r.int(10) === 0 ? r.pick(SPECIAL) : r.pick(ASCII);
  return text;
}

function randomLength(r: Rng): number {
  const p = r.int(100);
  if (p < 80) return r.int(100);
  if (p < 98) return 100 + r.int(1900);
  return 2000 + r.int(18000);
}

// ------------------------------------------------------------------ figures

/** Latencies in 0.1 ms buckets up to 30 s. */
class Histogram {
  readonly #buckets = new Uint32Array(300_001);
  count = 0;
  max = 0;
  record(ms: number): void {
    const i = Math.min(300_000, Math.max(0, Math.round(ms * 10)));
    this.#buckets[i] = (this.#buckets[i] ?? 0) + 1;
    this.count++;
    this.max = Math.max(this.max, ms);
  }
  percentile(p: number): number {
    const target = Math.ceil((p / 100) * this.count);
    let seen = 0;
    for (let i = 0; i < this.#buckets.length; i++) {
      seen += this.#buckets[i] as number;
      if (seen >= target && seen > 0) return i / 10;
    }
    return 0;
  }
}

type Ending = "graceful" | "drop after send" | "reset mid-line" | "drop while idle";
type Violation =
  | "corrupted"
  | "duplicated"
  | "reordered or lost"
  | "lost at graceful end"
  | "stalled"
  | "connect failed"
  | "unexpected socket error"
  | "server";

const totals = {
  connections: 0,
  sessions: new Map<Ending, number>(),
  linesSent: 0,
  linesAcknowledged: 0,
  bytesSent: 0,
  bytesReceived: 0,
  errors: new Map<string, number>(),
  violations: new Map<Violation, number>(),
  examples: [] as string[],
};
const latency = new Histogram();

function count<K>(map: Map<K, number>, key: K, n = 1): void {
  map.set(key, (map.get(key) ?? 0) + n);
}

function violation(kind: Violation, detail: string): void {
  count(totals.violations, kind);
  if (totals.examples.length < 10) totals.examples.push(`${kind}: ${detail}`);
}

// ------------------------------------------------------------------ a client session

const PREFIX = "You sent: '";
const live = new Set<net.Socket>();

function connect(port: number, timeout: number): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ port, host: "127.0.0.1", allowHalfOpen: true });
    let connected = false;
    live.add(socket);
    const timer = setTimeout(() => {
      socket.destroy();
      reject(Object.assign(new Error(`connect timed out after ${timeout} ms`), { code: "CONNECT_TIMEOUT" }));
    }, timeout);
    socket.once("connect", () => {
      connected = true;
      clearTimeout(timer);
      resolve(socket);
    });
    // Stays on: once connected, the session's own listener counts errors.
    socket.on("error", (error) => {
      if (connected) return;
      clearTimeout(timer);
      reject(error);
    });
    socket.once("close", () => live.delete(socket));
  });
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** A deadline for a race: does not keep the process alive once the race is over. */
function deadlineAfter(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms).unref());
}

interface Outstanding {
  /** The expected answer, as latin1 text (the server echoes bytes). */
  readonly reply: string;
  readonly sentAt: number;
}

/** One connection: sends batches, checks every answer against the oldest unanswered line. */
async function session(port: number, slot: number, sessionNo: number, r: Rng, deadline: number): Promise<void> {
  let socket: net.Socket;
  try {
    socket = await connect(port, 10_000);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code ?? "connect error";
    count(totals.errors, `connect ${code}`);
    violation("connect failed", `${code} (client ${slot})`);
    await sleep(100);
    return;
  }
  totals.connections++;
  socket.setNoDelay(true);
  socket.setEncoding("latin1");
  const id = `${slot}.${sessionNo}`;
  const outstanding: Outstanding[] = [];
  let head = 0;
  let pendingText = "";
  // Set from event handlers: read through functions, so the compiler does not narrow them.
  const state = { broken: false, closed: false };
  const isBroken = (): boolean => state.broken;
  const isClosed = (): boolean => state.closed;
  let expectError = false;
  const waker = new Waker();

  const check = (line: string): void => {
    const expected = outstanding[head];
    if (expected !== undefined && line === expected.reply) {
      latency.record(performance.now() - expected.sentAt);
      head++;
      totals.linesAcknowledged++;
      return;
    }
    // Which line is this the answer to? Lines start with "<slot>.<session>.<seq> ", and line
    // `seq` is outstanding[seq]: those before `head` are answered already.
    const m = /^You sent: '(\d+\.\d+)\.(\d+) /.exec(line);
    const seq = m !== null && m[1] === id ? Number(m[2]) : undefined;
    const shown = JSON.stringify(line.length > 80 ? `${line.slice(0, 80)}...` : line);
    if (seq === undefined || seq === head)
      violation("corrupted", `${id}: expected the answer to line ${head}, got ${shown}`);
    else if (seq < head) violation("duplicated", `${id}: line ${seq} answered again while line ${head} was expected`);
    else violation("reordered or lost", `${id}: line ${seq} answered while line ${head} was expected`);
    state.broken = true;
    socket.destroy();
  };

  socket.on("data", (text: string) => {
    totals.bytesReceived += text.length;
    if (isBroken()) return;
    let from = 0;
    let text2 = pendingText === "" ? text : pendingText + text;
    for (let nl; !isBroken() && (nl = text2.indexOf("\n", from)) !== -1; from = nl + 1) check(text2.slice(from, nl));
    text2 = text2.slice(from);
    pendingText = text2;
    waker.wake();
  });
  socket.on("error", (error: NodeJS.ErrnoException) => {
    if (expectError) return;
    const code = error.code ?? error.name;
    count(totals.errors, `socket ${code}`);
    violation("unexpected socket error", `${id}: ${code}`);
  });
  socket.on("close", () => {
    state.closed = true;
    waker.wake();
  });

  /** Waits until every line is answered or the connection closed; false after `timeout` ms. */
  const answered = async (timeout: number): Promise<boolean> => {
    const until = Date.now() + timeout;
    while (head < outstanding.length && !isClosed() && !isBroken()) {
      const left = until - Date.now();
      if (left <= 0) return false;
      await waker.sleep(left);
    }
    return true;
  };

  const ending: Ending = r.pick<Ending>([
    "graceful",
    "graceful",
    "graceful",
    "graceful",
    "graceful",
    "graceful",
    "drop after send",
    "reset mid-line",
    "reset mid-line",
    "drop while idle",
  ]);
  count(totals.sessions, ending);
  const batches = 1 + r.int(12);
  let seq = 0;
  try {
    for (let b = 0; b < batches && !isBroken() && !isClosed() && Date.now() < deadline; b++) {
      const last = b === batches - 1;
      if (last && ending === "drop while idle") {
        expectError = true;
        socket.destroy();
        return;
      }
      const lines = 1 + r.int(8);
      const parts: Buffer[] = [];
      const sentAt = performance.now();
      for (let i = 0; i < lines; i++) {
        const bytes = Buffer.from(`${id}.${seq} ${randomText(r, randomLength(r))}`, "utf8");
        outstanding.push({ reply: `${PREFIX}${bytes.toString("latin1")}'`, sentAt });
        parts.push(bytes, Buffer.from(r.int(4) === 0 ? "\r\n" : "\n"));
        seq++;
      }
      if (last && ending === "reset mid-line")
        parts.push(Buffer.from(`${id}.${seq} never finished ${randomText(r, r.int(200))}`));
      const data = Buffer.concat(parts);
      totals.linesSent += lines;
      totals.bytesSent += data.length;
      // Sometimes in pieces, so lines and characters are split across packets.
      if (r.int(5) === 0 && data.length > 1) {
        const cut = 1 + r.int(data.length - 1);
        socket.write(data.subarray(0, cut));
        await new Promise((resolve) => setImmediate(resolve));
        if (isClosed() || isBroken()) break;
        socket.write(data.subarray(cut));
      } else {
        socket.write(data);
      }
      if (last && ending === "drop after send") {
        expectError = true;
        socket.destroy();
        return;
      }
      if (last && ending === "reset mid-line") {
        await sleep(r.int(20));
        expectError = true;
        if (!socket.destroyed) socket.resetAndDestroy();
        return;
      }
      if (!(await answered(30_000))) {
        violation("stalled", `${id}: ${outstanding.length - head} lines unanswered for 30 s`);
        state.broken = true;
        socket.destroy();
        return;
      }
      await sleep(r.int(150));
    }
    if (isBroken()) return;
    // Graceful end (also when the run's time is up): every line must be answered before the server closes.
    socket.end();
    const until = Date.now() + 30_000;
    while (!isClosed() && Date.now() < until) {
      await waker.sleep(100);
    }
    if (!isClosed()) {
      violation("stalled", `${id}: the server did not close within 30 s of our end of file`);
    } else if (!isBroken() && head < outstanding.length) {
      violation(
        "lost at graceful end",
        `${id}: ${outstanding.length - head} of ${outstanding.length} lines never answered`,
      );
    } else if (!isBroken() && pendingText !== "") {
      violation("corrupted", `${id}: a partial answer at end of file: ${JSON.stringify(pendingText.slice(0, 80))}`);
    }
  } finally {
    if (!socket.destroyed) socket.destroy();
  }
}

// ------------------------------------------------------------------ the run

function mib(bytes: number): string {
  return `${(bytes / 1024 / 1024).toFixed(1)} MiB`;
}

async function main(): Promise<void> {
  const options = parseOptions(process.argv.slice(2));
  const limit = openFileLimit();
  if (limit !== undefined && limit < options.clients + 64) {
    usage(
      `the open file limit is ${limit}; ${options.clients} clients need at least ${options.clients + 64}: run \`ulimit -n ${options.clients * 2}\` first`,
    );
  }

  const server: ChildProcess = fork(fileURLToPath(import.meta.url), ["--server"], {
    execArgv: ["--import", "tsx", "--unhandled-rejections=strict", "--expose-gc"],
    stdio: ["ignore", "inherit", "inherit", "ipc"],
  });
  let serverExit: { code: number | null; signal: NodeJS.Signals | null } | undefined;
  let stopping = false;
  const exited = new Promise<void>((resolve) => {
    server.once("exit", (code, signal) => {
      serverExit = { code, signal };
      if (!stopping)
        violation(
          "server",
          `the server process exited during the run (code ${String(code)}, signal ${String(signal)})`,
        );
      resolve();
    });
  });
  const replies = new Map<number, (figures: MemoryFigures) => void>();
  let port = 0;
  const ready = new Promise<void>((resolve) => {
    server.on("message", (message: unknown) => {
      if (!isFromServer(message)) return;
      if (message.type === "ready") {
        port = message.port;
        resolve();
      } else if (message.type === "memory") {
        replies.get(message.id)?.(message.figures);
        replies.delete(message.id);
      } else {
        count(totals.errors, `server report ${message.kind}`);
        violation("server", `${message.what}: ${message.kind}: ${message.message}`);
      }
    });
  });
  let nextId = 0;
  const memory = (gc: boolean): Promise<MemoryFigures | undefined> =>
    new Promise((resolve) => {
      const id = nextId++;
      const timer = setTimeout(() => {
        replies.delete(id);
        resolve(undefined);
      }, 5000);
      replies.set(id, (figures) => {
        clearTimeout(timer);
        resolve(figures);
      });
      server.send({ type: "memory", id, gc } satisfies ToServer);
    });

  const startTimeout = deadlineAfter(20_000).then(() => "timeout" as const);
  if (
    (await Promise.race([ready.then(() => "ready" as const), startTimeout, exited.then(() => "exited" as const)])) !==
    "ready"
  ) {
    process.stderr.write("soak: the server did not start\n");
    server.kill("SIGKILL");
    process.exit(1);
  }
  const startMemory = await memory(true);
  let peakRss = startMemory?.rss ?? 0;
  const poller = setInterval(() => {
    void memory(false).then((m) => {
      if (m !== undefined) peakRss = Math.max(peakRss, m.rss);
    });
  }, 250);

  process.stdout.write(
    `soak: ${options.clients} clients for ${options.seconds} s against the talk server on 127.0.0.1:${port} (seed ${options.seed})\n`,
  );
  const started = Date.now();
  const deadline = started + options.seconds * 1000;
  const rng = new Rng(options.seed);
  const progress = setInterval(() => {
    process.stdout.write(
      `  ${Math.round((Date.now() - started) / 1000)} s: ${totals.connections} connections, ${totals.linesAcknowledged} lines answered, ${live.size} open, server RSS peak ${mib(peakRss)}\n`,
    );
  }, 10_000);
  const slots = Array.from({ length: options.clients }, async (_, slot) => {
    const r = new Rng(rng.int(2 ** 32));
    await sleep((slot * 1000) / options.clients); // ramp up over the first second
    for (let n = 0; Date.now() < deadline && serverExit === undefined; n++) await session(port, slot, n, r, deadline);
  });
  // Sessions end gracefully once the time is up; give them a bounded time to finish.
  const drained = await Promise.race([
    Promise.all(slots).then(() => true),
    deadlineAfter(options.seconds * 1000 + 60_000).then(() => false),
  ]);
  clearInterval(progress);
  if (!drained) {
    violation("stalled", `${live.size} clients still busy 60 s after the end of the run`);
    for (const socket of live) socket.destroy();
  }
  const elapsed = (Date.now() - started) / 1000;

  // The server's connection processes end as it sees the clients go; then its memory settles.
  let endMemory: MemoryFigures | undefined;
  const until = Date.now() + 15_000;
  while (Date.now() < until) {
    endMemory = await memory(false);
    if (endMemory === undefined || endMemory.processes <= 1) break;
    await sleep(200);
  }
  clearInterval(poller);
  if (endMemory !== undefined && endMemory.processes > 1)
    violation(
      "server",
      `${endMemory.processes - 1} connection processes still alive 15 s after the last client closed`,
    );
  await sleep(500);
  endMemory = await memory(true);
  stopping = true;
  server.send({ type: "stop" } satisfies ToServer);
  const stopped = await Promise.race([exited.then(() => true), deadlineAfter(10_000).then(() => false)]);
  if (!stopped) {
    violation("server", "the server did not exit within 10 s of being stopped");
    server.kill("SIGKILL");
  } else if (serverExit?.code !== 0) {
    violation(
      "server",
      `the server exited with code ${String(serverExit?.code)} (signal ${String(serverExit?.signal)})`,
    );
  }

  const figures = [
    ["duration", `${elapsed.toFixed(1)} s`],
    ["clients", String(options.clients)],
    ["connections", String(totals.connections)],
    ["sessions", [...totals.sessions].map(([k, v]) => `${k} ${v}`).join(", ")],
    ["lines sent", String(totals.linesSent)],
    [
      "lines answered",
      `${totals.linesAcknowledged}${totals.violations.size === 0 ? " (each exactly once, in order)" : ""}`,
    ],
    ["bytes sent / received", `${totals.bytesSent} / ${totals.bytesReceived}`],
    [
      "latency p50 / p99 / max",
      `${latency.percentile(50).toFixed(1)} / ${latency.percentile(99).toFixed(1)} / ${latency.max.toFixed(1)} ms`,
    ],
    ["server RSS start / peak / end", `${mib(startMemory?.rss ?? 0)} / ${mib(peakRss)} / ${mib(endMemory?.rss ?? 0)}`],
    ["server heap start / end", `${mib(startMemory?.heapUsed ?? 0)} / ${mib(endMemory?.heapUsed ?? 0)} (after gc)`],
    ["errors", totals.errors.size === 0 ? "none" : [...totals.errors].map(([k, v]) => `${k} ${v}`).join(", ")],
    [
      "violations",
      totals.violations.size === 0 ? "none" : [...totals.violations].map(([k, v]) => `${k} ${v}`).join(", "),
    ],
  ];
  const width = Math.max(...figures.map(([k]) => (k as string).length));
  process.stdout.write(figures.map(([k, v]) => `${(k as string).padEnd(width)}  ${v as string}`).join("\n") + "\n");
  for (const example of totals.examples) process.stdout.write(`  ${example}\n`);
  process.exitCode = totals.violations.size === 0 ? 0 : 1;
}

if (process.argv.includes("--server")) await serverMain();
else await main();
