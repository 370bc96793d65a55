import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { inspect } from "node:util";
import { makeStreamAndTalk } from "../../examples/talk.js";
import { openTcpStream } from "../comm/client.js";
import { serverTerminate, startUpServer } from "../comm/server.js";
import { ConfabError, ErrorCodes } from "../errors.js";
import { processKill, processRunFunction } from "../mp/process.js";
import { listAllProcesses } from "../mp/registry.js";
import { hang, testServers, type LineClient } from "../../test/support.js";
import { kill, ps } from "./helpers.js";

const { start: listenerServer, client } = testServers();

/** A session named by `nameLine` (a Lisp string, as sent), once it shows its first prompt. */
async function session(port: number, nameLine: string): Promise<LineClient> {
  const c = await client(port);
  c.send(`${nameLine}\n`);
  await c.until("CL-USER 1 > ");
  return c;
}

/** What the session prints for `input`, up to its next prompt `CL-USER n > `. */
async function evaluate(c: LineClient, input: string, nextPrompt: number): Promise<string> {
  c.clear();
  c.send(`${input}\n`);
  const text = await c.until(`CL-USER ${nextPrompt} > `);
  return text.slice(0, text.lastIndexOf(`CL-USER ${nextPrompt} > `));
}

test("a session named with a tab and U+202E shows escaped in another session's ps(), whose rows keep the real name", async () => {
  const server = await listenerServer();
  const evil = await session(server.port, '"evil\tname\u202e"');
  const viewer = await session(server.port, '"viewer"');
  const table = await evaluate(viewer, "ps()", 2);
  const row = table.split("\n").find((l) => l.includes("evil"));
  assert.ok(row !== undefined, table);
  assert.match(row, /^ *\d+ {2}evil\\tname\\u202e +running /, "the name shown escaped, in its column");
  assert.doesNotMatch(table, /[\t\u202e]/u, "no raw tab or bidi override in the table");
  assert.ok(
    (await evaluate(viewer, "ps().some((r) => r.name === 'evil\\tname\\u202e')", 3)).includes("true"),
    "the rows keep the real name",
  );
  evil.end();
  viewer.end();
});

test("kill(name) refuses a name that two live processes share, listing their ids; kill(id) then works", async () => {
  const server = await listenerServer({ processName: "twin server" });
  const impostor = await session(server.port, '"twin server"');
  const killer = await session(server.port, '"killer"');
  const twins = listAllProcesses().filter((p) => p.name === "twin server");
  assert.equal(twins.length, 2);
  const ids = twins.map((p) => p.id).join(", ");
  const refused = await evaluate(killer, "kill('twin server')", 2);
  assert.ok(refused.includes(`2 live processes are named "twin server" (ids ${ids}): kill one by id`), refused);
  assert.ok(refused.includes(ErrorCodes.AMBIGUOUS_NAME), refused);
  assert.ok(
    twins.every((p) => p.alive),
    "neither was killed",
  );
  const impostorProcess = twins.find((p) => p !== server);
  assert.ok(impostorProcess);
  assert.match(await evaluate(killer, `kill(${impostorProcess.id})`, 3), /true/);
  await impostor.closed();
  assert.equal(server.alive, true, "the server lives on");
  assert.match(
    await evaluate(killer, "ps().filter((r) => r.name === 'twin server').length", 4),
    /^1\n$/,
    "one left: the name is no longer ambiguous",
  );
  killer.end();
});

test("kill(name) with one live process of that name kills it; with none it returns false; an ambiguous name throws ERR_AMBIGUOUS_NAME", () => {
  const one = processRunFunction("helpers test: single", {}, hang);
  const a = processRunFunction("helpers test: double", {}, hang);
  const b = processRunFunction("helpers test: double", {}, hang);
  try {
    assert.equal(kill("helpers test: nobody"), false);
    assert.equal(kill("helpers test: single"), true);
    assert.equal(one.state, "killed");
    assert.throws(
      () => kill("helpers test: double"),
      (error: unknown) =>
        error instanceof ConfabError &&
        error.code === ErrorCodes.AMBIGUOUS_NAME &&
        error.message === `2 live processes are named "helpers test: double" (ids ${a.id}, ${b.id}): kill one by id`,
    );
    assert.ok(a.alive && b.alive);
    assert.equal(kill(b), true, "kill(process) is unchanged");
    assert.equal(kill("helpers test: double"), true, "once one is left, the name is no longer ambiguous");
    assert.equal(a.state, "killed");
    assert.equal(
      ps().some((r) => r.name.startsWith("helpers test:")),
      false,
    );
  } finally {
    for (const p of [one, a, b]) processKill(p);
  }
});

test("ps() shows an IPv6 peer and a server on ::1 with the address in brackets", async () => {
  const server = await startUpServer({ function: makeStreamAndTalk, service: 0, address: "::1", logger: false });
  const talk = await openTcpStream("::1", server.port, { readTimeout: 5000 });
  try {
    talk.writeLine("hello");
    talk.forceOutput();
    assert.equal(await talk.readLine(), "You sent: 'hello'");
    const rows = ps();
    assert.equal(rows.find((r) => r.id === server.id)?.peer, `[::1]:${server.port} (1 open)`);
    const connection = rows.find((r) => r.name === `talk ${String(talk.localPort)}`);
    assert.equal(connection?.peer, `[::1]:${String(talk.localPort)}`);
    assert.match(inspect(rows), new RegExp(`\\[::1\\]:${String(talk.localPort)} `), "the table shows it too");
  } finally {
    talk.close();
    serverTerminate(server);
  }
});

test("ps() shows a Unix socket server's path, without a port", async () => {
  const dir = await mkdtemp(join(tmpdir(), "confab-ps-"));
  const path = join(dir, "ps.sock");
  const server = await startUpServer({ function: makeStreamAndTalk, service: `unix:${path}`, logger: false });
  try {
    const row = ps().find((r) => r.id === server.id);
    assert.equal(row?.peer, `${path} (0 open)`);
    assert.doesNotMatch(inspect(ps()), /\.sock:0/);
  } finally {
    serverTerminate(server);
    await rm(dir, { recursive: true, force: true });
  }
});
