// The client side of a listener session, as programs use it (confab eval, confab mcp, an editor):
// openStructuredSession against real listener servers on loopback.
import assert from "node:assert/strict";
import net from "node:net";
import { after, before, test } from "node:test";
import { eventually, failsWith, testServers } from "../../test/support.js";
import { ErrorCodes } from "../errors.js";
import type { ServerProcess } from "../index.js";
import { processKill, type Process } from "../mp/process.js";
import { findProcessFromName } from "../mp/registry.js";
import {
  openStructuredSession,
  type EvaluationResult,
  type ListenerEndpoint,
  type StructuredSession,
} from "./listener-client.js";

const { start } = testServers();
const TOKEN = "listener-session-test-token";
const fakes: net.Server[] = [];
let server: ServerProcess;
let guarded: ServerProcess;
before(async () => {
  server = await start({ context: { app: { name: "shop" } } });
  guarded = await start({ token: TOKEN });
});
after(() => {
  for (const fake of fakes) fake.close();
});

function endpoint(port: number, overrides: Partial<ListenerEndpoint> = {}): ListenerEndpoint {
  return { target: { host: "127.0.0.1", port }, name: "api test", ...overrides };
}

/** A plain TCP server that answers each connection with `reply` (or, with `undefined`, never a word). */
async function fakeServer(reply: string | undefined): Promise<number> {
  const fake = net.createServer((socket) => {
    socket.on("error", () => undefined);
    socket.resume();
    if (reply !== undefined) socket.write(reply);
  });
  fakes.push(fake);
  await new Promise<void>((resolve) => fake.listen(0, "127.0.0.1", resolve));
  return (fake.address() as net.AddressInfo).port;
}

test("an input that prints without end keeps 8 MiB of its output in memory, and its result says how much was left out", async () => {
  const session = await openStructuredSession(endpoint(server.port));
  const result = await session.evaluate(
    "for (let i = 0; i < 12; i++) { console.log('x'.repeat(1024 * 1024)); await null; } 'done'",
  );
  assert.equal(result.value, "'done'");
  assert.ok(result.output.length <= 8 * 1024 * 1024 + 100, `${result.output.length} characters kept`);
  const note = /… \((\d+) more characters of output left out\)\n$/.exec(result.output);
  assert.ok(note !== null, "the result says what it left out");
  assert.equal(result.output.length - note[0].length - 1 + Number(note[1]), 12 * (1024 * 1024 + 1));
  await session.close();
});

test("evaluate resolves to the printed value, the input's own output, whether it threw, and its time", async () => {
  const session = await openStructuredSession(endpoint(server.port));
  assert.equal(session.address, `127.0.0.1:${server.port}`);
  const value = await session.evaluate("console.log('for', app.name); app.name.length");
  assert.deepEqual(
    { ...value, ms: 0 },
    { input: 1, value: "4", threw: false, status: "value", output: "for shop\n", ms: 0 },
  );
  const thrown = await session.evaluate("throw new Error('no stock')");
  assert.deepEqual([thrown.input, thrown.threw, thrown.status], [2, true, "error"]);
  assert.match(thrown.value, /^Error: no stock\n/);
  const invalid = await session.evaluate("if (true) {");
  assert.deepEqual([invalid.input, invalid.threw, invalid.status], [null, true, "invalid"]);
  assert.match(invalid.value, /^Error: incomplete input/);
  await session.close();
});

test("evaluations sent together are answered in order; close waits for the answers, then ends the session", async () => {
  const session = await openStructuredSession(endpoint(server.port));
  const answers = [
    session.evaluate("await new Promise((r) => setTimeout(() => r('slow'), 50))"),
    session.evaluate("'fast'"),
  ];
  const closed = session.close();
  assert.deepEqual(
    (await Promise.all(answers)).map((a) => a.value),
    ["'slow'", "'fast'"],
  );
  await closed;
  assert.equal(await session.ended, "the connection closed");
  await assert.rejects(session.evaluate("1"), failsWith(ErrorCodes.SESSION_ENDED, /has ended/));
});

test("output while no input runs goes to onStrayOutput, not to a later input", async () => {
  const stray: string[] = [];
  const session = await openStructuredSession(endpoint(server.port), { onStrayOutput: (text) => stray.push(text) });
  await session.evaluate("setTimeout(() => console.log('later'), 20); 0");
  await eventually(() => stray.length > 0);
  assert.deepEqual(stray, ["later\n"]);
  assert.equal((await session.evaluate("1")).output, "");
  await session.close();
});

/** A session named `name` with an input that never settles, seen running by the server; and the session's process. */
async function hangingSession(name: string): Promise<{
  session: StructuredSession;
  running: Promise<EvaluationResult>;
  process: Process;
}> {
  const session = await openStructuredSession(endpoint(server.port, { name }));
  const running = session.evaluate("await new Promise(() => {})");
  const process = findProcessFromName(name);
  assert.ok(process);
  await eventually(() => process.whostate?.startsWith("Evaluating") === true);
  return { session, running, process };
}

test("a session killed while an input runs: its evaluate rejects with ERR_SESSION_ENDED, ended says why", async () => {
  const { session, running, process } = await hangingSession("killed by test");
  processKill(process);
  await assert.rejects(running, failsWith(ErrorCodes.SESSION_ENDED, /ended before answering: session killed/));
  assert.match(await session.ended, /^session killed/);
});

test("interrupt stops the input running: it resolves as interrupted, and the session goes on", async () => {
  const { session, running } = await hangingSession("interrupted by test");
  session.interrupt();
  assert.equal((await running).status, "interrupted");
  assert.equal((await session.evaluate("2")).value, "2");
  await session.close();
});

test("an aborted signal interrupts its own input only, even one still waiting behind another", async () => {
  const session = await openStructuredSession(endpoint(server.port));
  const first = session.evaluate("await new Promise((resolve) => setTimeout(resolve, 200, 'first'))");
  const queued = new AbortController();
  const second = session.evaluate("'second'", { signal: queued.signal });
  queued.abort(); // while the first runs: the second is stopped as it starts, the first is not touched
  assert.equal((await first).value, "'first'");
  assert.equal((await second).status, "interrupted");
  const running = new AbortController();
  const third = session.evaluate("await new Promise(() => {})", { signal: running.signal });
  running.abort();
  assert.equal((await third).status, "interrupted");
  assert.equal((await session.evaluate("'on'")).value, "'on'");
  await session.close();
});

test("no session: a wrong token is ERR_LISTENER_REFUSED with the server's words; the right one is let in", async () => {
  await assert.rejects(
    openStructuredSession(endpoint(guarded.port, { token: "wrong-token-of-enough-length" })),
    failsWith(
      ErrorCodes.LISTENER_REFUSED,
      /refused the session: not authorized \(the first line must be: token SECRET\)$/,
    ),
  );
  const session = await openStructuredSession(endpoint(guarded.port, { token: TOKEN }));
  assert.equal((await session.evaluate("'in'")).value, "'in'");
  await session.close();
});

test("no session: a listener without the structured mode is ERR_LISTENER_PROTOCOL, naming its version", async () => {
  const old = await fakeServer('CL-USER 1 > \u0010hello {"version":1}\n\u0010prompt CL-USER 1 > \n');
  await assert.rejects(
    openStructuredSession(endpoint(old)),
    failsWith(ErrorCodes.LISTENER_PROTOCOL, /no structured mode \(protocol version 1; it needs 2\)/),
  );
});

test("no session: a server that never greets is ERR_CONNECT_TIMEOUT once the connect timeout has passed", async () => {
  const mute = await fakeServer(undefined);
  const started = Date.now();
  await assert.rejects(
    openStructuredSession(endpoint(mute, { connectTimeout: 200 })),
    failsWith(ErrorCodes.CONNECT_TIMEOUT, /no listener greeting within 200 ms/),
  );
  assert.ok(Date.now() - started >= 190);
});

test("address reaches one address of the endpoint's host; answers name it", async () => {
  const session = await openStructuredSession(
    endpoint(server.port, { target: { host: "localhost", port: server.port } }),
    {
      address: "127.0.0.1",
    },
  );
  assert.equal(session.address, `127.0.0.1:${server.port}`);
  assert.equal((await session.evaluate("1 + 1")).value, "2");
  await session.close();
});
