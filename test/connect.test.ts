// `confab connect` from a pipe, end to end: the real command (run from source) against a
// listener server started in this process.
import assert from "node:assert/strict";
import { spawn, type ChildProcess, type ChildProcessByStdio } from "node:child_process";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import net from "node:net";
import { hostname, tmpdir, userInfo } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import type { Readable, Writable } from "node:stream";
import { findProcessFromName, processKill, serverTerminate, startUpServer, type ServerProcess } from "../src/index.js";
import { childEnv, confabArgv, root, runConfab } from "./cli.js";
import { eventually } from "./support.js";

let server: ServerProcess;
let dir: string;
const children: ChildProcess[] = [];
const plainServers: net.Server[] = [];

before(async () => {
  server = await startUpServer({ service: 0, context: { inventory: { widgets: 3 } } });
  dir = await mkdtemp(join(tmpdir(), "confab-connect-"));
});

after(async () => {
  for (const child of children) if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
  for (const s of plainServers) s.close();
  serverTerminate(server);
  await rm(dir, { recursive: true, force: true });
});

/** `confab connect ...args` with stdin left open: the test writes to it and ends it. */
function spawnConnect(args: string[]): {
  child: ChildProcessByStdio<Writable, Readable, Readable>;
  stdout: () => string;
  stderr: () => string;
  exited: (timeout?: number) => Promise<number | null>;
} {
  const [cmd, ...rest] = confabArgv(["connect", ...args]) as [string, ...string[]];
  const child = spawn(cmd, rest, { cwd: root, stdio: ["pipe", "pipe", "pipe"], env: childEnv() });
  children.push(child);
  let stdout = "";
  let stderr = "";
  child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
  child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
  const exit = new Promise<number | null>((resolve) => child.once("close", (code) => resolve(code)));
  return {
    child,
    stdout: () => stdout,
    stderr: () => stderr,
    exited: (timeout = 10_000) =>
      Promise.race([
        exit,
        new Promise<never>((_, reject) => {
          const timer = setTimeout(
            () =>
              reject(
                new Error(
                  `confab connect still running after ${timeout} ms; stdout ${JSON.stringify(stdout)}, stderr ${JSON.stringify(stderr)}`,
                ),
              ),
            timeout,
          );
          void exit.then(() => clearTimeout(timer));
        }),
      ]),
  };
}

/** A port nothing listens on (the OS just gave it out and it was closed again). */
async function closedPort(): Promise<number> {
  const s = net.createServer();
  await new Promise<void>((resolve) => s.listen(0, "127.0.0.1", resolve));
  const { port } = s.address() as net.AddressInfo;
  await new Promise<void>((resolve) => s.close(() => resolve()));
  return port;
}

/** A plain TCP server (not a listener server) that greets every client with `reply` and hangs up. */
async function refusingServer(reply: string): Promise<number> {
  const s = net.createServer((socket) => {
    socket.on("error", () => undefined);
    socket.resume(); // read what the client sends, so closing never resets the connection
    socket.end(reply);
  });
  plainServers.push(s);
  await new Promise<void>((resolve) => s.listen(0, "127.0.0.1", resolve));
  return (s.address() as net.AddressInfo).port;
}

test("echo '1 + 2' | confab connect PORT prints exactly 3 and exits 0", async () => {
  const { code, stdout, stderr } = await runConfab(["connect", String(server.port)], "1 + 2\n");
  assert.equal(stderr, "");
  assert.equal(stdout, "3\n");
  assert.equal(code, 0);
});

test("piped inputs print their values in order, awaits among them, without prompts", async () => {
  const input = [
    "await new Promise((r) => setTimeout(() => r('slow'), 100))",
    "'fast'",
    "const n: number = await Promise.resolve(20)",
    "function twice(x: number) {",
    "  return x * 2",
    "}",
    "twice(n) + inventory.widgets",
    "throw new Error('piped failure')",
    "_",
  ].join("\n");
  const { code, stdout, stderr } = await runConfab(["connect", String(server.port)], `${input}\n`);
  assert.equal(stderr, "");
  assert.equal(code, 0);
  assert.doesNotMatch(stdout, /CL-USER/, "a pipe gets no prompts");
  const lines = stdout.split("\n");
  assert.deepEqual(lines.slice(0, 5), ["'slow'", "'fast'", "undefined", "undefined", "43"]);
  assert.match(lines[5] ?? "", /^Error: piped failure/);
  assert.equal(lines.at(-2), "43", "the listener carried on after the error");
});

test("a final input without a newline is evaluated too", async () => {
  const { code, stdout } = await runConfab(["connect", String(server.port)], "6 * 7");
  assert.equal(stdout, "42\n");
  assert.equal(code, 0);
});

test("--name names the listener's process; Lisp escapes survive the trip", async () => {
  const name = 'pipe "quoted" \\ name';
  const { code, stdout, stderr } = await runConfab(
    ["connect", String(server.port), "--name", name],
    "mp.getCurrentProcess().name\nmp.listAllProcesses().filter((p) => p.name === mp.getCurrentProcess().name).length\n",
  );
  assert.equal(stderr, "");
  assert.equal(code, 0);
  assert.equal(stdout, `'pipe "quoted" \\\\ name'\n1\n`);
});

test("while a piped session is open its process is in the server's process list", async () => {
  const session = spawnConnect([String(server.port), "--name", "open pipe session"]);
  session.child.stdin.write("'hello'\n");
  await eventually(() => session.stdout() === "'hello'\n", 10_000, "the first value");
  const p = findProcessFromName("open pipe session");
  assert.ok(p, "the server lists the listener by the client's --name");
  assert.equal(p.state, "running");
  session.child.stdin.end("'bye'\n");
  assert.equal(await session.exited(), 0);
  assert.equal(session.stdout(), "'hello'\n'bye'\n");
  await eventually(() => p.state !== "running", 5000, "the listener to end");
  assert.equal(p.state, "finished", "end of input ends the listener's process");
});

test("without --name the process is named user@host", async () => {
  let user = "user";
  try {
    user = userInfo().username;
  } catch {
    // no passwd entry: the client falls back to the same generic name
  }
  const { code, stdout } = await runConfab(["connect", String(server.port)], "mp.getCurrentProcess().name\n");
  assert.equal(code, 0);
  assert.equal(stdout, `'${user}@${hostname()}'\n`);
});

test("the HOST SERVICE form connects to that host", async () => {
  const { code, stdout, stderr } = await runConfab(["connect", "127.0.0.1", String(server.port)], "'via host'\n");
  assert.equal(stderr, "");
  assert.equal(stdout, "'via host'\n");
  assert.equal(code, 0);
});

test("a service name is looked up in the services database", async () => {
  const services = join(dir, "services");
  await writeFile(services, `# test services\nconfab-e2e-listener   ${server.port}/tcp   e2e-alias\n`);
  const env = childEnv({ CONFAB_SERVICES_FILE: services });
  const byName = await runConfab(["connect", "confab-e2e-listener"], "'by name'\n", { env });
  assert.equal(byName.stderr, "");
  assert.equal(byName.stdout, "'by name'\n");
  assert.equal(byName.code, 0);
  const byAlias = await runConfab(["connect", "127.0.0.1", "e2e-alias"], "'by alias'\n", { env });
  assert.equal(byAlias.stdout, "'by alias'\n");
  assert.equal(byAlias.code, 0);
});

test("a refused connection exits non-zero with a message naming host and port", async () => {
  const port = await closedPort();
  const { code, stdout, stderr } = await runConfab(["connect", String(port)], "1\n");
  assert.notEqual(code, 0);
  assert.equal(stdout, "");
  assert.match(stderr, new RegExp(`^confab: cannot connect to 127\\.0\\.0\\.1:${port}\\b`));
  assert.match(stderr, /ECONNREFUSED/);
  assert.equal(stderr.split("\n").length, 2, "one line, no stack trace");
});

test("confab connect to a Unix socket path over the OS's 107 bytes, or in a directory that does not exist, says so in one line", async () => {
  const long = join(dir, "p".repeat(120 - dir.length));
  const tooLong = await runConfab(["connect", long], "1\n");
  assert.equal(tooLong.code, 1);
  if (process.platform === "linux") {
    assert.equal(
      tooLong.stderr,
      `confab: the Unix socket path ${long} is 121 bytes; linux takes at most 107 (and would cut it short): choose a shorter path\n`,
    );
  }
  const missing = await runConfab(["connect", "unix:/no/such/dir/s.sock"], "1\n");
  assert.equal(missing.code, 1);
  assert.equal(
    missing.stderr,
    "confab: cannot connect to /no/such/dir/s.sock: the directory /no/such/dir does not exist (ENOENT)\n",
  );
});

test("a missing or extra argument fails with the usage line", async () => {
  for (const args of [["connect"], ["connect", "127.0.0.1", "1", "extra"]]) {
    const { code, stdout, stderr } = await runConfab(args);
    assert.notEqual(code, 0);
    assert.equal(stdout, "");
    assert.equal(stderr, "confab: usage: confab connect [HOST] SERVICE [--name NAME]\n");
  }
});

test("a server that answers the name line with an error: the client prints it on stderr and exits 1", async () => {
  const port = await refusingServer("Error: nope\n");
  const { code, stdout, stderr } = await runConfab(["connect", String(port)], "1 + 2\n");
  assert.equal(stdout, "");
  assert.equal(stderr, "Error: nope\n");
  assert.equal(code, 1);
});

test("the refusal ends the client even while its input is still open", async () => {
  const port = await refusingServer("Error: go away\n");
  const session = spawnConnect([String(port)]);
  // stdin stays open: the client must notice the server hung up, not wait for end of input.
  assert.equal(await session.exited(), 1);
  assert.equal(session.stderr(), "Error: go away\n");
  session.child.stdin.destroy();
});

test("the client ends when its listener is killed, even while its input is still open", async () => {
  const session = spawnConnect([String(server.port), "--name", "doomed pipe session"]);
  session.child.stdin.write("'alive'\n");
  await eventually(() => session.stdout() === "'alive'\n", 10_000, "the first value");
  const p = findProcessFromName("doomed pipe session");
  assert.ok(p);
  processKill(p);
  assert.equal(await session.exited(), 0);
  assert.match(session.stdout(), /^'alive'\nError: session killed \(process \d+ "doomed pipe session" was killed\)\n$/);
  session.child.stdin.destroy();
});

test("a server that floods the client before any greeting is refused once it passes 64 KiB", async () => {
  let sent = 0;
  const s = net.createServer((socket) => {
    socket.on("error", () => undefined);
    socket.resume();
    const chunk = "x".repeat(16 * 1024); // never a newline, never a greeting
    const pour = (): void => {
      while (!socket.destroyed && sent < 256 * 1024 * 1024 && socket.write(chunk)) sent += chunk.length;
      if (!socket.destroyed && sent < 256 * 1024 * 1024) socket.once("drain", pour);
    };
    pour();
  });
  plainServers.push(s);
  await new Promise<void>((resolve) => s.listen(0, "127.0.0.1", resolve));
  const session = spawnConnect([String((s.address() as net.AddressInfo).port)]);
  assert.equal(await session.exited(), 2);
  assert.match(session.stderr(), /sent over 65536 bytes without a listener's greeting/);
  assert.ok(sent < 256 * 1024 * 1024, "the client hung up long before the flood was over");
  session.child.stdin.destroy();
});

test("a piped session is ended only once every input has been answered", async () => {
  const { code, stdout } = await runConfab(
    ["connect", String(server.port), "--name", "patient pipe"],
    "await new Promise((r) => setTimeout(() => r('after a while'), 300))\n",
  );
  assert.equal(stdout, "'after a while'\n");
  assert.equal(code, 0);
});
