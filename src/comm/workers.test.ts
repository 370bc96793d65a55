// startUpServer({ workers }) and `confab serve --workers`: real forks on loopback.
//
// cluster re-runs the program's entry script in each worker, so the servers under test are
// child programs (test/fixtures/workers-server.ts, or the confab CLI), never this test file.
// Every child is tracked and SIGKILLed on the way out, as is any worker left behind.
import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import { readFileSync } from "node:fs";
import net from "node:net";
import { after, test } from "node:test";
import { fileURLToPath } from "node:url";
import { childEnv, root, runConfab, startConfab } from "../../test/cli.js";
import { LineClient, portOpen } from "../../test/support.js";
import { Waker } from "../../test/waker.js";
import { ClusterServerProcess } from "./workers.js";
import { ServerProcess, startUpServer } from "../index.js";
import { processKill } from "../mp/process.js";

const FIXTURE = fileURLToPath(new URL("../../test/fixtures/workers-server.ts", import.meta.url));
const PID_REPLY = "test/fixtures/pid-reply.ts#replyPid";

const children = new Set<ChildProcess>();
const workerPids = new Set<number>();

after(() => {
  for (const child of children) if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
  // A worker outlives its primary only if it ignores the closed IPC channel; end it, but only
  // if the pid still belongs to one of our programs (pids are reused).
  for (const pid of workerPids) if (isOurs(pid)) kill(pid, "SIGKILL");
});

function isOurs(pid: number): boolean {
  try {
    // A thread of another process answers kill(tid, 0) and has a /proc entry too (this
    // machine's pid numbers wrap at 32768): only a thread group leader is the process itself.
    const status = readFileSync(`/proc/${String(pid)}/status`, "utf8");
    if (!new RegExp(`^Tgid:\\s+${String(pid)}$`, "m").test(status)) return false;
    const cmdline = readFileSync(`/proc/${String(pid)}/cmdline`, "utf8");
    return cmdline.includes("workers-server") || cmdline.includes("cli/main.ts");
  } catch {
    return false;
  }
}

function kill(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(pid, signal);
  } catch {
    // Already gone.
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return isOurs(pid);
  } catch {
    return false;
  }
}

/** A running fixture program: its stdout as lines, commands on its stdin. */
interface Fixture {
  readonly child: ChildProcess;
  readonly exited: Promise<number | null>;
  /** Waits for the first line (from the start of the output) matching `pattern` that no earlier call returned. */
  line(pattern: RegExp, timeout?: number): Promise<RegExpExecArray>;
  send(command: string): void;
  output(): string;
}

function startFixture(env: Record<string, string> = {}): Fixture {
  const child = spawn(process.execPath, ["--import", "tsx", FIXTURE], {
    cwd: root,
    env: childEnv(env),
    stdio: ["pipe", "pipe", "pipe"],
  });
  children.add(child);
  const lines: string[] = [];
  let partial = "";
  let errors = "";
  const waker = new Waker();
  let taken = 0;
  child.stdout.setEncoding("utf8").on("data", (text: string) => {
    partial += text;
    const parts = partial.split("\n");
    partial = parts.pop() ?? "";
    lines.push(...parts);
    waker.wake();
  });
  child.stderr.setEncoding("utf8").on("data", (text: string) => {
    errors = (errors + text).slice(-4000);
  });
  const exited = new Promise<number | null>((resolve) => {
    child.once("exit", (code) => {
      waker.wake();
      resolve(code);
    });
  });
  return {
    child,
    exited,
    async line(pattern, timeout = 15_000) {
      const deadline = Date.now() + timeout;
      for (;;) {
        for (let i = taken; i < lines.length; i++) {
          const match = pattern.exec(lines[i] ?? "");
          if (match) {
            taken = i + 1;
            return match;
          }
        }
        const dead = child.exitCode !== null || child.signalCode !== null;
        if (dead || Date.now() > deadline) {
          throw new Error(
            `no line matching ${String(pattern)} ${dead ? "before the fixture exited" : `within ${String(timeout)} ms`}; stdout: ${lines.join(" / ")}; stderr: ${errors}`,
          );
        }
        await waker.sleep(Math.min(100, deadline - Date.now()));
      }
    },
    send(command) {
      child.stdin.write(`${command}\n`);
    },
    output: () => `${lines.join("\n")}\n${errors}`,
  };
}

function parsePids(text: string): number[] {
  const pids = text.split(",").filter(Boolean).map(Number);
  for (const pid of pids) workerPids.add(pid);
  return pids;
}

/** Opens a connection, asks which process serves it, closes. */
async function servedBy(port: number, line = "pid"): Promise<number> {
  const client = await LineClient.connect(port);
  try {
    client.send(`${line}\n`);
    const answer = await client.line(5000);
    assert.ok(answer !== null && /^\d+$/.test(answer), `a pid, got ${String(answer)}`);
    return Number(answer);
  } finally {
    client.destroy();
  }
}

/** Whether this process can bind 127.0.0.1:port now. */
function canBind(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = net.createServer();
    server.once("error", () => {
      resolve(false);
    });
    server.listen({ port, host: "127.0.0.1", exclusive: true }, () => {
      server.close(() => {
        resolve(true);
      });
    });
  });
}

function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    promise.finally(() => {
      clearTimeout(timer);
    }),
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        reject(new Error(`${what} did not happen within ${String(ms)} ms`));
      }, ms);
    }),
  ]);
}

test("workers: 2 serves one port (asked for as 0) from two worker processes, never the primary", async () => {
  const fixture = startFixture({ FIXTURE_WORKERS: "2" });
  const [, portText = "", pidsText = ""] = await fixture.line(/^READY (\d+) ([\d,]+)$/);
  const port = Number(portText);
  const pids = parsePids(pidsText);
  assert.equal(pids.length, 2);
  assert.ok(!pids.includes(fixture.child.pid ?? -1), "the workers are other processes than the primary");

  const seen = new Set<number>();
  for (let i = 0; i < 6; i++) seen.add(await servedBy(port));
  assert.ok(seen.size >= 2, `served by more than one worker: ${[...seen].join(", ")}`);
  for (const pid of seen) assert.ok(pids.includes(pid), `${String(pid)} is one of the workers ${pids.join(", ")}`);

  // The workers report their counters to the primary about once a second.
  let accepted = 0;
  for (const deadline = Date.now() + 5000; accepted < 6 && Date.now() < deadline;) {
    fixture.send("counters");
    const [, json = "{}"] = await fixture.line(/^COUNTERS (.*)$/);
    accepted = (JSON.parse(json) as { accepted?: number }).accepted ?? 0;
    if (accepted < 6) await new Promise((resolve) => setTimeout(resolve, 200));
  }
  assert.equal(accepted, 6, "the primary's counters add up the workers'");

  fixture.send("kill");
  await fixture.line(/^STOPPED$/);
  for (const pid of pids) assert.equal(alive(pid), false, `worker ${String(pid)} has exited`);
  assert.equal(await portOpen(port), false);
  assert.equal(await canBind(port), true, "the port is free once stopped resolves");
  assert.equal(
    await withTimeout(fixture.exited, 5000, "the primary's exit"),
    0,
    "nothing keeps the primary alive after a kill",
  );
});

test("a worker that dies is reported and replaced, and the port keeps being served", async () => {
  const fixture = startFixture({ FIXTURE_WORKERS: "2" });
  const [, portText = "", pidsText = ""] = await fixture.line(/^READY (\d+) ([\d,]+)$/);
  const port = Number(portText);
  const pids = parsePids(pidsText);

  const victim = await servedBy(port, "crash").catch(() => undefined); // the worker exits instead of answering
  assert.equal(victim, undefined);
  const [report = ""] = await fixture.line(/^REPORT .*worker \d+ \(pid \d+\).* \| ERR_WORKER_EXITED$/);
  const dead = Number(/\(pid (\d+)\)/.exec(report)?.[1]);
  assert.ok(pids.includes(dead), `the report names the worker that died (${report})`);

  let now: number[] = [];
  let restarts = 0;
  const deadline = Date.now() + 10_000;
  while (Date.now() < deadline) {
    fixture.send("pids");
    const [, listText = "", restartsText = "0"] = await fixture.line(/^PIDS ([\d,]*) (\d+)$/);
    now = parsePids(listText);
    restarts = Number(restartsText);
    if (now.length === 2 && !now.includes(dead)) break;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  assert.equal(restarts, 1);
  assert.equal(now.length, 2, `two workers listen again: ${now.join(", ")}`);
  assert.ok(!now.includes(dead));
  const replacement = now.find((pid) => !pids.includes(pid));
  assert.ok(replacement !== undefined, "one of them is new");

  const seen = new Set<number>();
  for (let i = 0; i < 6 && !seen.has(replacement); i++) seen.add(await servedBy(port));
  assert.ok(seen.has(replacement), `the replacement serves the same port (served by ${[...seen].join(", ")})`);

  fixture.send("kill");
  await fixture.line(/^STOPPED$/);
  assert.equal(await withTimeout(fixture.exited, 5000, "the primary's exit"), 0);
  for (const pid of now) assert.equal(alive(pid), false);
});

test("a port in use fails the start with EADDRINUSE and leaves no worker behind", async () => {
  const holder = net.createServer();
  await new Promise<void>((resolve) => holder.listen({ port: 0, host: "127.0.0.1" }, resolve));
  const port = (holder.address() as net.AddressInfo).port;
  try {
    const fixture = startFixture({ FIXTURE_WORKERS: "2", FIXTURE_PORT: String(port) });
    const [, code, left, message = ""] = await fixture.line(/^FAILED (\S+) (\d+) (.*)$/);
    assert.equal(code, "EADDRINUSE");
    assert.equal(left, "0", "every worker has exited when startUpServer rejects");
    assert.match(message, new RegExp(`127\\.0\\.0\\.1:${String(port)} is already in use`));
    assert.equal(await withTimeout(fixture.exited, 5000, "the primary's exit"), 1);
  } finally {
    holder.close();
  }
});

test("workers: the listener server, and counts that are not whole numbers of processes, are refused before anything forks", async () => {
  await assert.rejects(startUpServer({ service: 0, workers: 2 }), (error: Error & { code?: string }) => {
    assert.equal(error.code, "ERR_INVALID_ARGUMENT");
    assert.match(error.message, /listener server runs in one process and cannot have workers/);
    return true;
  });
  await assert.rejects(
    startUpServer({ service: "unix:/tmp/confab-workers.sock", workers: 2, function: () => undefined }),
    {
      code: "ERR_INVALID_ARGUMENT",
      message: /Unix socket service .* cannot have workers/,
    },
  );
  for (const workers of [0, -1, 1.5, Number.NaN, 100_000]) {
    await assert.rejects(startUpServer({ service: 0, workers, function: () => undefined }), {
      code: "ERR_INVALID_ARGUMENT",
      message: /workers must be a whole number/,
    });
  }
});

test("workers: 1 is a plain one-process server, as without the option", async () => {
  const server = await startUpServer({
    service: 0,
    workers: 1,
    function: (socket: net.Socket) => socket.end(`${String(process.pid)}\n`),
  });
  try {
    assert.ok(server instanceof ServerProcess);
    assert.ok(!(server instanceof ClusterServerProcess));
    assert.equal(await servedBy(server.port), process.pid);
  } finally {
    processKill(server);
  }
});

test("confab serve --workers 2 --function serves from two workers and exits 0 on SIGTERM with every worker gone", async () => {
  const { child, match } = await startConfab(
    ["serve", "--workers", "2", "--service", "0", "--function", PID_REPLY, "--announce", "--drain-timeout", "500"],
    /^0 server: listening on 127\.0\.0\.1:(\d+) \(2 workers\)\n/,
  );
  children.add(child);
  const port = Number(match[1]);
  const seen = new Set<number>();
  for (let i = 0; i < 6; i++) seen.add(await servedBy(port));
  for (const pid of seen) workerPids.add(pid);
  assert.ok(seen.size >= 2, `served by more than one worker: ${[...seen].join(", ")}`);
  assert.ok(!seen.has(child.pid ?? -1), "the primary serves no connection");

  const exited = new Promise<[number | null, string | null]>((resolve) =>
    child.once("exit", (code, signal) => resolve([code, signal])),
  );
  child.kill("SIGTERM");
  assert.deepEqual(await withTimeout(exited, 10_000, "confab serve's exit"), [0, null]);
  for (const pid of seen) assert.equal(alive(pid), false, `worker ${String(pid)} has exited`);
  assert.equal(await portOpen(port), false);
});

test("confab serve --workers without --function says why it refuses", async () => {
  const { code, stderr } = await runConfab(["serve", "--workers", "2", "--service", "0"]);
  assert.equal(code, 1);
  assert.match(stderr, /^confab: the listener server runs in one process and cannot have workers/);
  const bad = await runConfab(["serve", "--workers", "two", "--service", "0", "--function", PID_REPLY]);
  assert.equal(bad.code, 1);
  assert.match(bad.stderr, /--workers must be/);
});

test("a cluster server's public surface is its documented API: its body and pool are not reachable", () => {
  const names = Object.getOwnPropertyNames(ClusterServerProcess.prototype).sort();
  assert.deepEqual(names, ["constructor", "counters", "restarts", "terminate", "workers"]);
  assert.equal(Object.getOwnPropertySymbols(ClusterServerProcess.prototype).length, 1, "the ProcessResource kill");
  assert.deepEqual(Object.getOwnPropertyNames(ServerProcess.prototype), ["constructor"]);
});
