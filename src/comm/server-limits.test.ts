import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import type net from "node:net";
import { after, test } from "node:test";
import { fileURLToPath } from "node:url";
import { listAllProcesses } from "../mp/registry.js";
import { processKill } from "../mp/process.js";
import { eventually, sleep, testServers } from "../../test/support.js";
import { makeStreamAndTalk } from "../../examples/talk.js";

const { start: talkServer, client } = testServers({ function: makeStreamAndTalk });
const children: ChildProcess[] = [];
after(() => {
  for (const c of children) c.kill("SIGKILL");
  for (const p of listAllProcesses()) if (p.name.startsWith("talk ")) processKill(p);
});

test("connections past maxConnections are refused with one line and counted", async () => {
  const server = await talkServer({ maxConnections: 2 });
  const a = await client(server.port);
  const b = await client(server.port);
  const extra = await client(server.port);
  await extra.closed();
  assert.equal(extra.received, "Error: too many connections (maxConnections 2); try again later\n");
  a.send("still\n");
  assert.equal(await a.line(), "You sent: 'still'");
  b.end();
  await b.closed();
  await eventually(() => server.counters.active === 1, 2000, "the closed connection is no longer active");
  const later = await client(server.port);
  later.send("room again\n");
  assert.equal(await later.line(), "You sent: 'room again'");
  const counters = server.counters;
  assert.equal(counters.accepted, 4);
  assert.equal(counters.refused, 1);
  assert.equal(counters.active, 2);
});

test("counters add up the bytes of open and closed connections", async () => {
  const server = await talkServer();
  const c = await client(server.port);
  c.send("abc\n");
  assert.equal(await c.line(), "You sent: 'abc'");
  assert.equal(server.counters.bytesIn, 4);
  assert.equal(server.counters.bytesOut, "You sent: 'abc'\n".length);
  c.end();
  await c.closed();
  await eventually(() => server.counters.active === 0);
  assert.equal(server.counters.bytesIn, 4);
  assert.equal(server.counters.bytesOut, "You sent: 'abc'\n".length);
});

test("a connection idle for idleTimeout is closed and counted; a busy one is not", async () => {
  const server = await talkServer({ idleTimeout: 150 });
  const idle = await client(server.port);
  const busy = await client(server.port);
  for (let i = 0; i < 6; i++) {
    busy.send(`tick ${i}\n`);
    assert.equal(await busy.line(), `You sent: 'tick ${i}'`);
    await sleep(50);
  }
  await idle.closed(2000);
  assert.equal(busy.ended, false);
  assert.equal(server.counters.timedOut, 1);
});

test("a connection closed by idleTimeout is told why in one line first, after what it was sent; a busy one is told nothing", async () => {
  const server = await talkServer({ idleTimeout: 150 });
  const idle = await client(server.port);
  const busy = await client(server.port);
  idle.send("hi\n");
  assert.equal(await idle.line(), "You sent: 'hi'");
  for (let i = 0; i < 6; i++) {
    busy.send(`tick ${i}\n`);
    assert.equal(await busy.line(), `You sent: 'tick ${i}'`);
    await sleep(50);
  }
  await idle.closed(2000);
  assert.equal(
    idle.received,
    "You sent: 'hi'\nError: connection idle for 150 ms (the server's idleTimeout); closing\n",
  );
  assert.equal(
    busy.received,
    Array.from({ length: 6 }, (_, i) => `You sent: 'tick ${i}'\n`).join(""),
    "no reason line on a connection that is not cut off",
  );
  await eventually(
    () => !listAllProcesses().some((p) => p.name === `talk ${String(idle.socket.localPort)}`),
    2000,
    "the idle connection's process ended",
  );
});

test("a server whose function keeps the raw socket tells an idle connection why too, and the socket closes", async () => {
  const handles: net.Socket[] = [];
  const server = await talkServer({ idleTimeout: 100, function: (handle: net.Socket) => void handles.push(handle) });
  const idle = await client(server.port);
  await idle.closed(2000);
  assert.equal(idle.received, "Error: connection idle for 100 ms (the server's idleTimeout); closing\n");
  idle.end();
  await eventually(
    () => handles[0]?.destroyed === true && server.counters.active === 0,
    2000,
    "the server's socket closed",
  );
  assert.equal(server.counters.timedOut, 1);
});

test("killing a server with 500 open connections frees the port at once and leaves them talking", async () => {
  const server = await talkServer();
  const port = server.port;
  const many = await Promise.all(Array.from({ length: 500 }, () => client(port)));
  await eventually(() => server.counters.active === 500, 10_000, "all 500 connections are taken by the server");
  processKill(server);
  const again = await talkServer({ service: port });
  assert.equal(again.port, port, "the port can be bound again at once");
  await Promise.all(
    many.map(async (c, i) => {
      c.send(`after kill ${i}\n`);
      assert.equal(await c.line(10_000), `You sent: 'after kill ${i}'`);
    }),
  );
  for (const c of many) c.destroy();
});

test("out of file descriptors, the server keeps its port and recovers when descriptors free up", async () => {
  const fixture = fileURLToPath(new URL("../../test/fixtures/talk-server.ts", import.meta.url));
  const child = spawn("prlimit", ["--nofile=64:64", process.execPath, "--import", "tsx", fixture], {
    stdio: ["ignore", "pipe", "inherit"],
  });
  children.push(child);
  let out = "";
  child.stdout.setEncoding("utf8");
  child.stdout.on("data", (text: string) => (out += text));
  await eventually(() => /PORT \d+\n/.test(out), 20_000, "the child server starts");
  const port = Number(/PORT (\d+)/.exec(out)?.[1]);
  // Far more connections than the child has descriptors: the ones it cannot accept are
  // dropped (libuv accepts and closes them), the others are served.
  const held = await Promise.all(Array.from({ length: 100 }, () => client(port)));
  held.forEach((c, i) => c.send(`hold ${i}\n`));
  const answers = await Promise.all(held.map((c) => c.line(3000).catch(() => null)));
  const served = answers.filter((a) => a !== null && a.startsWith("You sent: 'hold")).length;
  assert.ok(served > 0 && served < 100, `some but not all of 100 connections were served (${served})`);
  assert.equal(child.exitCode, null, "the server process is still running");
  for (const c of held) c.destroy();
  // The child frees its descriptors as it sees the connections close: until then a new
  // connection may still be one it cannot accept, so try again until one is served.
  let recovered: string | null = null;
  for (const deadline = Date.now() + 10_000; recovered === null && Date.now() < deadline;) {
    const fresh = await client(port);
    fresh.send("recovered\n");
    recovered = await fresh.line(1000).catch(() => null);
    if (recovered === null) fresh.destroy();
  }
  assert.equal(recovered, "You sent: 'recovered'");
  assert.doesNotMatch(out, /REPORT .*failed/, "no process failed");
});
