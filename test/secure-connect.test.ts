// `confab connect` and `confab serve` in the three safe modes (TLS with and without client
// certificates, a shared token, a Unix socket), end to end with the real commands, plus real
// third-party peers (openssl s_client, netcat on a Unix socket) where they are installed.
import assert from "node:assert/strict";
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { existsSync, lstatSync, readdirSync, readFileSync } from "node:fs";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { serverTerminate, startUpServer, type ServerProcess } from "../src/index.js";
import { REFUSAL_LINE } from "../src/listener/auth.js";
import { childEnv, runConfab, startConfab } from "./cli.js";
import { captureReports, eventually } from "./support.js";
import { makeTestCertificates, type TestCertificates } from "./tls-certs.js";

const TOKEN = "secure-connect-test-token-0123456789";
let dir: string;
let certs: TestCertificates;
let tokenFile: string;
const servers: ServerProcess[] = [];
const children: ChildProcess[] = [];

before(async () => {
  dir = await mkdtemp(join(tmpdir(), "confab-secure-"));
  certs = await makeTestCertificates(join(dir, "certs"));
  tokenFile = join(dir, "token");
  await writeFile(tokenFile, `${TOKEN}\n`, { mode: 0o600 });
});

after(async () => {
  for (const child of children) if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
  for (const s of servers) serverTerminate(s);
  await rm(dir, { recursive: true, force: true });
});

async function start(options: Parameters<typeof startUpServer>[0]): Promise<ServerProcess> {
  const server = await startUpServer(options);
  servers.push(server);
  return server;
}

function exited(child: ChildProcess, timeout = 10_000): Promise<number | null> {
  return new Promise((resolve, reject) => {
    if (child.exitCode !== null) {
      resolve(child.exitCode);
      return;
    }
    const timer = setTimeout(() => reject(new Error(`still running after ${timeout} ms`)), timeout);
    child.once("exit", (code) => {
      clearTimeout(timer);
      resolve(code);
    });
  });
}

// ---------------------------------------------------------------------------------------------
// TLS

test("confab connect --tls --ca speaks TLS to a listener server", async () => {
  const server = await start({ service: 0, tls: { key: certs.server.key, cert: certs.server.cert } });
  const { code, stdout, stderr } = await runConfab(
    ["connect", String(server.port), "--tls", "--ca", certs.ca.certFile],
    "1 + 2\n",
  );
  assert.equal(stderr, "");
  assert.equal(stdout, "3\n");
  assert.equal(code, 0);
});

test("confab connect with a client certificate gets a listener where one is required; without one it does not", async () => {
  const server = await start({
    service: 0,
    tls: { key: certs.server.key, cert: certs.server.cert, ca: certs.ca.cert },
  });
  const port = String(server.port);
  const good = await runConfab(
    [
      "connect",
      port,
      "--tls",
      "--ca",
      certs.ca.certFile,
      "--cert",
      certs.client.certFile,
      "--key",
      certs.client.keyFile,
    ],
    "1 + 2\nmp.getCurrentProcess().properties.user\n",
  );
  // The session belongs to the user the certificate names: its subject's common name.
  assert.deepEqual([good.code, good.stdout, good.stderr], [0, "3\n'confab test client'\n", ""]);

  const captured = captureReports();
  try {
    for (const args of [[], ["--cert", certs.stranger.certFile, "--key", certs.stranger.keyFile]]) {
      const refused = await runConfab(
        ["connect", port, "--tls", "--ca", certs.ca.certFile, ...args],
        "globalThis.confabSecurePwned = 1\n",
      );
      assert.equal(refused.code, 1);
      assert.equal(refused.stdout, "");
      assert.match(refused.stderr, /client certificate signed by the server's CA is required/);
    }
    assert.equal(
      captured.reports.filter((r) => /TLS client .* refused/.test(r.what)).length,
      2,
      "both refusals are reported",
    );
  } finally {
    captured.restore();
  }
  assert.equal((globalThis as Record<string, unknown>).confabSecurePwned, undefined);
});

test("confab connect refuses a TLS server its CA did not sign", async () => {
  const server = await start({ service: 0, tls: { key: certs.server.key, cert: certs.server.cert } });
  const { code, stdout, stderr } = await runConfab(
    ["connect", String(server.port), "--ca", certs.otherCa.certFile],
    "1 + 2\n",
  );
  assert.equal(code, 1);
  assert.equal(stdout, "");
  assert.match(stderr, /^confab: cannot connect to 127\.0\.0\.1:\d+: TLS: unable to verify the first certificate/);
});

test("plain confab connect to a TLS listener server gets no listener", async () => {
  const server = await start({ service: 0, tls: { key: certs.server.key, cert: certs.server.cert } });
  const captured = captureReports();
  try {
    const { code, stdout } = await runConfab(["connect", String(server.port)], "globalThis.confabSecurePwned = 2\n");
    assert.equal(code, 1);
    assert.equal(stdout, "");
    assert.ok(captured.reports.some((r) => /TLS handshake with .* failed/.test(r.what)));
  } finally {
    captured.restore();
  }
  assert.equal((globalThis as Record<string, unknown>).confabSecurePwned, undefined);
});

test("confab serve --tls-cert --tls-key --tls-ca serves listeners only to holders of a client certificate", async () => {
  const { child, match } = await startConfab(
    [
      "serve",
      "--service",
      "0",
      "--tls-cert",
      certs.server.certFile,
      "--tls-key",
      certs.server.keyFile,
      "--tls-ca",
      certs.ca.certFile,
      "--announce",
    ],
    /listening on 127\.0\.0\.1:(\d+); connect with: npx confab connect (\d+) --tls\n/,
  );
  children.push(child);
  const port = match[1] as string;
  const good = await runConfab(
    ["connect", port, "--ca", certs.ca.certFile, "--cert", certs.client.certFile, "--key", certs.client.keyFile],
    "'over TLS'\n",
  );
  assert.deepEqual([good.code, good.stdout], [0, "'over TLS'\n"]);
  const refused = await runConfab(["connect", port, "--ca", certs.ca.certFile], "1\n");
  assert.equal(refused.code, 1);
  child.kill("SIGTERM");
  assert.equal(await exited(child), 0);
});

const hasOpenssl = spawnSync("openssl", ["version"], { stdio: "ignore" }).status === 0;

test(
  "openssl s_client, a real TLS peer with a client certificate, drives a listener session",
  { skip: hasOpenssl ? false : "openssl is not installed" },
  async () => {
    const server = await start({
      service: 0,
      tls: { key: certs.server.key, cert: certs.server.cert, ca: certs.ca.cert },
    });
    const child = spawn(
      "openssl",
      [
        "s_client",
        "-quiet",
        "-connect",
        `127.0.0.1:${server.port}`,
        "-CAfile",
        certs.ca.certFile,
        "-cert",
        certs.client.certFile,
        "-key",
        certs.client.keyFile,
        "-verify_return_error",
      ],
      { stdio: ["pipe", "pipe", "pipe"] },
    );
    children.push(child);
    let out = "";
    child.stdout.setEncoding("utf8");
    child.stdout.on("data", (text: string) => (out += text));
    child.stderr.resume();
    child.stdin.write('"s_client"\n[1, 2, 3].map((x) => x * 2)\n');
    await eventually(() => out.includes("CL-USER 2 > "), 10_000, `s_client's session (got ${JSON.stringify(out)})`);
    assert.equal(out, "CL-USER 1 > [ 2, 4, 6 ]\nCL-USER 2 > ");
    child.kill("SIGTERM");
    await exited(child);
  },
);

// ---------------------------------------------------------------------------------------------
// Token

test("confab connect sends $CONFAB_TOKEN or the content of --token-file first", async () => {
  const server = await start({ service: 0, token: TOKEN });
  const port = String(server.port);
  const viaEnv = await runConfab(["connect", port], "1 + 2\n", { env: childEnv({ CONFAB_TOKEN: TOKEN }) });
  assert.deepEqual([viaEnv.code, viaEnv.stdout, viaEnv.stderr], [0, "3\n", ""]);
  const viaFile = await runConfab(["connect", port, "--token-file", tokenFile], "1 + 2\n");
  assert.deepEqual([viaFile.code, viaFile.stdout, viaFile.stderr], [0, "3\n", ""]);
});

test("confab connect takes a file with one user's line NAME TOKEN; a file of several users' is refused", async () => {
  const alice = "alice-0123456789abcdef-token";
  const server = await start({ service: 0, users: { alice, bob: `bob-${alice}` } });
  const port = String(server.port);
  const own = join(dir, "alice.token");
  await writeFile(own, `# alice's own line of the server's file\nalice ${alice}\n`, { mode: 0o600 });
  const asAlice = await runConfab(["connect", port, "--token-file", own], "mp.getCurrentProcess().properties.user\n");
  assert.deepEqual([asAlice.code, asAlice.stdout, asAlice.stderr], [0, "'alice'\n", ""]);
  const both = join(dir, "users.token");
  await writeFile(both, `alice ${alice}\nbob bob-${alice}\n`, { mode: 0o600 });
  const refused = await runConfab(["connect", port, "--token-file", both], "1\n");
  assert.equal(refused.code, 1, "a usage error, as a weak token is");
  assert.match(refused.stderr, /holds the tokens of 2 users; give a file with just your own/);
  assert.ok(!refused.stderr.includes(alice));
});

test("confab connect with a wrong or no token gets the refusal on stderr, exit 1, nothing evaluated", async () => {
  const server = await start({ service: 0, token: TOKEN });
  const port = String(server.port);
  const wrong = await runConfab(["connect", port], "globalThis.confabSecurePwned = 3\n", {
    env: childEnv({ CONFAB_TOKEN: `x${TOKEN}` }),
  });
  assert.deepEqual([wrong.code, wrong.stdout, wrong.stderr], [1, "", `${REFUSAL_LINE}\n`]);
  const none = await runConfab(["connect", port], "globalThis.confabSecurePwned = 4\n");
  assert.deepEqual([none.code, none.stdout, none.stderr], [1, "", `${REFUSAL_LINE}\n`]);
  assert.equal((globalThis as Record<string, unknown>).confabSecurePwned, undefined);
});

test("a weak $CONFAB_TOKEN is refused by confab connect without being printed", async () => {
  const { code, stderr } = await runConfab(["connect", "1"], "", { env: childEnv({ CONFAB_TOKEN: "hunter2" }) });
  assert.equal(code, 1);
  assert.match(stderr, /\$CONFAB_TOKEN must be 16 to 1024 characters long/);
  assert.doesNotMatch(stderr, /hunter2/);
});

// ---------------------------------------------------------------------------------------------
// Unix socket

test("confab connect speaks to a Unix socket given as a path or as unix:PATH", async () => {
  const path = join(dir, "connect.sock");
  await start({ service: path });
  for (const service of [path, `unix:${path}`]) {
    const { code, stdout, stderr } = await runConfab(["connect", service], "1 + 2\n");
    assert.deepEqual([code, stdout, stderr], [0, "3\n", ""]);
  }
});

test("confab serve on a Unix socket with a token file: 0600 socket, token required, socket removed on SIGTERM", async () => {
  const path = join(dir, "serve.sock");
  const { child, match } = await startConfab(
    ["serve", "--service", `unix:${path}`, "--token-file", tokenFile, "--announce"],
    /listening on (\S+); connect with: npx confab connect (\S+) \(with CONFAB_TOKEN set\)\n/,
  );
  children.push(child);
  assert.equal(match[1], path);
  assert.equal(match[2], path);
  assert.equal(lstatSync(path).mode & 0o777, 0o600);
  const ok = await runConfab(["connect", path, "--token-file", tokenFile], "'unix and token'\n");
  assert.deepEqual([ok.code, ok.stdout], [0, "'unix and token'\n"]);
  const refused = await runConfab(["connect", path], "1\n");
  assert.deepEqual([refused.code, refused.stderr], [1, `${REFUSAL_LINE}\n`]);
  child.kill("SIGTERM");
  assert.equal(await exited(child), 0);
  assert.equal(existsSync(path), false, "the socket file is gone");
});

test("confab serve with a users file: each user's session is theirs; SIGHUP adds and revokes users without a restart", async () => {
  const alice = "alice-serve-0123456789abcdef";
  const bob = "bob-serve-0123456789abcdef-x";
  const users = join(dir, "serve-users");
  const aliceFile = join(dir, "serve-alice");
  const bobFile = join(dir, "serve-bob");
  await writeFile(users, `# who may connect\nalice ${alice}\n`, { mode: 0o600 });
  await writeFile(aliceFile, `alice ${alice}\n`, { mode: 0o600 });
  await writeFile(bobFile, `bob ${bob}\n`, { mode: 0o600 });
  const audit = join(dir, "serve-audit.jsonl");
  const recordings = join(dir, "serve-recordings");
  const { child, match, output } = await startConfab(
    ["serve", "--service", "0", "--token-file", users, "--audit", audit, "--record", recordings, "--announce"],
    /listening on 127\.0\.0\.1:(\d+); connect with: npx confab connect \d+ --token-file YOUR-TOKEN-FILE\n/,
  );
  children.push(child);
  const port = match[1] as string;
  const who = "mp.getCurrentProcess().properties.user\n";
  const asAlice = await runConfab(["connect", port, "--token-file", aliceFile], who);
  assert.deepEqual([asAlice.code, asAlice.stdout], [0, "'alice'\n"]);
  assert.equal((await runConfab(["connect", port, "--token-file", bobFile], who)).code, 1, "bob is not a user yet");
  await writeFile(users, `bob ${bob}\n`, { mode: 0o600 });
  child.kill("SIGHUP");
  await eventually(() => output().includes(`${users} read again: 1 user\n`), 5000, "the users file is read again");
  const asBob = await runConfab(["connect", port, "--token-file", bobFile], who);
  assert.deepEqual([asBob.code, asBob.stdout], [0, "'bob'\n"]);
  const revoked = await runConfab(["connect", port, "--token-file", aliceFile], who);
  assert.deepEqual([revoked.code, revoked.stderr], [1, `${REFUSAL_LINE}\n`], "alice is revoked");
  // A file turned bad is reported, and the users read before stay.
  await writeFile(users, "bob short\n", { mode: 0o600 });
  child.kill("SIGHUP");
  await eventually(
    () => output().includes("not reloaded, the users read before stay"),
    5000,
    "the bad file is reported",
  );
  assert.equal((await runConfab(["connect", port, "--token-file", bobFile], who)).code, 0);
  assert.ok(!output().includes(alice) && !output().includes(bob), "no token in the server's output");
  child.kill("SIGTERM");
  assert.equal(await exited(child), 0);
  // --audit and --record: every session on record, whose it was, and the refusals with why.
  const records = readFileSync(audit, "utf8")
    .trim()
    .split("\n")
    .map((line) => JSON.parse(line) as { event: string; user?: string; reason?: string });
  assert.deepEqual(
    records.filter((r) => r.event === "session-start").map((r) => r.user),
    ["alice", "bob", "bob"],
  );
  assert.deepEqual(
    records.filter((r) => r.event === "refused").map((r) => r.reason),
    ["wrong token", "wrong token"],
  );
  assert.equal(lstatSync(audit).mode & 0o777, 0o600);
  assert.equal(readdirSync(recordings).filter((name) => name.endsWith(".cast")).length, 3);
  const everything =
    readFileSync(audit, "utf8") +
    readdirSync(recordings)
      .map((f) => readFileSync(join(recordings, f), "utf8"))
      .join("");
  assert.ok(!everything.includes(alice) && !everything.includes(bob), "no token in the audit or the recordings");
});

const ncHelp = spawnSync("nc", ["-h"], { encoding: "utf8" });
const hasNcU =
  ncHelp.error === undefined &&
  /-U\b/.test(`${ncHelp.stdout}${ncHelp.stderr}`) &&
  /-N\b/.test(`${ncHelp.stdout}${ncHelp.stderr}`);

test(
  "netcat on the Unix socket, typing the token line by hand, gets a listener",
  { skip: hasNcU ? false : "netcat with -U and -N is not installed" },
  async () => {
    const path = join(dir, "nc.sock");
    await start({ service: path, token: TOKEN });
    const child = spawn("nc", ["-N", "-U", path], { stdio: ["pipe", "pipe", "pipe"] });
    children.push(child);
    let out = "";
    child.stdout.setEncoding("utf8");
    child.stdout.on("data", (text: string) => (out += text));
    child.stdin.end(`token ${TOKEN}\n"netcat"\n'typed'\n`);
    await exited(child);
    assert.equal(out, "CL-USER 1 > 'typed'\nCL-USER 2 > ");
  },
);

// ---------------------------------------------------------------------------------------------
// The non-loopback rule, from the command line (192.0.2.1 is no address of this machine)

test("confab serve on a non-loopback --host without authentication refuses and says how to enable one", async () => {
  const { code, stderr } = await runConfab(["serve", "--service", "0", "--host", "192.0.2.1"]);
  assert.equal(code, 1);
  assert.match(stderr, /refusing to serve listeners on 192\.0\.2\.1 without authentication/);
  assert.match(stderr, /--token-file FILE/);
  assert.match(stderr, /--tls-ca FILE/);
  const withToken = await runConfab(["serve", "--service", "0", "--host", "192.0.2.1", "--token-file", tokenFile]);
  assert.equal(withToken.code, 1);
  assert.doesNotMatch(withToken.stderr, /refusing/);
  assert.match(withToken.stderr, /EADDRNOTAVAIL/);
});
