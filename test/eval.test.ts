// `confab eval` end to end: the real command (run from source) against real `confab serve`
// processes, plain and --json, standard input, every exit status, and --each-address against two
// servers on two loopback addresses behind one name.
import assert from "node:assert/strict";
import type { ChildProcess } from "node:child_process";
import { lookup } from "node:dns/promises";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import net from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { childEnv, runConfab, startConfab } from "./cli.js";
import { makeTestCertificates } from "./tls-certs.js";

const children: ChildProcess[] = [];
const silent: net.Server[] = [];
let port: number;
let dir: string;

/** `confab serve ...args`, started and announced; its port. */
async function serve(args: string[]): Promise<number> {
  const { child, match } = await startConfab(["serve", "--announce", ...args], /listening on [\d.]+:(\d+)/);
  children.push(child);
  return Number(match[1]);
}

/** A TCP server that accepts and never says a word: a listener that will not greet. */
async function silentServer(host: string, at = 0): Promise<number> {
  const s = net.createServer((socket) => {
    socket.on("error", () => undefined);
    socket.resume();
  });
  silent.push(s);
  await new Promise<void>((resolve) => s.listen(at, host, resolve));
  return (s.address() as net.AddressInfo).port;
}

before(async () => {
  dir = await mkdtemp(join(tmpdir(), "confab-eval-"));
  port = await serve(["--service", "0"]);
});

after(async () => {
  for (const child of children) child.kill("SIGKILL");
  for (const s of silent) s.close();
  await rm(dir, { recursive: true, force: true });
});

test("confab eval prints each input's output then its value, in order, in one session; exit 0", async () => {
  const { code, stdout, stderr } = await runConfab([
    "eval",
    String(port),
    "console.log('hello'); 1 + 2",
    "const x: number = await Promise.resolve(40)",
    "x + 2",
    "({ a: [1, { b: 'c' }] })",
  ]);
  assert.equal(stderr, "");
  assert.equal(stdout, "hello\n3\nundefined\n42\n{ a: [ 1, { b: 'c' } ] }\n");
  assert.equal(code, 0);
});

test("confab eval HOST SERVICE: a first word that is no service is the host", async () => {
  const { code, stdout } = await runConfab(["eval", "localhost", String(port), "'via localhost'"]);
  assert.equal(stdout, "'via localhost'\n");
  assert.equal(code, 0);
});

test("confab eval --json prints one object per input: input, value or error, threw, status, output, ms", async () => {
  const { code, stdout, stderr } = await runConfab([
    "eval",
    String(port),
    "--json",
    "console.log('a'); console.log('b'); 6 * 7",
    "throw new RangeError('too far')",
  ]);
  assert.equal(stderr, "");
  assert.equal(code, 1);
  const [first, second, ...rest] = stdout
    .trim()
    .split("\n")
    .map((line) => JSON.parse(line) as Record<string, unknown>);
  assert.deepEqual(rest, []);
  assert.ok(first && second);
  assert.equal(typeof first.ms, "number");
  assert.equal(typeof second.ms, "number");
  delete first.ms;
  assert.deepEqual(first, {
    input: "console.log('a'); console.log('b'); 6 * 7",
    value: "42",
    threw: false,
    status: "value",
    output: "a\nb\n",
  });
  assert.equal(second.input, "throw new RangeError('too far')");
  assert.match(String(second.error), /^RangeError: too far\n {4}at /);
  assert.deepEqual([second.threw, second.status, second.output, "value" in second], [true, "error", "", false]);
});

test("confab eval - reads one input from all of standard input, several lines included", async () => {
  const { code, stdout } = await runConfab(
    ["eval", String(port), "const base = 10", "-", "total * 2"],
    "function add(a: number, b: number) {\n  return a + b\n}\nconst total = add(base, 11)\ntotal\n",
  );
  assert.equal(stdout, "undefined\n21\n42\n");
  assert.equal(code, 0);
});

test("an input that throws ends the run with exit 1, its error on stderr; later inputs are not run", async () => {
  const { code, stdout, stderr } = await runConfab([
    "eval",
    String(port),
    "'first'",
    "throw new Error('stop here')",
    "console.log('never run')",
  ]);
  assert.equal(stdout, "'first'\n");
  assert.match(stderr, /^Error: stop here\n {4}at /);
  assert.doesNotMatch(stdout + stderr, /never run/);
  assert.equal(code, 1);
});

test("a port nobody listens on: exit 2, and stderr says the connection was refused", async () => {
  const closed = await silentServer("127.0.0.1");
  silent.pop()?.close();
  await new Promise((resolve) => setTimeout(resolve, 0));
  const { code, stdout, stderr } = await runConfab(["eval", String(closed), "1"]);
  assert.equal(stdout, "");
  assert.equal(stderr, `confab: cannot connect to 127.0.0.1:${closed}: connect ECONNREFUSED 127.0.0.1:${closed}\n`);
  assert.equal(code, 2);
});

test("a Unix socket that is not there: exit 2, saying why", async () => {
  const { code, stderr } = await runConfab(["eval", join(dir, "no-such.sock"), "1"]);
  assert.match(stderr, /^confab: cannot connect to .*no-such\.sock: .*ENOENT/);
  assert.equal(code, 2);
});

test("a server that never greets: exit 2 within the connect timeout, not a hang", async () => {
  const mute = await silentServer("127.0.0.1");
  const started = Date.now();
  const { code, stderr } = await runConfab(["eval", String(mute), "1", "--connect-timeout", "300", "--json"]);
  assert.equal(code, 2);
  assert.match(stderr, /no listener greeting within 300 ms/);
  assert.ok(Date.now() - started < 10_000, "bounded by the timeout (and the command's start)");
});

test("a wrong token is exit 2 with the server's refusal; the right one gets a session", async () => {
  const tokenFile = join(dir, "token");
  const token = "eval-test-token-0123456789";
  await writeFile(tokenFile, `${token}\n`, { mode: 0o600 });
  const guarded = await serve(["--service", "0", "--token-file", tokenFile]);
  const wrong = await runConfab(["eval", String(guarded), "1"], "", {
    env: childEnv({ CONFAB_TOKEN: "not-the-token-at-all-000" }),
  });
  assert.equal(wrong.stdout, "");
  assert.equal(
    wrong.stderr,
    `confab: 127.0.0.1:${guarded} refused the session: not authorized (the first line must be: token SECRET)\n`,
  );
  assert.equal(wrong.code, 2);
  const right = await runConfab(["eval", String(guarded), "'let in'", "--token-file", tokenFile]);
  assert.equal(right.stdout, "'let in'\n");
  assert.equal(right.code, 0);
});

test("confab eval over a Unix socket, and over TLS with a client certificate (none: exit 2)", async () => {
  const socket = join(dir, "listener.sock");
  await startConfab(["serve", "--service", `unix:${socket}`], /listening on/).then(({ child }) => children.push(child));
  const local = await runConfab(["eval", `unix:${socket}`, "'by socket'"]);
  assert.deepEqual([local.code, local.stdout], [0, "'by socket'\n"]);

  const certs = await makeTestCertificates(join(dir, "certs"));
  const secure = await serve([
    "--service",
    "0",
    "--tls-cert",
    certs.server.certFile,
    "--tls-key",
    certs.server.keyFile,
    "--tls-ca",
    certs.ca.certFile,
  ]);
  const client = ["--ca", certs.ca.certFile, "--cert", certs.client.certFile, "--key", certs.client.keyFile];
  const good = await runConfab(["eval", "localhost", String(secure), ...client, "'over TLS'"]);
  assert.deepEqual([good.code, good.stdout, good.stderr], [0, "'over TLS'\n", ""]);
  const refused = await runConfab(["eval", String(secure), "--ca", certs.ca.certFile, "'no certificate'"]);
  assert.equal(refused.code, 2);
  assert.equal(refused.stdout, "");
  assert.match(refused.stderr, /^confab: /);
});

// --each-address: a name with two loopback addresses. CI's .ci/run adds them to /etc/hosts.
const FLEET = "confab-fleet.test";
const FLEET_ADDRESSES = ["127.0.0.2", "127.0.0.3"];
const fleetSkip = await (async (): Promise<string | false> => {
  try {
    const found = (await lookup(FLEET, { all: true })).map((a) => a.address).sort();
    if (FLEET_ADDRESSES.every((a) => found.includes(a))) return false;
    return `${FLEET} gives ${found.join(", ")}`;
  } catch (error) {
    return `${FLEET} does not resolve (${(error as Error).message})`;
  }
})().then((why) =>
  why === false ? false : `${why}: add the lines "127.0.0.2 ${FLEET}" and "127.0.0.3 ${FLEET}" to /etc/hosts`,
);

/** A port free on both fleet addresses a moment ago: the name gives addresses, SERVICE the one port. */
async function fleetPort(): Promise<number> {
  for (;;) {
    const probe = await silentServer(FLEET_ADDRESSES[0] as string);
    silent.pop()?.close();
    const other = net.createServer();
    const free = await new Promise<boolean>((resolve) => {
      other.once("error", () => resolve(false));
      other.listen(probe, FLEET_ADDRESSES[1], () => resolve(true));
    });
    await new Promise((resolve) => other.close(resolve));
    if (free) return probe;
  }
}

test(
  "--each-address: every address of HOST gets the inputs, each answer names its address",
  { skip: fleetSkip },
  async () => {
    const shared = await fleetPort();
    for (const host of FLEET_ADDRESSES) await serve(["--host", host, "--service", String(shared)]);
    const plain = await runConfab(["eval", FLEET, String(shared), "--each-address", "console.log('hi'); process.pid"]);
    assert.equal(plain.stderr, "");
    assert.equal(plain.code, 0);
    const lines = plain.stdout.trim().split("\n");
    const pids = new Set<string>();
    for (const host of FLEET_ADDRESSES) {
      // Each session's answer is printed whole: its output, then its value.
      const mine = lines.filter((line) => line.startsWith(`${host}: `)).map((line) => line.slice(host.length + 2));
      assert.equal(mine.length, 2, `${host} answered: ${plain.stdout}`);
      assert.equal(mine[0], "hi");
      assert.match(mine[1] ?? "", /^\d+$/);
      pids.add(mine[1] ?? "");
    }
    assert.equal(lines.length, 4);
    assert.equal(pids.size, 2, "two servers answered, not one twice");
    const json = await runConfab(["eval", FLEET, String(shared), "--each-address", "--json", "20 + 22"]);
    assert.equal(json.code, 0);
    const records = json.stdout
      .trim()
      .split("\n")
      .map((line) => JSON.parse(line) as { address: string; value: string })
      .map(({ address, value }) => [address, value])
      .sort();
    assert.deepEqual(records, [
      ["127.0.0.2", "42"],
      ["127.0.0.3", "42"],
    ]);
  },
);

test(
  "--each-address: an address that never answers is a reported failure within the connect timeout; exit 2",
  { skip: fleetSkip },
  async () => {
    const shared = await fleetPort();
    await serve(["--host", "127.0.0.2", "--service", String(shared)]);
    await silentServer("127.0.0.3", shared);
    const started = Date.now();
    const { code, stdout, stderr } = await runConfab([
      "eval",
      FLEET,
      String(shared),
      "--each-address",
      "--connect-timeout",
      "500",
      "--json",
      "'up'",
    ]);
    assert.equal(code, 2, "the worst over the addresses");
    assert.ok(Date.now() - started < 10_000);
    const records = stdout
      .trim()
      .split("\n")
      .map((line) => JSON.parse(line) as Record<string, unknown>)
      .sort((a, b) => String(a.address).localeCompare(String(b.address)));
    assert.deepEqual(
      records.map((r) => [r.address, r.value ?? r.code]),
      [
        ["127.0.0.2", "'up'"],
        ["127.0.0.3", "ERR_CONNECT_TIMEOUT"],
      ],
    );
    assert.match(stderr, /^127\.0\.0\.3: confab: 127\.0\.0\.3:\d+: no listener greeting within 500 ms/);
  },
);
