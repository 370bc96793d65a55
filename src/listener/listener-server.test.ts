import assert from "node:assert/strict";
import net from "node:net";
import { before, test } from "node:test";
import { ConfabError, ErrorCodes } from "../errors.js";
import { startUpServer, type ServerProcess } from "../index.js";
import { processKill } from "../mp/process.js";
import { findProcessFromName, listAllProcesses } from "../mp/registry.js";
import { eventually, sleep, testServers, type LineClient } from "../../test/support.js";

const { start: listenerServer, client } = testServers();

/** Sends a name line and `input` at once, closes the sending side, and returns all the listener said. */
async function transcript(port: number, input: string, name = '"test listener"'): Promise<string> {
  const c = await client(port);
  c.send(`${name}\n${input}`);
  c.end();
  await c.closed(10_000);
  return c.received;
}

/** The printed results of a transcript: the text between prompts. */
function results(text: string): string[] {
  return text
    .split(/CL-USER \d+ > /)
    .slice(1, -1)
    .map((r) => r.replace(/\n$/, ""));
}

// One listener server for the tests that share it.
let server: ServerProcess;
before(async () => {
  server = await listenerServer({ context: { app: { users: ["ada"] } } });
});

test('a listener server\'s process is named after its service, as (format nil "~S server" 0)', () => {
  assert.equal(server.name, "0 server");
});

test("the first line names the listener's process; Lisp escapes are honoured", async () => {
  const c = await client(server.port);
  c.send('"a \\"quoted\\" \\\\ name"\n');
  await c.until("CL-USER 1 > ");
  const p = findProcessFromName('a "quoted" \\ name');
  assert.ok(p, "a process with the unescaped name runs the listener");
  assert.equal(p.properties.kind, "listener");
  c.end();
  await c.closed();
  await eventually(() => p.state !== "running");
  assert.equal(p.state, "finished", "end of file ends the listener's process");
});

test("values print as util.inspect shows them, with numbered prompts and no echo", async () => {
  const text = await transcript(server.port, "1 + 2\n'str'\n({ a: [1, { b: 2 }] })\n[1, 2].map((x) => x * 10)\n");
  assert.equal(
    text,
    "CL-USER 1 > 3\nCL-USER 2 > 'str'\nCL-USER 3 > { a: [ 1, { b: 2 } ] }\nCL-USER 4 > [ 10, 20 ]\nCL-USER 5 > ",
  );
});

test("TypeScript input is accepted: annotations, interfaces, casts, generics", async () => {
  const text = await transcript(
    server.port,
    [
      "interface User { name: string; age?: number }",
      "const u: User = { name: 'ada' } as User",
      "function first<T>(xs: T[]): T | undefined { return xs[0] }",
      "first<number>([7, 8]) as number",
      "u.name!.length satisfies number",
    ].join("\n") + "\n",
  );
  assert.deepEqual(results(text), ["undefined", "undefined", "undefined", "7", "3"]);
});

test("declarations persist between inputs, destructuring and top-level await included", async () => {
  const text = await transcript(
    server.port,
    [
      "const x = 40",
      "let { a, b: [c] } = { a: 1, b: [2] }",
      "const fetched = await Promise.resolve(2)",
      "function add(p: number, q: number) { return p + q }",
      "class Box { constructor(public v: number) {} }",
      "add(x, fetched) + a + c",
      "new Box(5).v",
      "_",
    ].join("\n") + "\n",
  );
  assert.deepEqual(results(text).slice(-3), ["45", "5", "5"]);
  assert.equal((globalThis as Record<string, unknown>).fetched, undefined, "declarations stay in the listener's scope");
});

test("input spanning several lines is read until it is complete", async () => {
  const text = await transcript(
    server.port,
    "function sum(\n  xs: number[],\n) {\n  return xs.reduce((s, x) => s + x, 0)\n}\nsum([\n1,\n2,\n3])\n`two\nlines`\n",
  );
  assert.deepEqual(results(text), ["undefined", "6", "'two\\nlines'"]);
});

test("many inputs piped at once are evaluated in order, even when some await", async () => {
  const lines: string[] = [];
  for (let i = 0; i < 30; i++) {
    lines.push(i % 3 === 0 ? `await new Promise((r) => setTimeout(() => r(${i}), ${30 - i}))` : `${i}`);
  }
  // All sent at once; the connection stays open until the last answer (end of file would end
  // the session, dropping an input that still awaits).
  const c = await client(server.port);
  c.send(`"piped"\n${lines.join("\n")}\n`);
  const text = await c.until("CL-USER 31 > ");
  c.end();
  assert.deepEqual(
    results(text),
    Array.from({ length: 30 }, (_, i) => String(i)),
  );
});

test("thrown errors and rejected promises print their message and the listener carries on", async () => {
  const text = await transcript(
    server.port,
    "throw new Error('boom')\nawait Promise.reject(new TypeError('nope'))\nPromise.reject(new RangeError('as value'))\nnull.x\n'still here'\n",
  );
  const r = results(text);
  assert.match(r[0] ?? "", /^Error: boom/);
  assert.match(r[1] ?? "", /^TypeError: nope/);
  assert.match(r[2] ?? "", /^RangeError: as value/, "a promise value is awaited");
  assert.match(r[3] ?? "", /^TypeError: Cannot read properties of null/);
  assert.equal(r[4], "'still here'");
});

test("a promise typed as a value is awaited, and _ holds what it settled to", async () => {
  const text = await transcript(server.port, "Promise.resolve(21)\n_ * 2\n");
  assert.deepEqual(results(text), ["21", "42"]);
});

test("a syntax error is reported and the next input works", async () => {
  const text = await transcript(server.port, "1 +* 2\n2 + 2\n");
  const r = results(text);
  assert.match(r[0] ?? "", /SyntaxError/);
  assert.equal(r[1], "4");
});

test("console.log in a listener writes to that listener's client", async () => {
  const text = await transcript(server.port, "console.log('to the client', { n: 1 }); 7\n");
  assert.deepEqual(results(text), ["to the client { n: 1 }\n7"]);
});

test("objects the program exposes are its own, and mp and comm are in scope", async () => {
  const app = { users: ["ada"] };
  const own = await listenerServer({ context: { app } });
  const text = await transcript(
    own.port,
    "app.users.push('grace')\ntypeof mp.processRunFunction\ntypeof comm.startUpServer\n",
  );
  assert.deepEqual(results(text), ["2", "'function'", "'function'"]);
  assert.deepEqual(app.users, ["ada", "grace"], "the listener changed the program's object");
});

test("while (true) {} is interrupted after the time limit and the next input works", async () => {
  const quick = await listenerServer({ evalTimeout: 200 });
  const started = Date.now();
  const text = await transcript(quick.port, "while (true) {}\n'alive'\n");
  const r = results(text);
  assert.match(r[0] ?? "", /timed out after 200 ms/);
  assert.equal(r[1], "'alive'");
  assert.ok(Date.now() - started < 5000);
});

test("two listeners at once: one lists the processes and kills the other", async () => {
  const victim = await client(server.port);
  victim.send('"victim"\n');
  await victim.until("CL-USER 1 > ");
  const killer = await client(server.port);
  killer.send('"killer"\n');
  await killer.until("CL-USER 1 > ");
  killer.send("ps().map((r) => r.name).filter((n) => n === 'victim' || n === 'killer')\n");
  assert.match(await killer.until("CL-USER 2 > "), /\[ 'victim', 'killer' \]/);
  killer.send("ps()\n");
  const table = await killer.until("CL-USER 3 > ");
  assert.match(table, /ID\s+NAME\s+USER\s+STATE\s+AGE\s+PEER\s+IN\s+OUT\s+WAITING/);
  // The idle session waits for its client: the WAITING column names the read's peer.
  assert.match(
    table,
    new RegExp(
      `victim\\s+running\\s+\\S+\\s+127\\.0\\.0\\.1:${victim.socket.localPort}\\s+\\d+\\s+\\d+\\s+Waiting for input from 127\\.0\\.0\\.1:${victim.socket.localPort}`,
    ),
  );
  killer.send("kill('victim')\n");
  assert.match(await killer.until("CL-USER 4 > "), /true/);
  await victim.closed();
  assert.equal(findProcessFromName("victim"), undefined);
  killer.end();
});

test("ps() shows what a process waits for: a processWait reason, and a listener evaluating its input", async () => {
  const waiter = await client(server.port);
  waiter.send('"waiter"\n');
  await waiter.until("CL-USER 1 > ");
  waiter.send("await mp.processWait('Waiting for the users query', new Promise((r) => setTimeout(r, 60_000)))\n");
  const looker = await client(server.port);
  looker.send('"looker"\n');
  await looker.until("CL-USER 1 > ");
  looker.send("ps().find((r) => r.name === 'waiter')?.waiting\n");
  const seen = await looker.until("CL-USER 2 > ");
  // The session awaits its input, which waits on the query: the innermost wait shows.
  assert.match(seen, /'Waiting for the users query'/);
  looker.send(
    "mp.processRunFunction('batch', {}, () => mp.processWait('Waiting for the lock', new Promise(() => {}))); 1\n",
  );
  await looker.until("CL-USER 3 > ");
  looker.send("ps()\n");
  assert.match(await looker.until("CL-USER 4 > "), /batch\s+running\s+.*Waiting for the lock/);
  looker.send("kill('batch')\n");
  await looker.until("CL-USER 5 > ");
  waiter.end();
  looker.end();
});

test("a first line that is not a string gets a one-line error and the connection is closed", async () => {
  for (const bad of ["my-listener", "42", "(a list)", '"unterminated']) {
    const c = await client(server.port);
    c.send(`${bad}\n1 + 1\n`);
    await c.closed();
    assert.match(c.received, /^Error: .*\n$/, `${bad} is refused with one line`);
    assert.doesNotMatch(c.received, /CL-USER/);
  }
});

test("an HTTP request evaluates nothing and is closed", async () => {
  const body = "globalThis.confabPwned = true";
  const c = await client(server.port);
  c.send(
    `POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: text/plain\r\nContent-Length: ${body.length}\r\n\r\n${body}\n`,
  );
  await c.closed();
  assert.match(c.received, /^Error: expected a string/);
  await sleep(20);
  assert.equal((globalThis as Record<string, unknown>).confabPwned, undefined);
});

test("a silent client does not hold up the next, and is dropped after the name timeout", async () => {
  const quick = await listenerServer({ nameTimeout: 300 });
  const silent = await client(quick.port);
  const started = Date.now();
  const text = await transcript(quick.port, "'served'\n");
  assert.deepEqual(results(text), ["'served'"]);
  assert.ok(Date.now() - started < 300, "served while the silent client still holds its connection");
  await silent.closed(3000);
  assert.match(silent.received, /no name line within 300 ms/);
});

test("connections not yet sessions are limited by maxStartups, the oldest dropped, and never take the places of sessions (maxConnections)", async () => {
  const limited = await listenerServer({ maxStartups: 4, maxConnections: 3, nameTimeout: 20_000 });
  // Nine that never send a name line, connected one after another: the server takes them in
  // that order, so the first five are the oldest when the sixth to ninth arrive.
  const silent = [];
  for (let i = 0; i < 9; i++) silent.push(await client(limited.port));
  const dropped =
    /^Error: connection dropped: more than 4 connections are waiting to start a session \(maxStartups 4\); try again later\n$/;
  for (const c of silent.slice(0, 5)) {
    await c.closed();
    assert.match(c.received, dropped);
  }
  const session = async (name: string): Promise<LineClient> => {
    const c = await client(limited.port);
    c.send(`"${name}"\n`);
    await c.until("CL-USER 1 > ", 2000);
    return c;
  };
  // A real client gets its prompt at once; to make room, the oldest silent one was dropped.
  const first = await session("past the silent ones");
  await silent[5]?.closed();
  assert.match(silent[5]?.received ?? "", dropped);
  assert.ok(
    silent.slice(6).every((c) => !c.ended),
    "the three newest silent ones still wait",
  );
  // Sessions up to maxConnections work, the silent ones notwithstanding.
  const second = await session("second");
  const third = await session("third");
  second.send("1 + 1\n");
  assert.match(await second.until("CL-USER 2 > "), /2/);
  assert.ok(
    silent.slice(6).every((c) => !c.ended),
    "sessions started while room was left for start-ups dropped no one",
  );
  // One session more than maxConnections is refused at once, and drops no waiting start-up.
  const extra = await client(limited.port);
  await extra.closed();
  assert.equal(extra.received, "Error: too many connections (maxConnections 3); try again later\n");
  assert.ok(silent.slice(6).every((c) => !c.ended));
  assert.equal(limited.counters.refused, 7, "six dropped start-ups and one refused session, counted");
  // When a session ends, its place is free again.
  third.end();
  await third.closed();
  // Its place is freed once its process has ended, which may be a moment after the close.
  let again: LineClient | undefined;
  for (let i = 0; i < 20 && again === undefined; i++) {
    const c = await client(limited.port);
    c.send('"in its place"\n');
    await eventually(() => c.received.includes("CL-USER 1 > ") || c.ended, 2000, "a prompt or a refusal");
    if (c.ended) assert.equal(c.received, "Error: too many connections (maxConnections 3); try again later\n");
    else again = c;
  }
  assert.ok(again !== undefined);
  await again.until("CL-USER 1 > ");
  for (const c of [first, second, again]) c.end();
});

test("killing a listener's process closes its connection", async () => {
  const c = await client(server.port);
  c.send('"doomed"\n');
  await c.until("CL-USER 1 > ");
  const p = findProcessFromName("doomed");
  assert.ok(p);
  processKill(p);
  await c.closed();
  assert.equal(p.state, "killed");
});

test("a listener server on a non-loopback address without authentication refuses to start", async () => {
  await assert.rejects(startUpServer({ service: 0, address: "0.0.0.0" }), (error: unknown) => {
    assert.ok(error instanceof ConfabError);
    assert.equal(error.code, ErrorCodes.INSECURE_LISTENER);
    assert.match(error.message, /0\.0\.0\.0/);
    return true;
  });
  assert.ok(!listAllProcesses().some((p) => "address" in p && p.address === "0.0.0.0"));
});

test("a plain client without a newline at the end still gets its last input evaluated", async () => {
  const text = await transcript(server.port, "6 * 7");
  assert.deepEqual(results(text), ["42"]);
});

test("the shared server listens on IPv4 loopback, as the raw sockets of these tests assume", () => {
  assert.equal(net.isIP(server.address), 4);
});
