// A server's bound on the unread input all its connections hold together (maxBufferedInput),
// over real loopback sockets: many peers each holding an unfinished line no longer add up to
// gigabytes; the connection holding the most is dropped first, told why in one line, counted
// and logged, and every other connection, a well-behaved client's included, is served on.
import assert from "node:assert/strict";
import net from "node:net";
import { after, test } from "node:test";
import v8 from "node:v8";
import vm from "node:vm";
import { makeStreamAndTalk } from "../examples/talk.js";
import {
  ConfabError,
  ErrorCodes,
  listAllProcesses,
  processKill,
  serverTerminate,
  startUpServer,
  type ServerEvent,
  type ServerProcess,
  type SocketStream,
} from "../src/index.js";
import { captureReports, eventually, LineClient } from "./support.js";

const MiB = 1024 * 1024;

const servers: ServerProcess[] = [];
const sockets = new Set<net.Socket>();
const reports = captureReports();
after(() => {
  reports.restore();
  for (const s of servers) serverTerminate(s);
  for (const s of sockets) s.destroy();
  for (const p of listAllProcesses()) if (p.name.startsWith("talk ")) processKill(p);
});

/** A full garbage collection: `global.gc` under --expose-gc, else the V8 flag set at run time. */
const collectGarbage: () => void = (() => {
  const exposed = (globalThis as { gc?: () => void }).gc;
  if (exposed !== undefined) return exposed;
  v8.setFlagsFromString("--expose-gc");
  return vm.runInNewContext("gc") as () => void;
})();

/** Bytes of buffers alive after two full collections, a turn of the event loop apart so freed buffers are swept. */
async function settledBuffers(): Promise<number> {
  collectGarbage();
  await new Promise((resolve) => setImmediate(resolve));
  collectGarbage();
  return process.memoryUsage().arrayBuffers;
}

/** A raw peer: sends with backpressure, keeps what the server sends, knows when the server ended. */
class Peer {
  readonly socket: net.Socket;
  received = "";
  ended = false;
  sent = 0;

  private constructor(socket: net.Socket) {
    this.socket = socket;
    socket.setEncoding("latin1");
    socket.on("data", (text: string) => (this.received += text));
    socket.on("end", () => (this.ended = true));
    socket.on("close", () => (this.ended = true));
    socket.on("error", () => (this.ended = true));
  }

  static connect(port: number): Promise<Peer> {
    return new Promise((resolve, reject) => {
      const socket = net.connect({ port, host: "127.0.0.1", allowHalfOpen: true }, () => {
        socket.off("error", reject);
        resolve(new Peer(socket));
      });
      sockets.add(socket);
      socket.once("error", reject);
    });
  }

  /** Sends `count` bytes of `x` and no newline, as fast as the server takes them; stops early if the server ends the connection. */
  async sendUnfinished(count: number): Promise<void> {
    const block = Buffer.alloc(64 * 1024, "x");
    while (this.sent < count && !this.ended && !this.socket.destroyed) {
      const piece = block.subarray(0, Math.min(block.length, count - this.sent));
      this.sent += piece.length;
      if (!this.socket.write(piece)) {
        await new Promise<void>((resolve) => {
          const done = (): void => {
            this.socket.off("drain", done);
            this.socket.off("close", done);
            this.socket.off("end", done);
            resolve();
          };
          this.socket.on("drain", done);
          this.socket.on("close", done);
          this.socket.on("end", done);
        });
      }
    }
  }
}

const DROPPED_LINE =
  /^Error: the server held (\d+) bytes of unread input, over its maxBufferedInput of (\d+), and this connection the most \((\d+) bytes\); closing\n$/;

void test("many connections with unfinished 1 MB lines: the server holds at most maxBufferedInput, drops the largest with one line, and serves the rest", async (t) => {
  const budget = 8 * MiB;
  const events: ServerEvent[] = [];
  const server = await startUpServer({
    function: makeStreamAndTalk,
    service: 0,
    maxBufferedInput: budget,
    logger: (e) => events.push(e),
  });
  servers.push(server);
  const baseline = await settledBuffers();
  // 48 peers x 1,000,000 bytes: six times the budget. Before the budget, the server held all of it.
  const count = 48;
  const peers = await Promise.all(Array.from({ length: count }, () => Peer.connect(server.port)));
  await Promise.all(peers.map((p) => p.sendUnfinished(1_000_000)));
  const dropped = (): Peer[] => peers.filter((p) => DROPPED_LINE.test(p.received) && p.ended);
  // Once the server has read every byte sent (a dropped connection's rest is read and
  // discarded), every decision is made: the budget acts as each chunk comes in.
  const sent = peers.reduce((sum, p) => sum + p.sent, 0);
  await eventually(() => server.counters.bytesIn >= sent, 10_000, `the server read the ${sent} bytes sent`);
  // And each connection the server dropped has had its line and its end of file.
  await eventually(
    () => dropped().length === server.counters.dropped && peers.every((p) => !p.ended || DROPPED_LINE.test(p.received)),
    5000,
    "every connection the server dropped got its line and its end of file",
  );
  const retained = (await settledBuffers()) - baseline;
  const kept = peers.filter((p) => !p.ended);
  t.diagnostic(
    `${count} x 1,000,000 unfinished bytes, maxBufferedInput ${budget}: ${dropped().length} dropped, ${kept.length} kept; buffers retained ${(retained / MiB).toFixed(1)} MiB`,
  );
  assert.ok(
    retained < budget + 6 * MiB,
    `buffers retained ${(retained / MiB).toFixed(1)} MiB (bound: the 8 MiB budget + 6 MiB)`,
  );
  assert.ok(kept.length >= 1 && kept.length <= 8, `at most 8 whole lines of 1 MB fit in 8 MiB: ${kept.length} kept`);
  // Each dropped connection got exactly the one line, naming the budget and what it held; nothing else.
  for (const p of dropped()) {
    const m = DROPPED_LINE.exec(p.received) as RegExpExecArray;
    assert.equal(Number(m[2]), budget);
    assert.ok(Number(m[1]) > budget && Number(m[3]) > 0 && Number(m[3]) <= 1_000_000, p.received);
  }
  assert.equal(dropped().length + kept.length, count, "a connection is either dropped with its line, or kept");
  // Counted and logged once per dropped connection.
  assert.equal(server.counters.dropped, dropped().length);
  const logged = events.filter((e) => e.event === "dropped");
  assert.equal(logged.length, dropped().length);
  assert.match(
    (logged[0] as { reason: string }).reason,
    /^maxBufferedInput 8388608: held \d+ of the \d+ bytes of unread input, the most of any connection$/,
  );
  // The talk processes of the dropped connections failed with the budget's error.
  await eventually(
    () =>
      reports.reports.filter((r) => r.error instanceof ConfabError && r.error.code === ErrorCodes.INPUT_BUDGET)
        .length === dropped().length,
    5000,
    "every dropped talk process reported ERR_INPUT_BUDGET",
  );
  // The kept connections are served: their lines end and come back whole.
  for (const p of kept.slice(0, 2)) {
    p.socket.write("\n");
    await eventually(() => p.received.endsWith("'\n"), 5000, "the kept connection's 1 MB line echoed");
    assert.equal(p.received, `You sent: '${"x".repeat(1_000_000)}'\n`);
  }
  // And so is a well-behaved client.
  const c = await LineClient.connect(server.port);
  c.send("hello\n");
  assert.equal(await c.line(), "You sent: 'hello'");
  c.destroy();
});

void test("the connection holding the most is dropped, not the one whose input passed the budget, and only as many as needed", async () => {
  const streams: SocketStream[] = [];
  const failures = new Map<SocketStream, unknown>();
  const server = await startUpServer({
    service: 0,
    createStream: true,
    maxBufferedInput: 1_000_000,
    function: (stream) => {
      streams.push(stream);
      void (async () => {
        try {
          for (let line; (line = await stream.readLine()) !== null;) {
            stream.writeLine(`got ${line.length}`);
            stream.forceOutput();
          }
        } catch (error) {
          failures.set(stream, error);
        }
      })();
    },
  });
  servers.push(server);
  const streamOf = (p: Peer): SocketStream | undefined => streams.find((s) => s.remotePort === p.socket.localPort);
  /** A peer that has sent `bytes` of an unfinished line, all of it read by the server. */
  const holding = async (bytes: number): Promise<Peer> => {
    const p = await Peer.connect(server.port);
    await p.sendUnfinished(bytes);
    await eventually(() => streamOf(p)?.bytesRead === bytes, 5000, `the server read all ${bytes} bytes`);
    return p;
  };
  const big = await holding(600_000);
  const middle = await holding(200_000);
  const small = await holding(100_000);
  assert.equal(server.counters.dropped, 0, "900,000 bytes are within the budget");
  // 200,000 more pass the budget of 1,000,000: the 600,000-byte holder goes, and that is enough.
  const last = await holding(200_000);
  await eventually(() => big.ended, 5000, "the largest holder is dropped");
  const m = DROPPED_LINE.exec(big.received);
  assert.ok(m !== null, `one line saying why: ${JSON.stringify(big.received)}`);
  // Dropped at the chunk that passed the budget, before the rest of the last peer's bytes came.
  assert.deepEqual([Number(m[2]), Number(m[3])], [1_000_000, 600_000]);
  assert.ok(Number(m[1]) > 1_000_000 && Number(m[1]) <= 1_100_000, m[1]);
  const error = failures.get(streamOf(big) as SocketStream);
  assert.ok(error instanceof ConfabError && error.code === ErrorCodes.INPUT_BUDGET, String(error));
  assert.match(error.message, /^input from 127\.0\.0\.1:\d+ dropped: the server held 1\d{6} bytes of unread input/);
  assert.equal(server.counters.dropped, 1);
  // The others were not touched, and finish their lines.
  for (const [p, bytes] of [
    [middle, 200_000],
    [small, 100_000],
    [last, 200_000],
  ] as const) {
    assert.equal(p.ended, false);
    p.socket.write("\n");
    await eventually(() => p.received === `got ${bytes}\n`, 5000, `the ${bytes}-byte line answered`);
  }
  assert.equal(failures.size, 1);
});

void test("maxBufferedInput must be a non-negative number of bytes; 0 and Infinity mean no bound", async () => {
  for (const bad of [-1, Number.NaN, "64" as unknown as number]) {
    await assert.rejects(startUpServer({ function: makeStreamAndTalk, service: 0, maxBufferedInput: bad }), {
      code: ErrorCodes.INVALID_ARGUMENT,
      message: /^maxBufferedInput must be a non-negative number of bytes \(0 or Infinity: no bound\), got /,
    });
  }
  for (const none of [0, Infinity]) {
    const server = await startUpServer({ function: makeStreamAndTalk, service: 0, maxBufferedInput: none });
    servers.push(server);
    // Two unfinished lines of 600,000 bytes: over a budget of 1,000,000, within none.
    const peers = await Promise.all([Peer.connect(server.port), Peer.connect(server.port)]);
    await Promise.all(peers.map((p) => p.sendUnfinished(600_000)));
    await eventually(() => server.counters.bytesIn === 1_200_000, 5000, "the server read both lines");
    for (const p of peers) {
      p.socket.write("\n");
      await eventually(() => p.received.length === 600_000 + "You sent: ''\n".length, 5000, "the line echoed");
    }
    assert.equal(server.counters.dropped, 0);
  }
});
