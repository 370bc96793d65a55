#!/usr/bin/env node
// The confab benchmark: `npm run bench` (= `npm run build && node bench/run.mjs`).
//
// Runs the seed's talk protocol against three servers in the same run (raw node:net,
// node:readline, confab's talk server), each a child process, driven by bench/loadgen.c
// (compiled here with cc). Also times REPL round trips through confab's listener against
// Node's own REPL served over a socket, confab's cold start, and how the talk server scales
// with startUpServer's `workers` option (node:cluster). Prints a table of ratios to raw, writes results/latest.json,
// results/latest.md and results/ratios.svg. See bench/README.md.
import { spawn, spawnSync } from "node:child_process";
import fs from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { setTimeout as sleep } from "node:timers/promises";

const BENCH = path.dirname(fileURLToPath(import.meta.url));
const ROOT = path.dirname(BENCH);
const LOADGEN_SRC = path.join(BENCH, "loadgen.c");
const LOADGEN = path.join(BENCH, "build", "loadgen");

const CONTENDED_TEXT = "0.25";
const HELP = `usage: node bench/run.mjs [options]     (npm run bench -- [options])

  --quick            1 run per measurement, 1 s windows, 2,000 idle connections (~40 s)
  --only LIST        modes, comma-separated: rr1,rr64,pipe,connect,idle,listener,cold,workers
                     (rr = rr1,rr64)
  --workers LIST     worker counts for the workers scaling mode (default 1,2,4; 1 is the
                     one-process server the others are compared with)
  --servers LIST     raw,readline,confab,serve (default: all four)
  --reps N           runs per measurement, the median is reported (default 5; idle: at most 3)
  --duration S       measurement window of each run, seconds (default 1.2)
  --warmup S         warm-up before each window, seconds (default 0.3)
  --idle N           idle connections to hold (default 10000, capped by the fd limit)
  --retries N        runs done again when other processes took > ${CONTENDED_TEXT} cores
                     meanwhile (default 2 per measurement; --no-retry = 0)
  --out DIR          where results go (default bench/results for a full run,
                     bench/build/results for --quick, --only or --servers runs)
  --help

Environment: BENCH_QUICK=1, BENCH_ONLY, BENCH_SERVERS, BENCH_REPS, BENCH_DURATION,
BENCH_WARMUP, BENCH_IDLE, BENCH_OUT, BENCH_RETRIES, BENCH_WORKERS do the same.
BENCH_LISTENER_WARMUP=N: listener round trips of each input on the fresh servers before the
counted ones (default 2000, --quick 1000); BENCH_LISTENER_NODELAY=0: confab's listener socket
without the TCP_NODELAY the bench gives it (Node's REPL server always has it).`;

// ---------------------------------------------------------------------------------------
// options

const ALL_MODES = ["rr1", "rr64", "pipe", "connect", "idle", "listener", "cold", "workers"];
const ALL_SERVERS = ["raw", "readline", "confab", "serve"];

function parseOptions(argv, env) {
  const o = {
    quick: env.BENCH_QUICK === "1",
    only: env.BENCH_ONLY,
    servers: env.BENCH_SERVERS,
    reps: env.BENCH_REPS,
    duration: env.BENCH_DURATION,
    warmup: env.BENCH_WARMUP,
    idle: env.BENCH_IDLE,
    out: env.BENCH_OUT,
    retries: env.BENCH_RETRIES,
    workers: env.BENCH_WORKERS,
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const [k, inline] = a.includes("=") ? [a.slice(0, a.indexOf("=")), a.slice(a.indexOf("=") + 1)] : [a, undefined];
    const val = () => inline ?? argv[++i];
    switch (k) {
      case "--quick": o.quick = true; break;
      case "--only": o.only = val(); break;
      case "--servers": o.servers = val(); break;
      case "--reps": o.reps = val(); break;
      case "--duration": o.duration = val(); break;
      case "--warmup": o.warmup = val(); break;
      case "--idle": o.idle = val(); break;
      case "--out": o.out = val(); break;
      case "--retries": o.retries = val(); break;
      case "--no-retry": o.retries = "0"; break;
      case "--workers": o.workers = val(); break;
      case "-h": case "--help": console.log(HELP); process.exit(0); break;
      default: console.error(`unknown option ${a}\n\n${HELP}`); process.exit(64);
    }
  }
  const partial = Boolean(o.quick || o.only || o.servers);
  const list = (s, all, what) => {
    if (!s) return all;
    const items = s.split(",").map((x) => x.trim()).filter(Boolean)
      .flatMap((x) => (x === "rr" ? ["rr1", "rr64"] : x === "confab-talk" ? ["confab"] : [x]));
    for (const x of items) if (!all.includes(x)) { console.error(`unknown ${what} "${x}" (known: ${all.join(", ")})`); process.exit(64); }
    return all.filter((x) => items.includes(x));
  };
  const num = (v, d, lo, hi) => {
    const n = v === undefined ? d : Number(v);
    return Number.isFinite(n) ? Math.min(hi, Math.max(lo, n)) : d;
  };
  let servers = list(o.servers, ALL_SERVERS, "server");
  if (!servers.includes("raw")) servers = ["raw", ...servers]; // ratios need raw
  return {
    quick: o.quick,
    partial,
    modes: list(o.only, ALL_MODES, "mode"),
    servers,
    reps: Math.round(num(o.reps, o.quick ? 1 : 5, 1, 20)),
    duration: num(o.duration, o.quick ? 1 : 1.2, 0.2, 60),
    warmup: num(o.warmup, 0.3, 0, 10),
    idle: Math.round(num(o.idle, o.quick ? 2000 : 10000, 10, 100000)),
    retries: Math.round(num(o.retries, 2, 0, 5)),
    coldRuns: o.quick ? 5 : 15,
    listenerIterations: o.quick ? 500 : 2000, // counted round trips of each input on each server
    listenerWarmup: Math.round(num(env.BENCH_LISTENER_WARMUP, o.quick ? 1000 : 2000, 100, 100000)), // the same before them, on the fresh servers (reported apart)
    workerCounts: workerCounts(o.workers),
    out: path.resolve(o.out ?? (partial ? path.join(BENCH, "build", "results") : path.join(BENCH, "results"))),
  };
}

function workerCounts(text) {
  if (!text) return [1, 2, 4];
  const counts = [...new Set(String(text).split(",").map((x) => Number(x.trim())))];
  const bad = counts.filter((n) => !Number.isInteger(n) || n < 1 || n > 32);
  if (bad.length) { console.error(`--workers: worker counts are whole numbers from 1 to 32, got "${text}"`); process.exit(64); }
  return counts.includes(1) ? counts.sort((a, b) => a - b) : [1, ...counts.sort((a, b) => a - b)]; // ratios need 1
}

const opt = parseOptions(process.argv.slice(2), process.env);

// ---------------------------------------------------------------------------------------
// child processes: every one is tracked and ended by its pid on the way out

const children = new Set();
function track(child) {
  children.add(child);
  child.once("exit", () => children.delete(child));
  return child;
}
function killAll() {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) try { process.kill(c.pid, "SIGKILL"); } catch {}
}
process.on("exit", killAll);
for (const sig of ["SIGINT", "SIGTERM"]) process.on(sig, () => { killAll(); process.exit(130); });

function waitExit(child, ms) {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve(true);
  return new Promise((resolve) => {
    const t = setTimeout(() => resolve(false), ms);
    child.once("exit", () => { clearTimeout(t); resolve(true); });
  });
}

// ---------------------------------------------------------------------------------------
// the load generator

function buildLoadgen() {
  const stale = !fs.existsSync(LOADGEN) || fs.statSync(LOADGEN).mtimeMs < fs.statSync(LOADGEN_SRC).mtimeMs;
  if (!stale) return;
  fs.mkdirSync(path.dirname(LOADGEN), { recursive: true });
  const cc = process.env.CC || "cc";
  const r = spawnSync(cc, ["-O2", "-o", LOADGEN, LOADGEN_SRC], { stdio: ["ignore", "inherit", "inherit"], timeout: 120_000 });
  if (r.error || r.status !== 0) {
    console.error(`bench: could not compile ${path.relative(ROOT, LOADGEN_SRC)} with "${cc}"` +
      `${r.error ? `: ${r.error.message}` : ""}. A C compiler is needed (Debian: apt-get install gcc).`);
    process.exit(1);
  }
}

function lastJson(text) {
  const lines = text.split("\n").map((l) => l.trim()).filter((l) => l.startsWith("{"));
  if (lines.length === 0) return null;
  try { return JSON.parse(lines[lines.length - 1]); } catch { return null; }
}

/** Runs loadgen to completion; resolves { ok, json, error, pid }. */
function runLoadgen(args, timeoutMs, onSpawn) {
  return new Promise((resolve) => {
    const child = track(spawn(LOADGEN, args, { stdio: ["ignore", "pipe", "pipe"] }));
    onSpawn?.(child.pid);
    let out = "", err = "";
    child.stdout.setEncoding("utf8").on("data", (d) => { out += d; });
    child.stderr.setEncoding("utf8").on("data", (d) => { err = (err + d).slice(-2000); });
    const timer = setTimeout(() => { try { process.kill(child.pid, "SIGKILL"); } catch {} }, timeoutMs);
    child.on("close", (code, signal) => {
      clearTimeout(timer);
      const json = lastJson(out);
      if (json && json.ok) resolve({ ok: true, json });
      else resolve({
        ok: false, json,
        error: json?.error ?? json?.first_error ??
          (signal ? `loadgen killed (${signal}) after ${timeoutMs} ms` : `loadgen exited ${code}${err ? `: ${err.trim().split("\n").pop()}` : ""}`),
      });
    });
  });
}

// ---------------------------------------------------------------------------------------
// servers

const SERVER_SCRIPTS = {
  raw: "servers/raw.mjs",
  readline: "servers/readline.mjs",
  confab: "servers/confab-talk.mjs",
  serve: "servers/confab-serve.mjs",
  "confab-listener": "servers/confab-listener.mjs",
  "confab-workers": "servers/confab-talk-workers.mjs",
  "node-repl": "servers/node-repl.mjs",
};

/**
 * Starts a server script; resolves { child, pid, pids, port, stderr() } or rejects with a one-line
 * reason. `pids` is every process of the server: a server with workers prints them after the port.
 */
function startServer(name, env = {}) {
  const script = path.join(BENCH, SERVER_SCRIPTS[name]);
  return new Promise((resolve, reject) => {
    const child = track(spawn(process.execPath, [script], {
      cwd: BENCH,
      env: { ...process.env, PORT: "0", ...env },
      stdio: ["ignore", "pipe", "pipe"],
    }));
    let out = "", err = "", settled = false;
    const tail = () => err.trim().split("\n").filter(Boolean).slice(-3).join(" | ");
    const fail = (why) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      try { process.kill(child.pid, "SIGKILL"); } catch {}
      reject(new Error(why));
    };
    const timer = setTimeout(() => fail(`no "PORT n" line within 15 s${err ? `: ${tail()}` : ""}`), 15_000);
    child.stderr.setEncoding("utf8").on("data", (d) => { err = (err + d).slice(-4000); });
    child.stdout.setEncoding("utf8").on("data", (d) => {
      if (settled) return; // keep draining
      out += d;
      const nl = out.indexOf("\n");
      if (nl < 0) return;
      const line = out.slice(0, nl).trim();
      const m = /^PORT (\d+)(?: PIDS ([\d,]+))?$/.exec(line);
      if (!m) return fail(line.replace(/^UNAVAILABLE /, "") || "bad first line");
      settled = true;
      clearTimeout(timer);
      const pids = m[2] ? m[2].split(",").map(Number) : [child.pid];
      resolve({ name, child, pid: child.pid, pids, port: Number(m[1]), stderr: () => err });
    });
    child.once("exit", (code, signal) => fail(`exited (${code ?? signal}) before listening${err ? `: ${tail()}` : ""}`));
  });
}

async function stopServer(s) {
  if (!s) return;
  try { process.kill(s.pid, "SIGTERM"); } catch {}
  if (!(await waitExit(s.child, 2000))) {
    try { process.kill(s.pid, "SIGKILL"); } catch {}
    await waitExit(s.child, 2000);
  }
  // A server's workers go with their primary (cluster ends them when its channel closes); wait
  // for that, so that none of them is still busy during the next run, and end any that stays.
  const workers = (s.pids ?? []).filter((pid) => pid !== s.pid);
  for (const deadline = Date.now() + 3000; workers.some(isWorkerOf(s)) && Date.now() < deadline; ) await sleep(20);
  for (const pid of workers.filter(isWorkerOf(s))) try { process.kill(pid, "SIGKILL"); } catch {}
}
// still running, and still the server's script (pids are reused)
const isWorkerOf = (s) => (pid) => {
  try { return fs.readFileSync(`/proc/${pid}/cmdline`, "utf8").includes(SERVER_SCRIPTS[s.name].split("/").pop()); } catch { return false; }
};

function procCpu(pid) {
  try {
    const s = fs.readFileSync(`/proc/${pid}/stat`, "utf8");
    const f = s.slice(s.lastIndexOf(")") + 2).split(" ");
    return (Number(f[11]) + Number(f[12])) / 100; // utime + stime, USER_HZ = 100 on Linux
  } catch { return NaN; }
}
// CPU used by every other user-space process on the machine (other sessions' builds and tests
// share these 2 cores): a run during which they took a noticeable share is done again.
function othersSnapshot() {
  const snap = new Map();
  let names;
  try { names = fs.readdirSync("/proc"); } catch { return null; }
  for (const d of names) {
    if (d.charCodeAt(0) < 48 || d.charCodeAt(0) > 57) continue;
    let s;
    try { s = fs.readFileSync(`/proc/${d}/stat`, "utf8"); } catch { continue; }
    const f = s.slice(s.lastIndexOf(")") + 2).split(" ");
    if (Number(f[6]) & 0x200000) continue; // PF_KTHREAD: kernel threads (ksoftirqd does our loopback work)
    // own utime+stime, and children's reaped time (short-lived test processes end up there)
    snap.set(Number(d), [Number(f[11]) + Number(f[12]), Number(f[13]) + Number(f[14])]);
  }
  return { at: process.hrtime.bigint(), snap };
}
function othersCores(a, b, exclude) {
  if (!a || !b) return NaN;
  const wall = Number(b.at - a.at) / 1e9;
  let ticks = 0;
  for (const [pid, [own, kids]] of b.snap) {
    if (exclude.has(pid)) continue;
    const before = a.snap.get(pid);
    if (before) ticks += (own - before[0]) + Math.min(kids - before[1], wall * 100 * os.cpus().length);
    else ticks += own; // started during the run
  }
  return ticks / 100 / wall;
}

function procRssKb(pid) {
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, "utf8"));
    return m ? Number(m[1]) : NaN;
  } catch { return NaN; }
}
function procFds(pid) {
  try { return fs.readdirSync(`/proc/${pid}/fd`).length; } catch { return NaN; }
}

// ---------------------------------------------------------------------------------------
// modes against a talk server

// a run is done again (within a budget) when other processes used more than this many cores during it
const CONTENDED = Number(CONTENDED_TEXT);
const IDLE_REPS = 3;

const LOADGEN_MODES = {
  rr1: { args: ["--mode", "rr", "--conns", "1"], what: "request/response, 1 connection" },
  rr64: { args: ["--mode", "rr", "--conns", "64"], what: "request/response, 64 connections" },
  pipe: { args: ["--mode", "pipe", "--conns", "64", "--depth", "16"], what: "pipelined, 64 connections x 16 lines in flight" },
  connect: { args: ["--mode", "connect", "--conns", "16"], what: "connect, one round trip, close; 16 at a time" },
};

async function runLoadgenMode(mode, server) {
  // every process of the server (a primary and its workers) counts as the server's CPU
  const pids = server.pids ?? [server.pid];
  const args = [...LOADGEN_MODES[mode].args, "--port", String(server.port), "--server-pid", pids.join(","),
    "--duration", String(opt.duration), "--warmup", String(opt.warmup), "--stall", "5", "--drain", "2"];
  const serverCpu = () => pids.reduce((sum, pid) => sum + procCpu(pid), 0);
  const cpu0 = serverCpu();
  const exclude = new Set([process.pid, ...pids]);
  const snap0 = othersSnapshot();
  const r = await runLoadgen(args, (opt.duration + opt.warmup + 20) * 1000, (pid) => exclude.add(pid));
  const others = othersCores(snap0, othersSnapshot(), exclude);
  const cpu1 = serverCpu();
  if (!r.ok) return { ok: false, error: r.error, partial: r.json ?? undefined };
  return {
    ok: true, ...r.json, server_cpu_total_s: +(cpu1 - cpu0).toFixed(3),
    others_cores: +others.toFixed(3), contended: others > CONTENDED,
  };
}

let idleTarget = opt.idle;
let idleNote = "";
function checkFdLimit() {
  const hard = Number(spawnSync("sh", ["-c", "ulimit -Hn"], { encoding: "utf8" }).stdout.trim());
  const soft = Number(spawnSync("sh", ["-c", "ulimit -n"], { encoding: "utf8" }).stdout.trim());
  // node raises its soft limit to the hard one at start-up, and so does loadgen
  if (Number.isFinite(hard) && hard < opt.idle + 200) {
    idleTarget = Math.max(10, hard - 200);
    idleNote = `idle connections capped at ${idleTarget} by the open-files hard limit (${hard}); ` +
      `raise it (e.g. as root: prlimit --pid $$ --nofile=${opt.idle + 1000}) to hold ${opt.idle}`;
  }
  return { soft, hard };
}

async function runIdle(server) {
  // warm the server's code paths so that JIT code is not counted as per-connection memory
  const warm = await runLoadgen(["--mode", "connect", "--conns", "4", "--duration", "0.3", "--warmup", "0",
    "--port", String(server.port), "--stall", "5"], 15_000);
  if (!warm.ok) return { ok: false, error: `warm-up: ${warm.error}` };
  await sleep(300);
  const rssBefore = procRssKb(server.pid);
  const fdsBefore = procFds(server.pid);
  const child = track(spawn(LOADGEN, ["--mode", "idle", "--port", String(server.port), "--idle", String(idleTarget),
    "--idle-concurrency", "256", "--setup-max", "60", "--stall", "10", "--hold-max", "120"],
  { stdio: ["pipe", "pipe", "pipe"] }));
  let out = "";
  child.stdout.setEncoding("utf8");
  child.stderr.resume();
  const ready = await new Promise((resolve) => {
    const t = setTimeout(() => resolve(null), 75_000);
    child.stdout.on("data", (d) => {
      out += d;
      const m = /^READY (\d+)$/m.exec(out);
      if (m) { clearTimeout(t); resolve(Number(m[1])); }
    });
    child.once("exit", () => { clearTimeout(t); resolve(null); });
  });
  let rssAfter = NaN, fdsAfter = NaN;
  if (ready !== null) {
    await sleep(500);
    rssAfter = procRssKb(server.pid);
    fdsAfter = procFds(server.pid);
  }
  child.stdin.end();
  if (!(await waitExit(child, 15_000))) try { process.kill(child.pid, "SIGKILL"); } catch {}
  await waitExit(child, 2000);
  const json = lastJson(out);
  if (ready === null || !json) return { ok: false, error: json?.first_error ?? "idle: the generator did not get ready", partial: json ?? undefined };
  if (!json.ok) return { ok: false, error: json.first_error ?? `held ${json.held} of ${json.target}`, partial: json };
  return {
    ok: true, held: json.held, requested: json.requested, setup_s: json.setup_s,
    rss_before_kb: rssBefore, rss_after_kb: rssAfter, server_fds_before: fdsBefore, server_fds_after: fdsAfter,
    kb_per_conn: (rssAfter - rssBefore) / json.held,
  };
}

// ---------------------------------------------------------------------------------------
// listener: REPL round trips at one connection, confab's listener against Node's own REPL
//
// One Node client (below) for every server: it writes one input line, waits until the answer
// and the next prompt have come back, checks both, and times that. The servers are started
// once, one connection each, and take turns in windows of LISTENER_WINDOW round trips
// (listener, Node's REPL, listener, ...; the order flips every round), so that the machine's
// drift hits both alike. Every input differs from every other one sent on that connection.

const ANSI = /\x1b\[[0-9;]*[A-Za-z]/g;
const LISTENER_WINDOW = 100; // round trips per window
const LISTENER_NODELAY = process.env.BENCH_LISTENER_NODELAY !== "0";

/**
 * The inputs. `i` is the same for both servers in a round and never repeats on a connection, so
 * that no cache of identical source text can favour either side. Node's REPL does not strip
 * types: it is sent `plain`, the JavaScript a user would type there.
 */
const REPL_INPUTS = [
  { id: "js", label: "JavaScript `1 + i`", typed: (i) => `1 + ${i}`, plain: (i) => `1 + ${i}`, answer: (i) => String(1 + i) },
  {
    id: "ts", label: "TypeScript `const xi: number = i; xi * 2`",
    typed: (i) => `const x${i}: number = ${i}; x${i} * 2`, plain: (i) => `const x${i} = ${i}; x${i} * 2`, answer: (i) => String(2 * i),
  },
];

/** Splits what came back into the answer and the prompt after it, or null. */
function answerAndPrompt(text) {
  const t = text.replace(ANSI, "");
  const nl = t.lastIndexOf("\n");
  return nl < 0 ? null : { answer: t.slice(0, nl).trim(), prompt: t.slice(nl + 1) };
}
const endsInPrompt = (b) => b.endsWith("> ") && b.includes("\n");

/** What each server is sent and what must come back. */
const REPL_SIDES = {
  // NODELAY=1: TCP_NODELAY on the accepted socket, as Node's REPL server has (see the server);
  // BENCH_LISTENER_NODELAY=0 measures confab's server as it is, with Nagle on
  listener: {
    server: "confab-listener", env: { NODELAY: LISTENER_NODELAY ? "1" : "0" }, name: "confab listener",
    hello: '"bench"\n', firstPrompt: /^CL-USER 1 > $/, send: (input, i) => input.typed(i), done: endsInPrompt,
    check(got, input, i) {
      const r = answerAndPrompt(got);
      const want = `CL-USER ${this.count + 1} > `;
      if (!r || r.answer !== input.answer(i) || r.prompt !== want) {
        throw new Error(`listener: ${JSON.stringify(input.typed(i))} gave ${JSON.stringify(got.slice(-200))}, not ${JSON.stringify(`${input.answer(i)}\n${want}`)}`);
      }
      this.count++;
    },
  },
  node: {
    server: "node-repl", env: {}, name: "Node's REPL",
    hello: null, firstPrompt: /^> $/, send: (input, i) => input.plain(i), done: endsInPrompt,
    check(got, input, i) {
      const r = answerAndPrompt(got);
      if (!r || r.answer !== input.answer(i) || r.prompt !== "> ") {
        throw new Error(`Node's REPL: ${JSON.stringify(input.plain(i))} gave ${JSON.stringify(got.slice(-200))}, not ${JSON.stringify(`${input.answer(i)}\n> `)}`);
      }
    },
  },
  // the floor: the same client against the raw talk server, which echoes the line
  raw: {
    server: "raw", env: {}, name: "raw talk server",
    hello: null, firstPrompt: null, send: (input, i) => input.plain(i), done: (b) => b.endsWith("\n"),
    check(got, input, i) {
      if (got !== `You sent: '${input.plain(i)}'\n`) throw new Error(`raw: unexpected ${JSON.stringify(got.slice(-200))}`);
    },
  },
};

async function lineClient(port, connectMs = 5000) {
  const sock = net.connect({ host: "127.0.0.1", port });
  sock.setNoDelay(true);
  sock.setEncoding("utf8");
  let buf = "";
  let wait = null; // { pred, resolve, reject, deadline }
  let closed = null;
  const fail = (why) => {
    const w = wait;
    wait = null;
    w?.reject(new Error(`${why}; got ${JSON.stringify(buf.slice(-200))}`));
  };
  sock.on("data", (d) => {
    buf += d;
    if (wait !== null && wait.pred(buf)) { const w = wait; wait = null; w.resolve(); }
  });
  sock.on("error", (e) => { closed = e.message; fail(closed); });
  sock.on("close", () => { closed ??= "connection closed"; fail(closed); });
  await new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error("connect timed out")), connectMs);
    sock.once("connect", () => { clearTimeout(t); resolve(); });
    sock.once("error", (e) => { clearTimeout(t); reject(e); });
  });
  // one watchdog for every wait, not a timer per round trip (the client's cost is in both sides)
  const watchdog = setInterval(() => { if (wait !== null && Date.now() > wait.deadline) fail(`no answer within ${wait.ms} ms`); }, 200);
  watchdog.unref();
  return {
    sock,
    take() { const b = buf; buf = ""; return b; },
    /** resolves once pred(buffer) holds */
    until(pred, ms) {
      if (pred(buf)) return Promise.resolve();
      if (closed) return Promise.reject(new Error(`${closed}; got ${JSON.stringify(buf.slice(-200))}`));
      return new Promise((resolve, reject) => { wait = { pred, resolve, reject, ms, deadline: Date.now() + ms }; });
    },
    close() { clearInterval(watchdog); sock.destroy(); },
  };
}

function pct(sorted, p) { return sorted.length ? sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))] : NaN; }

/** `count` round trips of `input` with i = from, from + 1, ...; pushes each one's µs to `lat`. */
async function replWindow(c, side, input, from, count, lat) {
  for (let k = 0; k < count; k++) {
    const i = from + k;
    const line = `${side.send(input, i)}\n`;
    const t0 = process.hrtime.bigint();
    c.sock.write(line);
    await c.until(side.done, 3000);
    const us = Number(process.hrtime.bigint() - t0) / 1000;
    side.check(c.take(), input, i);
    lat.push(us);
  }
}

function latencyFigures(all, windows) {
  const lat = [...all].sort((a, b) => a - b);
  return {
    n: lat.length, p50_us: +pct(lat, 0.5).toFixed(1), p99_us: +pct(lat, 0.99).toFixed(1),
    windows_p50_us: windows.map((w) => +pct([...w].sort((a, b) => a - b), 0.5).toFixed(1)),
  };
}

function compareSides(lat, windows, id) {
  const l = latencyFigures(lat[`listener.${id}`], windows[`listener.${id}`]);
  const n = latencyFigures(lat[`node.${id}`], windows[`node.${id}`]);
  const perRound = l.windows_p50_us.map((x, k) => x / n.windows_p50_us[k]).sort((a, b) => a - b);
  return {
    listener: l, node_repl: n, ratio_p50: +(l.p50_us / n.p50_us).toFixed(3),
    round_ratios: { min: +perRound[0].toFixed(3), median: +median(perRound).toFixed(3), max: +perRound[perRound.length - 1].toFixed(3) },
  };
}

async function runListener() {
  // rounds of windows: first on the fresh servers (JIT warm-up, reported apart), then counted
  const freshRounds = Math.max(1, Math.ceil(opt.listenerWarmup / LISTENER_WINDOW));
  const rounds = Math.max(2, Math.ceil(opt.listenerIterations / LISTENER_WINDOW));
  const res = { ok: false, window: LISTENER_WINDOW, fresh_rounds: freshRounds, rounds, listener_nodelay: LISTENER_NODELAY, inputs: {}, raw_talk: null };
  const servers = {}, clients = {};
  const exclude = new Set([process.pid]);
  const sides = ["listener", "node", "raw"];
  try {
    for (const s of sides) {
      const side = REPL_SIDES[s];
      try {
        servers[s] = await startServer(side.server, side.env);
        exclude.add(servers[s].pid);
        const c = await lineClient(servers[s].port);
        clients[s] = c;
        if (side.hello) c.sock.write(side.hello);
        if (side.firstPrompt) {
          await c.until((b) => b.endsWith("> "), 5000);
          const first = c.take().replace(ANSI, "");
          if (!side.firstPrompt.test(first)) throw new Error(`first prompt ${JSON.stringify(first)}`);
          if (s === "listener") res.first_prompt = first;
        }
      } catch (e) {
        if (s === "raw") { res.raw_talk = { error: e.message }; continue; }
        res.error = `${side.name} unavailable: ${e.message}`;
        return res;
      }
    }
    REPL_SIDES.listener.count = 1;
    const blank = () => {
      const o = {};
      for (const input of REPL_INPUTS) for (const s of sides) o[`${s}.${input.id}`] = [];
      return o;
    };
    const fresh = { lat: blank(), windows: blank(), others: [] }, warm = { lat: blank(), windows: blank(), others: [] };
    // A counted round during which other processes took more than CONTENDED cores is done again
    // (at most rounds / 2 times in all), after waiting for them to quieten down, as the loadgen
    // modes' runs are. Rounds on the fresh servers are not: they are the servers' first inputs.
    let retries = Math.ceil(rounds / 2), seq = 0, contended = 0;
    res.redone_rounds = 0;
    for (let r = 0; r < freshRounds + rounds; r++) {
      const pair = r % 2 ? ["node", "listener"] : ["listener", "node"];
      const got = [];
      const snap0 = othersSnapshot();
      for (const input of REPL_INPUTS) {
        const from = seq++ * LISTENER_WINDOW; // i never repeats on a connection, and is the same on both sides
        const order = input.id === "js" && clients.raw ? ["raw", ...pair] : pair;
        for (const s of order) {
          const w = [];
          await replWindow(clients[s], REPL_SIDES[s], input, from, LISTENER_WINDOW, w);
          got.push([`${s}.${input.id}`, w]);
        }
      }
      const busy = othersCores(snap0, othersSnapshot(), exclude);
      const phase = r < freshRounds ? fresh : warm;
      if (phase === warm && busy > CONTENDED && retries > 0) {
        retries--;
        res.redone_rounds++;
        await waitQuiet();
        r--;
        continue;
      }
      phase.others.push(busy);
      if (phase === warm && busy > CONTENDED) contended++;
      for (const [k, w] of got) { phase.lat[k].push(...w); phase.windows[k].push(w); }
    }
    res.others_cores = +median(warm.others).toFixed(3);
    res.fresh_others_cores = +median(fresh.others).toFixed(3);
    res.contended_rounds = contended;
    res.contended = contended > 0;
    for (const input of REPL_INPUTS) {
      res.inputs[input.id] = {
        label: input.label, listener_sends: input.typed(7), node_repl_sends: input.plain(7),
        ...compareSides(warm.lat, warm.windows, input.id),
        fresh: compareSides(fresh.lat, fresh.windows, input.id),
      };
    }
    if (clients.raw) res.raw_talk = latencyFigures(warm.lat["raw.js"], warm.windows["raw.js"]);
    res.ok = true;
    return res;
  } catch (e) {
    res.error = e.message;
    return res;
  } finally {
    for (const c of Object.values(clients)) c.close();
    for (const s of Object.values(servers)) await stopServer(s);
  }
}

// ---------------------------------------------------------------------------------------
// cold start

function runCold() {
  const cli = process.env.CONFAB_CLI ? path.resolve(process.env.CONFAB_CLI) : path.join(ROOT, "dist", "src", "cli", "main.js");
  const time = (args) => {
    const t0 = process.hrtime.bigint();
    const r = spawnSync(process.execPath, args, { cwd: ROOT, stdio: ["ignore", "ignore", "pipe"], timeout: 15_000, encoding: "utf8" });
    const ms = Number(process.hrtime.bigint() - t0) / 1e6;
    return { ms, ok: !r.error && r.status === 0, why: r.error ? r.error.message : `exit ${r.status ?? r.signal}: ${(r.stderr || "").trim().split("\n").slice(-1)[0] ?? ""}` };
  };
  const node = [], confab = [];
  let error = fs.existsSync(cli) ? null : `unavailable: ${path.relative(ROOT, cli)} does not exist`;
  time(["-e", "0"]);
  if (!error) { const w = time([cli, "--help"]); if (!w.ok) error = `confab --help failed (${w.why})`; }
  for (let i = 0; i < opt.coldRuns; i++) {
    node.push(time(["-e", "0"]).ms);
    if (!error) confab.push(time([cli, "--help"]).ms);
  }
  node.sort((a, b) => a - b);
  confab.sort((a, b) => a - b);
  const node_ms = +median(node).toFixed(1);
  if (error) return { ok: false, error, node_ms, runs: opt.coldRuns };
  const confab_ms = +median(confab).toFixed(1);
  return { ok: true, node_ms, confab_ms, ratio: +(confab_ms / node_ms).toFixed(2), runs: opt.coldRuns };
}

// ---------------------------------------------------------------------------------------
// figures

function median(xs) {
  const v = xs.filter((x) => typeof x === "number" && Number.isFinite(x)).sort((a, b) => a - b);
  if (v.length === 0) return NaN;
  const m = v.length >> 1;
  return v.length % 2 ? v[m] : (v[m - 1] + v[m]) / 2;
}

const fmtRate = (x) => (x >= 1e6 ? `${(x / 1e6).toFixed(2)} M` : x >= 1e3 ? `${(x / 1e3).toFixed(1)} k` : x.toFixed(0));
const fmtNum = (d) => (x) => x.toFixed(d);
const fmtPct = (x) => `${(x * 100).toFixed(0)}%`;

// every figure in the table: where it comes from, which way is better, confab's target
const METRICS = [
  { id: "rr1.rate", mode: "rr1", label: "rr 1 conn: round trips/s", get: (r) => r.lines_per_s, better: "higher", fmt: fmtRate },
  { id: "rr1.p50", mode: "rr1", label: "rr 1 conn: p50 latency µs", get: (r) => r.p50_us, better: "lower", fmt: fmtNum(0) },
  { id: "rr1.p99", mode: "rr1", label: "rr 1 conn: p99 latency µs", get: (r) => r.p99_us, better: "lower", fmt: fmtNum(0) },
  { id: "rr1.cpu", mode: "rr1", label: "rr 1 conn: server CPU µs/line", get: (r) => r.server_cpu_us_per_op, better: "lower", fmt: fmtNum(1) },
  { id: "rr64.rate", mode: "rr64", label: "rr 64 conns: round trips/s", get: (r) => r.lines_per_s, better: "higher", fmt: fmtRate },
  { id: "rr64.p50", mode: "rr64", label: "rr 64 conns: p50 latency µs", get: (r) => r.p50_us, better: "lower", fmt: fmtNum(0) },
  { id: "rr64.p99", mode: "rr64", label: "rr 64 conns: p99 latency µs", get: (r) => r.p99_us, better: "lower", fmt: fmtNum(0), target: { max: 1.2 } },
  { id: "rr64.cpu", mode: "rr64", label: "rr 64 conns: server CPU µs/line", get: (r) => r.server_cpu_us_per_op, better: "lower", fmt: fmtNum(1) },
  { id: "pipe.rate", mode: "pipe", label: "pipe 64×16: lines/s", get: (r) => r.lines_per_s, better: "higher", fmt: fmtRate, target: { min: 0.9 } },
  { id: "pipe.mb", mode: "pipe", label: "pipe 64×16: MB/s out+in", get: (r) => r.mb_out_per_s + r.mb_in_per_s, better: "higher", fmt: fmtNum(1), chart: false },
  { id: "pipe.cpu", mode: "pipe", label: "pipe 64×16: server CPU µs/line", get: (r) => r.server_cpu_us_per_op, better: "lower", fmt: fmtNum(2), target: { max: 1.15 } },
  { id: "connect.rate", mode: "connect", label: "connect: connections/s", get: (r) => r.conns_per_s, better: "higher", fmt: fmtRate },
  { id: "connect.cpu", mode: "connect", label: "connect: server CPU µs/conn", get: (r) => r.server_cpu_us_per_op, better: "lower", fmt: fmtNum(1), target: { max: 1.15 } },
  { id: "idle.kb", mode: "idle", label: "idle: KB per connection", get: (r) => r.kb_per_conn, better: "lower", fmt: fmtNum(2), target: { max: 1.5 } },
];
// CPU shares (of one core), shown without ratios
const SHARES = ["rr1", "rr64", "pipe", "connect"].map((mode) => ({
  mode, label: `${mode === "pipe" ? "pipe 64×16" : mode === "connect" ? "connect" : mode === "rr1" ? "rr 1 conn" : "rr 64 conns"}: CPU server / gen / others`,
}));

function targetText(t) { return t ? ("min" in t ? `≥ ${t.min}×` : `≤ ${t.max}×`) : ""; }
function meets(t, ratio) { return !t || !Number.isFinite(ratio) ? null : "min" in t ? ratio >= t.min : ratio <= t.max; }

// waiting for other processes to quieten down before a run: at most 6 s per run, 60 s in all
let quietBudgetMs = 60_000;
let quietWaitedMs = 0;
async function waitQuiet() {
  const until = Date.now() + Math.min(6000, quietBudgetMs);
  const t0 = Date.now();
  const exclude = new Set([process.pid]);
  for (;;) {
    const a = othersSnapshot();
    await sleep(250);
    const busy = othersCores(a, othersSnapshot(), exclude);
    if (!(busy > CONTENDED) || Date.now() >= until) break;
  }
  const waited = Date.now() - t0 - 250;
  quietBudgetMs -= Math.max(0, waited);
  quietWaitedMs += Math.max(0, waited);
}

/** One run of one mode against a fresh server; null when the server would not start. */
let lastContended = true; // wait for quiet before the first run, and after a contended one
async function measureOnce(mode, name, unavailable, env = {}, key = name) {
  if (mode !== "idle" && lastContended) await waitQuiet();
  let server;
  try {
    server = await startServer(name, env);
  } catch (e) {
    unavailable[key] = e.message;
    console.error(`  ${key}: unavailable: ${e.message}`);
    return null;
  }
  let r;
  try {
    r = mode === "idle" ? await runIdle(server) : await runLoadgenMode(mode, server);
  } catch (e) {
    r = { ok: false, error: e.message };
  }
  if (server.child.exitCode !== null || server.child.signalCode !== null) {
    r = { ...r, ok: false, error: `${r.ok ? "" : `${r.error}; `}server exited (${server.child.exitCode ?? server.child.signalCode})` };
  }
  if (!r.ok) {
    const tail = server.stderr().trim().split("\n").filter(Boolean).slice(-3).join(" | ");
    if (tail) r.server_stderr = tail.slice(0, 600);
  }
  await stopServer(server);
  if (mode !== "idle") lastContended = Boolean(r.contended);
  return r;
}

// ---------------------------------------------------------------------------------------
// workers: the talk server spread over N processes (startUpServer's `workers`, node:cluster)

/**
 * Pipelined load (64 connections × 16 lines) against the talk server with each worker count,
 * counts taking turns within each round; every process of the server counts as its CPU.
 * WORKERS=1 is the plain one-process server: the others' ratios are to it.
 */
async function runWorkersScaling(unavailable) {
  const counts = opt.workerCounts;
  const results = {};
  for (const n of counts) results[n] = { runs: [], redone: [] };
  let retryBudget = Math.ceil(opt.reps * counts.length * 0.4);
  for (let rep = 0; rep < opt.reps; rep++) {
    const order = counts.map((_, i) => counts[(i + rep) % counts.length]);
    for (const n of order) {
      const key = `workers=${n}`;
      for (let attempt = 0; !unavailable[key]; attempt++) {
        const r = await measureOnce("pipe", "confab-workers", unavailable, { WORKERS: String(n) }, key);
        if (!r) break;
        const again = r.ok && r.contended && attempt < opt.retries && retryBudget > 0;
        const primary = r.ok && n > 1 && r.server_cpu_share_each ? `, primary ${fmtPct(r.server_cpu_share_each[0])}` : "";
        console.error(`  [${rep + 1}/${opt.reps}] workers ${String(n).padEnd(2)} ${progressLine("pipe", r)}${primary}` +
          `${r.ok ? `, machine ${r.machine_busy_cores?.toFixed(2)} cores busy` : ""}${r.contended ? ` [other processes used ${r.others_cores} cores${again ? ": again" : ""}]` : ""}`);
        if (again) { retryBudget--; results[n].redone.push(r); continue; }
        results[n].runs.push(r);
        break;
      }
    }
  }
  const figures = {};
  for (const n of counts) {
    const ok = goodRuns(results[n]);
    const med = (get) => median(ok.map(get));
    figures[n] = {
      lines_per_s: med((r) => r.lines_per_s),
      server_cpu_us_per_line: med((r) => r.server_cpu_us_per_op),
      server_cores: med((r) => r.server_cpu_share),
      primary_cores: n > 1 ? med((r) => r.server_cpu_share_each?.[0]) : NaN,
      generator_cores: med((r) => r.gen_cpu_share),
      machine_busy_cores: med((r) => r.machine_busy_cores),
      machine_softirq_cores: med((r) => r.machine_softirq_cores),
      others_cores: med((r) => r.others_cores),
      contended: ok.some((r) => r.contended),
    };
  }
  const base = figures[1] ?? {};
  const ratios = {};
  for (const n of counts) {
    const f = figures[n];
    ratios[n] = {
      lines_per_s: Number.isFinite(f.lines_per_s) && base.lines_per_s > 0 ? +(f.lines_per_s / base.lines_per_s).toFixed(3) : null,
      server_cpu_us_per_line: Number.isFinite(f.server_cpu_us_per_line) && base.server_cpu_us_per_line > 0 ? +(f.server_cpu_us_per_line / base.server_cpu_us_per_line).toFixed(3) : null,
    };
  }
  return { mode: "pipe", what: LOADGEN_MODES.pipe.what, counts, figures, ratios, unavailable: counts.filter((n) => unavailable[`workers=${n}`]).map((n) => `workers=${n}: ${unavailable[`workers=${n}`]}`), results };
}

function workersTable(ws) {
  const header = ["workers", "lines/s ↑", "÷ 1 worker", "server CPU µs/line ↓", "÷ 1 worker", "CPU cores: server (primary) / gen / others", "machine busy (softirq)"];
  const rows = ws.counts.map((n) => {
    const f = ws.figures[n], r = ws.ratios[n];
    if (!Number.isFinite(f.lines_per_s)) return [String(n), "failed", "", "", "", "", ""];
    const star = f.contended ? "*" : "";
    return [
      n === 1 ? "1 (one process)" : String(n),
      `${fmtRate(f.lines_per_s)}${star}`,
      r.lines_per_s === null ? "" : `${r.lines_per_s.toFixed(2)}×`,
      f.server_cpu_us_per_line.toFixed(2),
      r.server_cpu_us_per_line === null ? "" : `${r.server_cpu_us_per_line.toFixed(2)}×`,
      `${f.server_cores.toFixed(2)}${Number.isFinite(f.primary_cores) ? ` (${f.primary_cores.toFixed(2)})` : ""} / ${f.generator_cores.toFixed(2)} / ${Number.isFinite(f.others_cores) ? f.others_cores.toFixed(2) : "-"}`,
      `${f.machine_busy_cores.toFixed(2)} (${f.machine_softirq_cores.toFixed(2)})`,
    ];
  });
  return { header, rows };
}

/** What the workers figures mean on this machine, in one paragraph. */
function workersNote(ws, cores) {
  const one = ws.figures[1], top = ws.counts[ws.counts.length - 1], best = ws.figures[top];
  if (!one || !best || !Number.isFinite(one.lines_per_s) || !Number.isFinite(best.lines_per_s)) return "";
  return `${cores} cores hold the server, the load generator and the kernel's loopback work alike: ` +
    `with 1 process the server used ${one.server_cores.toFixed(2)} cores and the machine was ${one.machine_busy_cores.toFixed(2)} of ${cores} cores busy; ` +
    `with ${top} workers the server used ${best.server_cores.toFixed(2)} cores, the generator ${best.generator_cores.toFixed(2)} and the machine ${best.machine_busy_cores.toFixed(2)} of ${cores}. ` +
    `Throughput can grow only into the cores the generator and the kernel leave free, so these ratios say what workers give when ` +
    `clients and server share ${cores} cores, not what they give on a bigger machine or with the clients elsewhere; CPU per line shows ` +
    `what spreading itself costs, and the primary's share what cluster's round robin costs it (per connection, not per line).`;
}

/** For each mode, raw's highest server CPU per operation over its lowest, across its windows. */
function cpuSpread(results, modes) {
  const out = [];
  for (const mode of modes) {
    const cpu = goodRuns(results.raw?.[mode] ?? { runs: [] }).map((r) => r.server_cpu_us_per_op).filter((x) => x > 0);
    if (cpu.length > 1) out.push([mode, Math.max(...cpu) / Math.min(...cpu)]);
  }
  return out;
}

/** The runs a figure is the median of: the uncontended ones when there are any. */
function goodRuns(entry) {
  const ok = entry.runs.filter((r) => r.ok);
  const clean = ok.filter((r) => !r.contended);
  return clean.length ? clean : ok;
}

// ---------------------------------------------------------------------------------------
// main

async function main() {
  const t0 = Date.now();
  buildLoadgen();
  const fd = checkFdLimit();
  const git = (args) => spawnSync("git", args, { cwd: ROOT, encoding: "utf8", timeout: 10_000 }).stdout?.trim() ?? "";
  const commit = git(["rev-parse", "--short", "HEAD"]);
  const dirty = git(["status", "--porcelain", "--untracked-files=no", "--", "src"]) !== "";
  const source = {
    commit: commit || null, src_modified: dirty,
    confab_build: process.env.CONFAB_DIST ? path.relative(ROOT, process.env.CONFAB_DIST) : "dist",
  };
  const machine = {
    cpu: os.cpus()[0]?.model?.trim() ?? "unknown", cores: os.cpus().length, kernel: `${os.type()} ${os.release()}`,
    node: process.version, memory_gb: +(os.totalmem() / 2 ** 30).toFixed(1), fd_limit: fd,
  };
  const loadModes = opt.modes.filter((m) => m in LOADGEN_MODES || m === "idle");
  console.error(`bench: ${opt.servers.join(", ")} × ${loadModes.join(", ") || "-"}${opt.modes.includes("listener") ? " + listener" : ""}` +
    `${opt.modes.includes("cold") ? " + cold start" : ""}${opt.modes.includes("workers") ? ` + talk server with ${opt.workerCounts.join("/")} workers` : ""}; ${opt.reps} run(s) each, ${opt.warmup} s warm-up + ${opt.duration} s window` +
    `${opt.modes.includes("idle") ? `; ${idleTarget} idle connections` : ""}`);
  if (idleNote && opt.modes.includes("idle")) console.error(`bench: ${idleNote}`);

  const results = {}; // server -> mode -> { runs: [...] }
  const unavailable = {}; // server -> reason it would not start
  for (const s of opt.servers) { results[s] = {}; for (const m of loadModes) results[s][m] = { runs: [], redone: [] }; }

  let cold = null, listener = null, workers = null;
  if (opt.modes.includes("cold")) {
    await waitQuiet();
    cold = runCold();
    console.error(`  cold start: node -e 0 ${cold.node_ms} ms; confab --help ${cold.ok ? `${cold.confab_ms} ms (${cold.ratio}×)` : cold.error}`);
  }
  if (opt.modes.includes("listener")) {
    await waitQuiet();
    listener = await runListener();
    if (listener.ok) {
      for (const input of REPL_INPUTS) {
        const x = listener.inputs[input.id];
        console.error(`  listener ${input.id}: p50 ${x.listener.p50_us} µs, p99 ${x.listener.p99_us} µs; Node's REPL p50 ${x.node_repl.p50_us} µs, ` +
          `p99 ${x.node_repl.p99_us} µs; ${x.ratio_p50}× (windows ${x.round_ratios.min}–${x.round_ratios.max}×, n=${x.listener.n} each); ` +
          `on the fresh servers ${x.fresh.listener.p50_us} vs ${x.fresh.node_repl.p50_us} µs, ${x.fresh.ratio_p50}×`);
      }
      console.error(`  node client ↔ raw talk: ${listener.raw_talk?.p50_us ?? listener.raw_talk?.error ?? "-"} µs p50; other processes ${listener.others_cores} cores`);
    } else console.error(`  listener: ${listener.error}`);
  }

  const planned = opt.reps * opt.servers.length * loadModes.filter((m) => m !== "idle").length;
  let retryBudget = Math.ceil(planned * 0.4);
  for (let rep = 0; rep < opt.reps; rep++) {
    for (const mode of loadModes) {
      if (mode === "idle" && rep >= IDLE_REPS) continue; // memory per connection hardly varies
      const order = opt.servers.map((_, i) => opt.servers[(i + rep) % opt.servers.length]); // rotate, against drift
      for (const name of order) {
        for (let attempt = 0; !unavailable[name]; attempt++) {
          const r = await measureOnce(mode, name, unavailable);
          if (!r) break;
          const again = r.ok && r.contended && attempt < opt.retries && retryBudget > 0;
          const tag = `  [${rep + 1}/${opt.reps}] ${mode.padEnd(7)} ${name.padEnd(8)} `;
          console.error(`${tag}${progressLine(mode, r)}${r.contended ? ` [other processes used ${r.others_cores} cores${again ? ": again" : ""}]` : ""}`);
          if (again) { retryBudget--; results[name][mode].redone.push(r); continue; }
          results[name][mode].runs.push(r);
          break;
        }
      }
    }
  }

  if (opt.modes.includes("workers")) {
    console.error(`  workers scaling: the talk server with ${opt.workerCounts.join(", ")} worker(s), pipe 64×16`);
    workers = await runWorkersScaling(unavailable);
  }

  // medians and ratios
  const figures = {}; // server -> metric id -> median
  for (const s of opt.servers) {
    figures[s] = {};
    for (const m of METRICS) {
      if (!results[s][m.mode]) continue;
      figures[s][m.id] = median(goodRuns(results[s][m.mode]).map((r) => m.get(r)));
    }
    for (const sh of SHARES) {
      if (!results[s][sh.mode]) continue;
      const ok = goodRuns(results[s][sh.mode]);
      figures[s][`${sh.mode}.server_share`] = median(ok.map((r) => r.server_cpu_share));
      figures[s][`${sh.mode}.gen_share`] = median(ok.map((r) => r.gen_cpu_share));
      figures[s][`${sh.mode}.others`] = median(ok.map((r) => r.others_cores));
    }
  }
  const ratios = {};
  for (const s of opt.servers) {
    ratios[s] = {};
    for (const m of METRICS) {
      const v = figures[s][m.id], base = figures.raw?.[m.id];
      if (Number.isFinite(v) && Number.isFinite(base) && base > 0) ratios[s][m.id] = +(v / base).toFixed(3);
    }
  }
  const cellError = (s, mode) => {
    if (unavailable[s]) return "unavailable";
    const runs = results[s][mode]?.runs ?? [];
    return runs.some((r) => r.ok) ? null : runs.length ? "failed" : null;
  };

  // saturation check: raw server vs generator in pipe mode
  let saturation = null;
  if (results.raw.pipe) {
    const srv = figures.raw["pipe.server_share"], gen = figures.raw["pipe.gen_share"];
    if (Number.isFinite(srv)) {
      saturation = {
        raw_server_cpu_share: +srv.toFixed(3), generator_cpu_share: +gen.toFixed(3), saturated: srv >= 0.9 && gen < srv,
        text: srv >= 0.9 && gen < srv
          ? `generator check: in pipe mode the raw server used ${fmtPct(srv)} of a core and the generator ${fmtPct(gen)}: the server, not the generator, is the bottleneck`
          : `generator check: WARNING: in pipe mode the raw server used only ${fmtPct(srv)} of a core (generator ${fmtPct(gen)}); the machine or the generator may be the limit`,
      };
    }
  }

  // ---- terminal table
  const servers = opt.servers;
  const rows = [];
  const hasTarget = servers.includes("confab") || servers.includes("serve");
  const header = ["metric", ...servers.map((s) => (s === "confab" ? "confab (talk)" : s === "serve" ? "confab serve --function" : s)), ...(hasTarget ? ["confab target"] : [])];
  for (const m of METRICS) {
    if (!loadModes.includes(m.mode)) continue;
    const cells = servers.map((s) => {
      const e = cellError(s, m.mode);
      if (e) return e;
      const v = figures[s][m.id];
      if (!Number.isFinite(v)) return "-";
      const r = ratios[s][m.id];
      const star = goodRuns(results[s][m.mode]).some((x) => x.contended) ? "*" : "";
      return s === "raw" || !Number.isFinite(r) ? `${m.fmt(v)}${star}` : `${m.fmt(v)}${star} (${r.toFixed(2)}×)`;
    });
    // With both confab servers the mark of each: the talk server in this process, and the same through `confab serve`.
    const marked = ["confab", "serve"].filter((s) => servers.includes(s));
    const marks = marked.map((s) => `${marked.length > 1 ? ` ${s === "confab" ? "talk" : s}` : ""}${markFor(meets(m.target, ratios[s]?.[m.id]))}`).join("");
    const t = hasTarget ? [m.target ? `${targetText(m.target)}${marks}` : ""] : [];
    rows.push([`${m.label} ${m.better === "higher" ? "↑" : "↓"}`, ...cells, ...t]);
  }
  for (const sh of SHARES) {
    if (!loadModes.includes(sh.mode)) continue;
    const cells = servers.map((s) => {
      const e = cellError(s, sh.mode);
      if (e) return e;
      const a = figures[s][`${sh.mode}.server_share`], b = figures[s][`${sh.mode}.gen_share`];
      const c = figures[s][`${sh.mode}.others`];
      return Number.isFinite(a) ? `${fmtPct(a)} / ${fmtPct(b)} / ${Number.isFinite(c) ? fmtPct(c) : "-"}` : "-";
    });
    rows.push([sh.label, ...cells, ...(hasTarget ? [""] : [])]);
  }
  const extra = [];
  const listenerOut = listener ? listenerTable(listener) : null;
  if (cold) {
    extra.push([
      `cold start: confab --help vs node -e 0 (median of ${cold.runs})`,
      cold.ok ? `${cold.confab_ms} ms vs ${cold.node_ms} ms (${cold.ratio}×)` : `${short(cold.error)} (node -e 0: ${cold.node_ms} ms)`,
      `< 2×${cold.ok ? markFor(cold.ratio < 2) : ""}`,
    ]);
  }

  const date = new Date().toISOString();
  const machineLine = `${machine.cpu}, ${machine.cores} cores, ${machine.kernel}, Node ${machine.node}`;
  console.log("");
  console.log(`confab bench ${date.slice(0, 16).replace("T", " ")} UTC: ${machineLine}`);
  console.log(`median of ${opt.reps} run(s); ${opt.warmup} s warm-up + ${opt.duration} s window; lines of 32 bytes; ratios are to raw node:net in the same run; ↑ higher is better, ↓ lower`);
  console.log("");
  if (rows.length) console.log(textTable(header, rows));
  if (listenerOut) { console.log(""); console.log(listenerOut.title); console.log(textTable(listenerOut.header, listenerOut.rows)); console.log(listenerOut.note); }
  if (extra.length) { console.log(""); console.log(textTable(["confab only", "figure", "target"], extra)); }
  const workersOut = workers ? workersTable(workers) : null;
  if (workersOut) {
    console.log("");
    console.log(`workers: the talk server spread over N processes (startUpServer's workers, node:cluster), ${workers.what}; * = from contended runs`);
    console.log(textTable(workersOut.header, workersOut.rows));
    workers.note = workersNote(workers, machine.cores);
    if (workers.note) console.log(workers.note);
  }
  console.log("");
  if (saturation) console.log(saturation.text);
  for (const [s, why] of Object.entries(unavailable)) console.log(`${s}: unavailable: ${why}`);
  for (const s of servers) for (const mode of loadModes) {
    const failed = results[s][mode].runs.filter((r) => !r.ok);
    if (failed.length && !unavailable[s]) console.log(`${s} ${mode}: ${failed.length} of ${results[s][mode].runs.length} run(s) failed: ${failed[0].error}${failed[0].server_stderr ? ` (server stderr: ${failed[0].server_stderr})` : ""}`);
  }
  if (idleNote && loadModes.includes("idle")) console.log(idleNote);
  const redone = servers.reduce((n, s) => n + loadModes.reduce((k, m) => k + results[s][m].redone.length, 0), 0) +
    (workers ? workers.counts.reduce((n, c) => n + workers.results[c].redone.length, 0) : 0);
  const stillContended = [
    ...servers.flatMap((s) => loadModes.filter((m) => goodRuns(results[s][m]).some((r) => r.contended)).map((m) => `${s} ${m}`)),
    ...(workers ? workers.counts.filter((c) => workers.figures[c].contended).map((c) => `workers ${c}`) : []),
  ];
  // Contention from outside this machine (a shared host) is invisible in /proc, but shows as
  // the same server costing more CPU per operation in one window than in another.
  const spread = cpuSpread(results, loadModes.filter((m) => m !== "idle"));
  const noise = `waited ${(quietWaitedMs / 1000).toFixed(1)} s for other processes to quieten down; ` +
    `${redone} run(s) done again because other processes used more than ${CONTENDED} cores meanwhile` +
    (stillContended.length ? `; figures marked * still come from contended runs: ${stillContended.join(", ")}` : "") +
    (spread.length ? `; raw's server CPU per operation, slowest window ÷ fastest: ${spread.map(([m, x]) => `${m} ${x.toFixed(2)}×`).join(", ")} (a ratio to raw is no surer than that)` : "");
  console.log(noise);

  // ---- files
  const doc = {
    date, machine, source, options: { ...opt, out: path.relative(ROOT, opt.out) }, idle_target: idleTarget,
    protocol: "client sends a 32-byte line + \\n; server answers You sent: '<line>'\\n",
    saturation, unavailable, noise, figures: roundAll(figures), ratios, listener, cold, workers, results,
    elapsed_s: +((Date.now() - t0) / 1000).toFixed(1),
  };
  fs.mkdirSync(opt.out, { recursive: true });
  fs.writeFileSync(path.join(opt.out, "latest.json"), JSON.stringify(doc, null, 2) + "\n");
  fs.writeFileSync(path.join(opt.out, "latest.md"), markdown(doc, header, rows, extra, machineLine, workersOut, listenerOut));
  fs.writeFileSync(path.join(opt.out, "ratios.svg"), svgChart(doc, machineLine));
  console.log(`\nwrote ${["latest.json", "latest.md", "ratios.svg"].map((f) => path.relative(process.cwd(), path.join(opt.out, f))).join(", ")} in ${doc.elapsed_s} s`);
}

/** The listener against Node's REPL: one row per input, ratios of the p50s; the raw talk server as the client's floor. */
function listenerTable(l) {
  const n = (rounds) => (rounds * l.window).toLocaleString("en-US");
  const title = `listener: REPL round trips at one connection, the same Node client against confab's listener, Node's REPL ` +
    `(repl.start on the socket) and, as the client's floor, the raw talk server (echo), interleaved in windows of ${l.window}: ` +
    `${n(l.rounds)} of each input on each after the first ${n(l.fresh_rounds)} on the fresh servers (shown apart); ` +
    `the ratio's range is window by window; ↓ lower is better`;
  const header = ["input", "listener p50 / p99 µs", "Node's REPL p50 / p99 µs", "listener ÷ Node's REPL (p50)", "raw echo p50 / p99 µs", "target"];
  const star = l.contended ? "*" : "";
  const pp = (x, st = star) => `${x.p50_us.toFixed(0)} / ${x.p99_us.toFixed(0)}${st}`;
  const ratio = (x) => `${x.ratio_p50.toFixed(2)}× (${x.round_ratios.min.toFixed(2)}–${x.round_ratios.max.toFixed(2)}×)`;
  const rows = [];
  for (const input of REPL_INPUTS) {
    const x = l.inputs?.[input.id];
    const label = input.id === "ts" ? `${input.label} ¹` : input.label;
    if (!l.ok || !x) { rows.push([label, short(l.error ?? "failed", 60), "", "", "", ""]); continue; }
    const floor = input.id === "js" && l.raw_talk?.p50_us !== undefined ? pp(l.raw_talk) : "";
    const target = `≤ 1.0× Node's REPL${markFor(x.ratio_p50 <= 1)}` + (input.id === "js" ? `; p50 < 500 µs${markFor(x.listener.p50_us < 500)}` : "");
    rows.push([label, pp(x.listener), pp(x.node_repl), ratio(x), floor, target]);
    rows.push([`  its first ${n(l.fresh_rounds)} on fresh servers`, pp(x.fresh.listener, ""), pp(x.fresh.node_repl, ""), ratio(x.fresh), "", ""]);
  }
  const note = `¹ Node's REPL does not strip types: it is sent the same text without \`: number\` (\`const xi = i; xi * 2\`). ` +
    `i differs in every round trip (the same i on both servers in a round). ` +
    (l.listener_nodelay ? "confab's listener socket has TCP_NODELAY set by the bench, as Node's has. " : "confab's listener socket has Nagle on (BENCH_LISTENER_NODELAY=0); Node's has TCP_NODELAY. ") +
    `Other processes used ${Number.isFinite(l.others_cores) ? `${l.others_cores} cores` : "-"} (median of the counted rounds); ${l.redone_rounds ?? 0} round(s) done again because they used more than ${CONTENDED}` +
    `${l.contended ? `; * = ${l.contended_rounds} round(s) still contended` : ""}.`;
  return { title, header, rows, note };
}

function short(s, n = 90) { s = String(s); return s.length > n ? `${s.slice(0, n - 1)}…` : s; }

function markFor(ok) { return ok === null || ok === undefined ? "" : ok ? " ✓" : " ✗"; }

function roundAll(figs) {
  const out = {};
  for (const [s, f] of Object.entries(figs)) {
    out[s] = {};
    for (const [k, v] of Object.entries(f)) out[s][k] = Number.isFinite(v) ? +v.toPrecision(5) : null;
  }
  return out;
}

function progressLine(mode, r) {
  if (!r.ok) return `FAILED: ${r.error}`;
  if (mode === "idle") return `${r.held} held, ${r.kb_per_conn.toFixed(2)} KB/conn (RSS ${(r.rss_before_kb / 1024).toFixed(0)} → ${(r.rss_after_kb / 1024).toFixed(0)} MB), set up in ${r.setup_s} s`;
  const head = mode === "connect" ? `${fmtRate(r.conns_per_s)} conn/s` : `${fmtRate(r.lines_per_s)} lines/s`;
  const lat = r.p50_us !== undefined ? `, p50 ${r.p50_us} µs p99 ${r.p99_us} µs` : mode === "pipe" ? `, ${r.mb_out_per_s.toFixed(1)}/${r.mb_in_per_s.toFixed(1)} MB/s` : "";
  const mach = Number.isFinite(r.others_cores) ? ` others ${fmtPct(r.others_cores)}` : "";
  return `${head}${lat}, server ${r.server_cpu_us_per_op.toFixed(2)} µs/op, CPU server ${fmtPct(r.server_cpu_share)} gen ${fmtPct(r.gen_cpu_share)}${mach}`;
}

function textTable(header, rows) {
  const width = (s) => [...String(s)].length;
  const w = header.map((h, i) => Math.max(width(h), ...rows.map((r) => width(r[i] ?? ""))));
  const line = (cells) => cells.map((c, i) => (i === 0 ? String(c ?? "") + " ".repeat(w[i] - width(c ?? "")) : " ".repeat(w[i] - width(c ?? "")) + String(c ?? ""))).join("  ");
  return [line(header), w.map((n) => "─".repeat(n)).join("  "), ...rows.map(line)].join("\n");
}

function markdown(doc, header, rows, extra, machineLine, workersOut, listenerOut) {
  const esc = (s) => String(s ?? "").replace(/\|/g, "\\|");
  const md = [];
  const src = doc.source;
  const at = src.commit ? ` at commit ${src.commit}${src.src_modified ? " (with uncommitted changes in src/)" : ""}` : "";
  const build = src.confab_build !== "dist" ? `, confab loaded from ${src.confab_build}` : "";
  md.push(`Measured ${doc.date.slice(0, 10)}${at}${build} on ${machineLine}; median of ${doc.options.reps} run(s) of ${doc.options.duration} s ` +
    `(after ${doc.options.warmup} s warm-up) with the C load generator on 127.0.0.1. Ratios are to raw \`node:net\` in the same run; ↑ higher is better, ↓ lower.`);
  md.push("");
  if (rows.length) {
    md.push(`| ${header.map(esc).join(" | ")} |`);
    md.push(`|${header.map((_, i) => (i === 0 ? "---" : "---:")).join("|")}|`);
    for (const r of rows) md.push(`| ${r.map(esc).join(" | ")} |`);
    md.push("");
  }
  if (listenerOut) {
    md.push(listenerOut.title, "");
    md.push(`| ${listenerOut.header.map(esc).join(" | ")} |`);
    md.push(`|${listenerOut.header.map((_, i) => (i === 0 ? "---" : "---:")).join("|")}|`);
    for (const r of listenerOut.rows) md.push(`| ${r.map(esc).join(" | ")} |`);
    md.push("", listenerOut.note, "");
  }
  if (extra.length) {
    md.push("| confab only | figure | target |");
    md.push("|---|---:|---:|");
    for (const r of extra) md.push(`| ${r.map(esc).join(" | ")} |`);
    md.push("");
  }
  if (workersOut) {
    md.push(`Workers: the talk server spread over N processes (\`startUpServer({ workers: N })\`, node:cluster), ${doc.workers.what}; ` +
      `1 is the one-process server; CPU is in cores, the server's summed over the primary and its workers.`, "");
    md.push(`| ${workersOut.header.map(esc).join(" | ")} |`);
    md.push(`|${workersOut.header.map((_, i) => (i === 0 ? "---" : "---:")).join("|")}|`);
    for (const r of workersOut.rows) md.push(`| ${r.map(esc).join(" | ")} |`);
    md.push("");
    if (doc.workers.note) md.push(doc.workers.note, "");
  }
  if (doc.saturation) md.push(`${doc.saturation.text[0].toUpperCase()}${doc.saturation.text.slice(1)}.`, "");
  md.push(`Noise: ${doc.noise}.`, "");
  for (const [s, why] of Object.entries(doc.unavailable)) md.push(`${s}: unavailable (${esc(why)}).`, "");
  return md.join("\n");
}

// SVG: horizontal bars of value / raw on a log2 axis centred on 1 (= raw); no dependency
function svgChart(doc, machineLine) {
  const others = doc.options.servers.filter((s) => s !== "raw");
  const metrics = METRICS.filter((m) => m.chart !== false && doc.options.modes.includes(m.mode));
  const colors = { readline: "#d08c2a", confab: "#2a7bd0", serve: "#6a3fb5" };
  const barH = 13, gap = 4, groupGap = 12;
  const left = 300, right = 80, plotW = 520, top = 78;
  const W = left + plotW + right;
  const groupH = others.length * (barH + gap) - gap;
  const H = top + metrics.length * (groupH + groupGap) + 46;
  const lo = -4, hi = 4; // log2 range: 1/16 .. 16
  const x = (ratio) => left + ((Math.min(hi, Math.max(lo, Math.log2(ratio))) - lo) / (hi - lo)) * plotW;
  const esc = (s) => String(s).replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
  const o = [];
  o.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="system-ui, -apple-system, Segoe UI, Helvetica, Arial, sans-serif" font-size="12">`);
  o.push(`<rect width="${W}" height="${H}" fill="#fff"/>`);
  o.push(`<text x="12" y="22" font-size="15" font-weight="600">confab bench: each server's figure ÷ raw node:net's, same run</text>`);
  o.push(`<text x="12" y="40" fill="#555">${esc(`${doc.date.slice(0, 10)}, ${machineLine}; median of ${doc.options.reps} run(s); log scale, 1 = raw`)}</text>`);
  let lx = 12;
  for (const s of others) {
    o.push(`<rect x="${lx}" y="50" width="12" height="12" fill="${colors[s] ?? "#888"}"/><text x="${lx + 17}" y="60">${esc(s === "confab" ? "confab talk server" : s === "serve" ? "confab serve --function" : `node:${s}`)}</text>`);
    lx += s === "serve" ? 180 : 150;
  }
  if (others.includes("confab") || others.includes("serve")) o.push(`<line x1="${lx}" y1="50" x2="${lx}" y2="62" stroke="#c00" stroke-width="2" stroke-dasharray="3,2"/><text x="${lx + 6}" y="60">confab target</text>`);
  const plotBottom = H - 40;
  for (let k = lo; k <= hi; k++) {
    const gx = x(2 ** k);
    o.push(`<line x1="${gx}" y1="${top - 6}" x2="${gx}" y2="${plotBottom}" stroke="${k === 0 ? "#333" : "#e3e3e3"}" stroke-width="${k === 0 ? 1.5 : 1}"/>`);
    o.push(`<text x="${gx}" y="${plotBottom + 15}" text-anchor="middle" fill="#555">${k >= 0 ? `${2 ** k}×` : `1/${2 ** -k}`}</text>`);
  }
  o.push(`<text x="${x(1)}" y="${plotBottom + 30}" text-anchor="middle" fill="#333">raw node:net = 1</text>`);
  let y = top;
  for (const m of metrics) {
    o.push(`<text x="${left - 10}" y="${y + groupH / 2 + 4}" text-anchor="end">${esc(m.label)} <tspan fill="#777">${m.better === "higher" ? "(↑ better)" : "(↓ better)"}</tspan></text>`);
    others.forEach((s, i) => {
      const by = y + i * (barH + gap);
      const r = doc.ratios[s]?.[m.id];
      if (!Number.isFinite(r)) {
        const why = doc.unavailable[s] ? "unavailable" : "no figure";
        o.push(`<text x="${x(1) + 6}" y="${by + barH - 2}" fill="#999" font-style="italic">${s}: ${why}</text>`);
        return;
      }
      const x0 = x(1), x1 = x(r);
      const clipped = Math.log2(r) > hi || Math.log2(r) < lo;
      o.push(`<rect x="${Math.min(x0, x1)}" y="${by}" width="${Math.max(1, Math.abs(x1 - x0))}" height="${barH}" fill="${colors[s] ?? "#888"}"><title>${esc(`${s}: ${m.label} ${r}× raw`)}</title></rect>`);
      // keep the label clear of confab's target marker
      const tgt = (s === "confab" || s === "serve") && m.target ? x("min" in m.target ? m.target.min : m.target.max) : null;
      const tx = r >= 1 ? Math.max(x1, tgt !== null && tgt >= x0 - 1 ? tgt : x1) + 4 : Math.min(x1, tgt !== null && tgt <= x0 + 1 ? tgt : x1) - 4;
      o.push(`<text x="${tx}" y="${by + barH - 2}" text-anchor="${r >= 1 ? "start" : "end"}" fill="#222">${clipped ? "» " : ""}${r < 0.1 ? r.toFixed(3) : r.toFixed(2)}×</text>`);
      if ((s === "confab" || s === "serve") && m.target) {
        const t = "min" in m.target ? m.target.min : m.target.max;
        o.push(`<line x1="${x(t)}" y1="${by - 2}" x2="${x(t)}" y2="${by + barH + 2}" stroke="#c00" stroke-width="2" stroke-dasharray="3,2"><title>target ${targetText(m.target)}</title></line>`);
      }
    });
    y += groupH + groupGap;
  }
  o.push(`</svg>`);
  return o.join("\n") + "\n";
}

await main();
