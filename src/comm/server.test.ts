import assert from "node:assert/strict";
import { mkdtemp, writeFile } from "node:fs/promises";
import net from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { PassThrough } from "node:stream";
import { after, test } from "node:test";
import { ConfabError, ErrorCodes } from "../errors.js";
import { listAllProcesses } from "../mp/registry.js";
import { kOwner, processKill, processRunFunction, type Process } from "../mp/process.js";
import { kWait } from "../mp/wait-state.js";
import { captureReports, eventually, portOpen, sleep, spyOnSocketTuning, testServers } from "../../test/support.js";
import { makeStreamAndTalk } from "../../examples/talk.js";
import { defaultProcessName, serverTerminate, startUpServer } from "../index.js";
import { resetServicesDatabase } from "./services.js";
import { SocketStream } from "./socket-stream.js";

const { start: talkServer, client } = testServers({ function: makeStreamAndTalk });
after(() => {
  for (const p of listAllProcesses()) if (p.name.startsWith("talk ")) processKill(p);
});

test("the server process carries the bound port and address, on loopback by default", async () => {
  const server = await talkServer();
  assert.ok(server.port > 0);
  assert.equal(server.address, "127.0.0.1");
  assert.equal(server.state, "running");
  assert.ok(listAllProcesses().includes(server));
  const c = await client(server.port);
  c.send("hi\n");
  assert.equal(await c.line(), "You sent: 'hi'");
});

test("a server process's public surface is exactly the documented API: no plumbing is reachable", async () => {
  const server = await talkServer();
  const names = (o: object): string[] => Object.getOwnPropertyNames(o).sort();
  assert.deepEqual(names(server), ["address", "family", "maxConnections", "port"]);
  const tcp = Object.getPrototypeOf(server) as object;
  const base = Object.getPrototypeOf(tcp) as object;
  assert.deepEqual(names(tcp), ["constructor", "counters"]);
  assert.deepEqual(names(base), ["constructor"]);
  // Symbol-keyed: the ProcessResource protocol, and the process's current wait (see mp/wait-state.ts).
  assert.deepEqual(new Set(Object.getOwnPropertySymbols(server)), new Set([kOwner, kWait]));
  assert.equal(Object.getOwnPropertySymbols(tcp).length, 1);
  assert.deepEqual(Object.getOwnPropertySymbols(base), []);
  for (const internal of ["log", "logging", "untilClosed", "countRefused", "socketClosed", "localEnd"]) {
    assert.equal(internal in server, false, internal);
  }
  processKill(server);
});

test('the default process name is Lisp\'s (format nil "~S server" service)', () => {
  assert.equal(defaultProcessName(10243), "10243 server");
  assert.equal(defaultProcessName("confab"), '"confab" server');
  assert.equal(defaultProcessName('we"ird\\'), '"we\\"ird\\\\" server');
});

test("a server started by service name from a services file, alias included, is named after it", async () => {
  const dir = await mkdtemp(join(tmpdir(), "confab-services-"));
  const file = join(dir, "services");
  await writeFile(file, "# test services\nephemeral-talk 0/tcp talk-alias # port 0: the OS picks\n");
  const saved = process.env.CONFAB_SERVICES_FILE;
  process.env.CONFAB_SERVICES_FILE = file;
  resetServicesDatabase();
  try {
    const byName = await talkServer({ service: "ephemeral-talk" });
    assert.equal(byName.name, '"ephemeral-talk" server');
    const byAlias = await talkServer({ service: "talk-alias" });
    assert.equal(byAlias.name, '"talk-alias" server');
    const byNumber = await talkServer({ service: 0 });
    assert.equal(byNumber.name, "0 server");
    const byNumericString = await talkServer({ service: "0", processName: "custom" });
    assert.equal(byNumericString.name, "custom");
  } finally {
    if (saved === undefined) delete process.env.CONFAB_SERVICES_FILE;
    else process.env.CONFAB_SERVICES_FILE = saved;
    resetServicesDatabase();
  }
});

test("a port in use is refused with an error naming the port", async () => {
  const first = await talkServer();
  await assert.rejects(startUpServer({ function: makeStreamAndTalk, service: first.port }), (error: unknown) => {
    assert.ok(error instanceof ConfabError);
    assert.equal(error.code, "EADDRINUSE");
    assert.match(error.message, new RegExp(`127\\.0\\.0\\.1:${first.port} is already in use`));
    assert.match(error.message, new RegExp(`${first.port} server`));
    return true;
  });
});

test("an unknown service is refused with an error naming the service", async () => {
  await assert.rejects(
    startUpServer({ function: makeStreamAndTalk, service: "no-such-service-here" }),
    (error: unknown) => {
      assert.ok(error instanceof ConfabError);
      assert.equal(error.code, ErrorCodes.UNKNOWN_SERVICE);
      assert.match(error.message, /no-such-service-here/);
      return true;
    },
  );
});

test("a bind error is also handed to an announce function", async () => {
  const first = await talkServer();
  const calls: [net.AddressInfo | null, Error | null][] = [];
  await assert.rejects(
    startUpServer({ function: makeStreamAndTalk, service: first.port, announce: (a, e) => calls.push([a, e]) }),
  );
  assert.equal(calls.length, 1);
  const [address, failure] = calls[0] ?? [];
  assert.equal(address, null);
  assert.ok(failure instanceof ConfabError);
  assert.equal(failure.code, "EADDRINUSE");
});

test("announce writes one line naming the process, address and port", async () => {
  const out = new PassThrough();
  let text = "";
  out.on("data", (chunk: Buffer) => (text += chunk.toString()));
  const server = await talkServer({ announce: out, processName: "announced" });
  assert.equal(text, `announced: listening on 127.0.0.1:${server.port}\n`);
  let seen: net.AddressInfo | null = null;
  const other = await talkServer({ announce: (address) => (seen = address) });
  assert.deepEqual(seen, { address: "127.0.0.1", family: "IPv4", port: other.port });
});

test("killing the server frees the port at once; its connection processes live on", async () => {
  const server = await talkServer();
  const port = server.port;
  const c = await client(port);
  c.send("before\n");
  assert.equal(await c.line(), "You sent: 'before'");
  processKill(server);
  assert.equal(server.state, "killed");
  const again = await talkServer({ service: port });
  assert.equal(again.port, port);
  c.send("after\n");
  assert.equal(await c.line(), "You sent: 'after'", "the old connection still talks");
  assert.equal(serverTerminate(again), true);
  assert.equal(serverTerminate(again), false);
  assert.equal(await portOpen(port), false);
});

test("function is called one connection at a time: a slow first call delays the second", async () => {
  const events: string[] = [];
  let release!: () => void;
  const gate = new Promise<void>((resolve) => (release = resolve));
  let calls = 0;
  const server = await talkServer({
    function: async (handle: net.Socket) => {
      const n = ++calls;
      events.push(`start ${n}`);
      if (n === 1) await gate;
      events.push(`end ${n}`);
      makeStreamAndTalk(handle);
    },
  });
  const first = await client(server.port);
  const second = await client(server.port);
  second.send("early bird\n"); // sent while the server is still busy with the first
  await eventually(() => server.counters.waiting === 1, 5000, "the second connection to wait in the queue");
  assert.deepEqual(events, ["start 1"]);
  release();
  assert.equal(await second.line(), "You sent: 'early bird'", "no byte sent early is lost");
  assert.deepEqual(events, ["start 1", "end 1", "start 2", "end 2"]);
  first.send("x\n");
  assert.equal(await first.line(), "You sent: 'x'");
});

test("an error thrown by function is reported and the server keeps serving", async () => {
  const { reports, restore } = captureReports();
  try {
    let calls = 0;
    const server = await talkServer({
      processName: "flaky",
      function: (handle: net.Socket) => {
        calls++;
        if (calls === 1) throw new Error("handler exploded");
        if (calls === 2) return Promise.reject(new Error("handler rejected"));
        makeStreamAndTalk(handle);
        return undefined;
      },
    });
    await client(server.port);
    await client(server.port);
    const good = await client(server.port);
    good.send("still here\n");
    assert.equal(await good.line(), "You sent: 'still here'");
    assert.equal(reports.length, 2);
    assert.match(reports[0]?.what ?? "", /the function of flaky failed/);
    assert.equal(server.counters.errors, 2);
  } finally {
    restore();
  }
});

test("createStream hands function a ready SocketStream", async () => {
  const server = await talkServer({
    createStream: true,
    function: (stream: SocketStream) => {
      processRunFunction(
        "greeter",
        {},
        async (s: SocketStream) => {
          s.writeLine(`hello ${String(await s.readLine())}`);
          s.close();
        },
        stream,
      );
    },
  });
  const c = await client(server.port);
  c.send("world\n");
  assert.equal(await c.line(), "hello world");
  await c.closed();
});

test("killing a connection process gives its client end of file", async () => {
  const server = await talkServer();
  const c = await client(server.port);
  c.send("ping\n");
  assert.equal(await c.line(), "You sent: 'ping'");
  const talker = listAllProcesses().find((p: Process) => p.name === `talk ${c.socket.localPort}`);
  assert.ok(talker, "the connection has its own process, named as in the seed");
  processKill(talker);
  assert.equal(await c.line(), null);
  await c.closed();
});

test("an 8 MB line without newline fails that stream only; memory stays bounded and others are served", async () => {
  const server = await talkServer();
  const bystander = await client(server.port);
  const attacker = await client(server.port);
  const before = process.memoryUsage().arrayBuffers;
  const megabyte = Buffer.alloc(1024 * 1024, 0x61);
  for (let i = 0; i < 8 && !attacker.ended; i++) {
    attacker.socket.write(megabyte);
    await sleep(10);
  }
  await attacker.closed(10_000);
  const grown = process.memoryUsage().arrayBuffers - before;
  // The client's own writes are counted too; what matters is that the 8 MB line was never held.
  assert.ok(grown < 6 * 1024 * 1024, `buffers grew by ${grown} bytes, well under the 8 MB line`);
  bystander.send("still served\n");
  assert.equal(await bystander.line(), "You sent: 'still served'");
});

test("200 concurrent clients each get their lines back once, in order", async () => {
  const server = await talkServer();
  const many = await Promise.all(Array.from({ length: 200 }, () => client(server.port)));
  many.forEach((c, i) => {
    for (let j = 0; j < 5; j++) c.send(`client ${i} line ${j}\n`);
  });
  await Promise.all(
    many.map(async (c, i) => {
      for (let j = 0; j < 5; j++) assert.equal(await c.line(10_000), `You sent: 'client ${i} line ${j}'`);
      c.end();
      assert.equal(await c.line(10_000), null, "nothing more: every line came back exactly once");
    }),
  );
});

test("nodelay and keepalive are set on every accepted socket", async () => {
  const { calls, restore } = spyOnSocketTuning();
  try {
    let accepted = 0;
    const server = await startUpServer({
      service: 0,
      nodelay: true,
      keepalive: 5000,
      function: (socket: net.Socket) => {
        accepted++;
        socket.destroy();
      },
    });
    const client = net.connect(server.port, "127.0.0.1");
    client.on("error", () => undefined);
    await eventually(() => accepted === 1, 2000, "accepted");
    assert.deepEqual(calls, ["nodelay true", "keepalive true 5000"]);
    client.destroy();
    serverTerminate(server);
  } finally {
    restore();
  }
});

test("reusePort lets two servers bind one port where Node supports it, and is refused clearly where it does not", async () => {
  const [major = 0, minor = 0] = process.versions.node.split(".").map(Number);
  const supported = major > 23 || (major === 23 && minor >= 1) || (major === 22 && minor >= 12);
  const probe = net.createServer();
  await new Promise<void>((resolve) => probe.listen(0, "127.0.0.1", resolve));
  const port = (probe.address() as net.AddressInfo).port;
  await new Promise((resolve) => probe.close(resolve));
  const fn = (socket: net.Socket): void => {
    socket.destroy();
  };
  if (!supported) {
    await assert.rejects(
      startUpServer({ service: port, reusePort: true, function: fn }),
      (error: unknown) =>
        error instanceof ConfabError &&
        error.code === ErrorCodes.INVALID_ARGUMENT &&
        /reusePort needs Node 22\.12/.test(error.message),
    );
    return;
  }
  const first = await startUpServer({ service: port, reusePort: true, function: fn });
  const second = await startUpServer({ service: port, reusePort: true, function: fn });
  assert.equal(second.port, first.port);
  serverTerminate(first);
  serverTerminate(second);
});
