import assert from "node:assert/strict";
import net from "node:net";
import { Duplex } from "node:stream";
import { after, test } from "node:test";
import fc from "fast-check";
import { ErrorCodes } from "../errors.js";
import { kKill, kOwner, processJoin, processKill, processRunFunction } from "../mp/process.js";
import { kWaitText } from "../mp/wait-state.js";
import { expectedReads, readOpArbitrary, runsArbitrary, runsBytes } from "../../test/framing-reference.js";
import { eventually, sleep, testServers } from "../../test/support.js";
import { SocketStream } from "./socket-stream.js";

/** A socket stand-in whose input arrives in exactly the chunks a test chooses. */
function chunkedSocket(): { socket: net.Socket; push: (chunk: Buffer | null) => void; written: Buffer[] } {
  const written: Buffer[] = [];
  const duplex = new Duplex({
    read() {
      // chunks are pushed by the test
    },
    write(chunk: Buffer, _encoding, callback) {
      written.push(Buffer.from(chunk));
      callback();
    },
  });
  return { socket: duplex as unknown as net.Socket, push: (chunk) => duplex.push(chunk), written };
}

/** A connected pair of real loopback sockets: `server` is the accepted end. */
async function socketPair(): Promise<{ client: net.Socket; server: net.Socket }> {
  const listener = net.createServer({ allowHalfOpen: true, pauseOnConnect: true });
  await new Promise<void>((resolve) => listener.listen(0, "127.0.0.1", resolve));
  const accepted = new Promise<net.Socket>((resolve) => listener.once("connection", resolve));
  const client = net.connect({
    port: (listener.address() as net.AddressInfo).port,
    host: "127.0.0.1",
    allowHalfOpen: true,
  });
  const server = await accepted;
  await new Promise<void>((resolve) => (client.connecting ? client.once("connect", resolve) : resolve()));
  listener.close();
  sockets.push(client, server);
  return { client, server };
}
const sockets: net.Socket[] = [];
after(() => {
  for (const s of sockets) s.destroy();
});

async function readAllLines(stream: SocketStream): Promise<string[]> {
  const lines: string[] = [];
  for (let line; (line = await stream.readLine()) !== null;) lines.push(line);
  return lines;
}

test("readLine returns lines without LF or CRLF, then null at end of file", async () => {
  const { socket, push } = chunkedSocket();
  const stream = new SocketStream({ socket });
  push(Buffer.from("one\ntwo\r\n\nthree\r\n"));
  push(null);
  assert.deepEqual(await readAllLines(stream), ["one", "two", "", "three"]);
  assert.equal(await stream.readLine(), null, "end of file stays end of file");
});

test("listen() tells whether input is already here, as Lisp's listen: a paste, not a person typing", async () => {
  const { client, server } = await socketPair();
  const stream = new SocketStream({ socket: server });
  assert.equal(stream.listen(), false);
  client.write("one\ntwo\n");
  assert.equal(await stream.readLine(), "one");
  assert.equal(stream.listen(), true, "the second line came with the first");
  assert.equal(await stream.readLine(), "two");
  assert.equal(stream.listen(), false);
  client.end();
  assert.equal(await stream.readLine(), null);
  assert.equal(stream.listen(), false, "end of file is not input");
  stream.close();
});

test("readLine returns a last line without newline before null", async () => {
  const { socket, push } = chunkedSocket();
  const stream = new SocketStream({ socket });
  push(Buffer.from("first\nlast without newline"));
  push(null);
  assert.deepEqual(await readAllLines(stream), ["first", "last without newline"]);
});

test("readLine waits for a line split across chunks, including a CRLF split between them", async () => {
  const { socket, push } = chunkedSocket();
  const stream = new SocketStream({ socket });
  const pending = stream.readLine();
  push(Buffer.from("hel"));
  await sleep(1);
  push(Buffer.from("lo\r"));
  await sleep(1);
  push(Buffer.from("\nnext\n"));
  assert.equal(await pending, "hello");
  assert.equal(await stream.readLine(), "next");
});

test("readLine decodes UTF-8 characters split across packets", async () => {
  const { socket, push } = chunkedSocket();
  const stream = new SocketStream({ socket });
  const bytes = Buffer.from("zwölf € 🎉\n");
  for (const b of bytes) push(Buffer.from([b]));
  assert.equal(await stream.readLine(), "zwölf € 🎉");
});

// The framing itself (chunk boundaries, the decoded window, UTF-8 split across chunks, the line
// limit) is tested on LineFramer directly, in line-framing.test.ts; this checks the stream
// composes it: reads that wait for input, and input that arrives while a read waits.
test("property, end to end: reads match the framing reference over any chunking, in both element types", async () => {
  await fc.assert(
    fc.asyncProperty(
      runsArbitrary,
      fc.array(readOpArbitrary, { maxLength: 30 }),
      fc.array(fc.integer({ min: 1, max: 3000 }), { minLength: 1, maxLength: 10 }),
      fc.boolean(),
      async (runs, ops, chunkSizes, baseChar) => {
        const encoding = baseChar ? "latin1" : "utf8";
        const bytes = runsBytes(runs, encoding);
        const { socket, push } = chunkedSocket();
        const stream = new SocketStream({ socket, elementType: baseChar ? "base-char" : "character" });
        const reading = (async () => {
          const got: (string | Buffer | null)[] = [];
          for (const op of ops)
            got.push(
              await (op.kind === "line"
                ? stream.readLine()
                : op.kind === "char"
                  ? stream.readChar()
                  : stream.readBytes(op.count)),
            );
          return got;
        })();
        for (let at = 0, i = 0; at < bytes.length; i++) {
          const size = chunkSizes[i % chunkSizes.length] as number;
          push(bytes.subarray(at, at + size));
          at += size;
          await Promise.resolve();
        }
        push(null);
        assert.deepEqual(await reading, expectedReads(bytes, ops, encoding));
      },
    ),
    { numRuns: 100 },
  );
});

test("a line longer than maxLineLength fails the stream's input, and it stays failed", async () => {
  const { socket, push } = chunkedSocket();
  const stream = new SocketStream({ socket, maxLineLength: 4 });
  const waiting = stream.readLine();
  push(Buffer.from("abcd\nabc"));
  assert.equal(await waiting, "abcd");
  const failing = stream.readLine();
  push(Buffer.from("de"));
  await assert.rejects(failing, { code: ErrorCodes.LINE_TOO_LONG, message: /longer than 4 bytes \(maxLineLength\)/ });
  push(Buffer.from("\nafter\n"));
  await assert.rejects(stream.readLine(), { code: ErrorCodes.LINE_TOO_LONG }, "the input side stays failed");
  assert.equal(stream.listen(), false, "what was buffered is dropped");
});

test("readChar reads whole characters, multi-byte ones too, then null", async () => {
  const { socket, push } = chunkedSocket();
  const stream = new SocketStream({ socket });
  const bytes = Buffer.from("aé🎉");
  for (const b of bytes) push(Buffer.from([b]));
  push(null);
  assert.equal(await stream.readChar(), "a");
  assert.equal(await stream.readChar(), "é");
  assert.equal(await stream.readChar(), "🎉");
  assert.equal(await stream.readChar(), null);
});

test("readChar turns an invalid byte into U+FFFD and goes on with the next", async () => {
  const { socket, push } = chunkedSocket();
  const stream = new SocketStream({ socket });
  push(Buffer.from([0xe2, 0x28, 0x41]));
  push(null);
  assert.equal(await stream.readChar(), "\ufffd");
  assert.equal(await stream.readChar(), "(");
  assert.equal(await stream.readChar(), "A");
});

test("readBytes returns exactly the bytes asked for, across chunks, and fewer at end of file", async () => {
  const { socket, push } = chunkedSocket();
  const stream = new SocketStream({ socket });
  push(Buffer.from([1, 2, 3]));
  const pending = stream.readBytes(5);
  push(Buffer.from([4, 5, 6, 7]));
  assert.deepEqual([...((await pending) ?? [])], [1, 2, 3, 4, 5]);
  push(null);
  assert.deepEqual([...((await stream.readBytes(10)) ?? [])], [6, 7]);
  assert.equal(await stream.readBytes(1), null);
});

test("byte and line reads interleave on the same buffer", async () => {
  const { socket, push } = chunkedSocket();
  const stream = new SocketStream({ socket });
  push(Buffer.from("AB line one\nrest\n"));
  assert.deepEqual([...((await stream.readBytes(3)) ?? [])], [65, 66, 32]);
  assert.equal(await stream.readLine(), "line one");
  assert.equal(await stream.readChar(), "r");
  assert.equal(await stream.readLine(), "est");
});

test("base-char streams decode one byte per character", async () => {
  const { socket, push } = chunkedSocket();
  const stream = new SocketStream({ socket, elementType: "base-char" });
  push(Buffer.from([0x63, 0x61, 0x66, 0xe9, 0x0a]));
  assert.equal(await stream.readLine(), "café");
});

test("for await iterates over lines until end of file", async () => {
  const { socket, push } = chunkedSocket();
  const stream = new SocketStream({ socket });
  push(Buffer.from("a\nb\nc"));
  push(null);
  const lines: string[] = [];
  for await (const line of stream) lines.push(line);
  assert.deepEqual(lines, ["a", "b", "c"]);
});

test("a second read while one is pending is refused", async () => {
  const { socket, push } = chunkedSocket();
  const stream = new SocketStream({ socket });
  const first = stream.readLine();
  await assert.rejects(stream.readLine(), { code: ErrorCodes.READ_IN_PROGRESS });
  push(Buffer.from("x\n"));
  assert.equal(await first, "x");
});

test("output waits for forceOutput and a burst of forced writes becomes one write", async () => {
  const { socket, written } = chunkedSocket();
  const stream = new SocketStream({ socket });
  stream.writeString("a");
  stream.writeLine("b");
  await sleep(1);
  assert.equal(written.length, 0, "nothing is sent before forceOutput");
  for (let i = 0; i < 10; i++) {
    stream.writeLine(String(i));
    stream.forceOutput();
  }
  await sleep(1);
  assert.equal(written.length, 1);
  assert.equal(Buffer.concat(written).toString(), "ab\n0\n1\n2\n3\n4\n5\n6\n7\n8\n9\n");
});

test("write sends bytes in order with text around them", async () => {
  const { socket, written } = chunkedSocket();
  const stream = new SocketStream({ socket });
  stream.writeString("<");
  stream.write(new Uint8Array([0, 255]));
  stream.writeString(">");
  await stream.finishOutput();
  assert.deepEqual([...Buffer.concat(written)], [60, 0, 255, 62]);
});

test("direction input refuses writes and direction output refuses reads", async () => {
  const input = new SocketStream({ socket: chunkedSocket().socket, direction: "input" });
  assert.throws(() => input.writeString("x"), { code: ErrorCodes.WRONG_DIRECTION });
  const output = new SocketStream({ socket: chunkedSocket().socket, direction: "output" });
  await assert.rejects(output.readLine(), { code: ErrorCodes.WRONG_DIRECTION });
});

test("bad options are refused with a clear error", () => {
  assert.throws(() => new SocketStream({ socket: chunkedSocket().socket, maxLineLength: -1 }), {
    code: ErrorCodes.INVALID_ARGUMENT,
    message: /maxLineLength/,
  });
  const wrong = { socket: chunkedSocket().socket, direction: "in" } as unknown as ConstructorParameters<
    typeof SocketStream
  >[0];
  assert.throws(() => new SocketStream(wrong), {
    code: ErrorCodes.INVALID_ARGUMENT,
    message: /direction must be "io", "input" or "output", got "in"/,
  });
  const latin = { socket: chunkedSocket().socket, elementType: "latin1" } as unknown as ConstructorParameters<
    typeof SocketStream
  >[0];
  assert.throws(() => new SocketStream(latin), {
    code: ErrorCodes.INVALID_ARGUMENT,
    message: /elementType must be "character" or "base-char", got "latin1"/,
  });
});

test("close settles a pending read with null and later reads reject", async () => {
  const { server } = await socketPair();
  const stream = new SocketStream({ socket: server });
  const pending = stream.readLine();
  stream.close();
  assert.equal(await pending, null);
  await assert.rejects(stream.readLine(), { code: ErrorCodes.STREAM_CLOSED });
  assert.throws(() => stream.writeString("x"), { code: ErrorCodes.STREAM_CLOSED });
  stream.close();
});

test("over real sockets: addresses are readable and stay readable after close", async () => {
  const { client, server } = await socketPair();
  const stream = new SocketStream({ socket: server });
  assert.equal(stream.localAddress, "127.0.0.1");
  assert.equal(stream.remoteAddress, "127.0.0.1");
  assert.equal(stream.remotePort, client.localPort);
  assert.equal(stream.localPort, client.remotePort);
  stream.close({ abort: true });
  assert.equal(stream.remotePort, client.localPort);
  assert.equal(stream.localAddress, "127.0.0.1");
});

test("over real sockets: the peer reads end of file after close, with the output sent first", async () => {
  const { client, server } = await socketPair();
  const stream = new SocketStream({ socket: server });
  const peer = new SocketStream({ socket: client });
  stream.writeLine("bye");
  stream.close();
  assert.equal(await peer.readLine(), "bye");
  assert.equal(await peer.readLine(), null);
  peer.close();
});

test("over real sockets: a read times out after readTimeout and the stream stays usable", async () => {
  const { client, server } = await socketPair();
  const stream = new SocketStream({ socket: server, readTimeout: 50 });
  const started = Date.now();
  await assert.rejects(stream.readLine(), { code: ErrorCodes.READ_TIMEOUT, message: /50 ms/ });
  assert.ok(Date.now() - started >= 45);
  client.write("late\n");
  assert.equal(await stream.readLine(), "late");
  stream.close({ abort: true });
});

test("readTimeout set on a live stream applies to the read already waiting, counted from the set", async () => {
  const { client, server } = await socketPair();
  const stream = new SocketStream({ socket: server, readTimeout: 40 });
  const other = new SocketStream({ socket: chunkedSocket().socket, readTimeout: 40 });
  assert.equal(stream.readTimeout, 40);
  const started = Date.now();
  const pending = stream.readLine();
  stream.readTimeout = 300;
  await assert.rejects(pending, { code: ErrorCodes.READ_TIMEOUT, message: /300 ms/ });
  assert.ok(Date.now() - started >= 280, "the old 40 ms limit no longer counts");
  assert.equal(other.readTimeout, 40, "streams made with the same options keep their own limit");
  stream.readTimeout = undefined;
  assert.equal(stream.readTimeout, undefined);
  const waiting = stream.readLine();
  stream.readTimeout = 30;
  stream.readTimeout = 0; // lifted before it could fire: the read waits for the peer
  client.write("late\n");
  assert.equal(await waiting, "late");
  assert.throws(
    () => {
      stream.readTimeout = -1;
    },
    { code: ErrorCodes.INVALID_ARGUMENT, message: /readTimeout/ },
  );
  stream.close({ abort: true });
  other.close({ abort: true });
});

test("writeTimeout set on a live stream bounds the finishOutput calls after it", async () => {
  const { client, server } = await socketPair();
  const stream = new SocketStream({ socket: server });
  assert.equal(stream.writeTimeout, undefined);
  client.pause();
  stream.writeTimeout = 60;
  assert.equal(stream.writeTimeout, 60);
  const chunk = "w".repeat(1024 * 1024);
  await assert.rejects(
    (async () => {
      for (let i = 0; i < 64; i++) {
        stream.writeString(chunk);
        await stream.finishOutput();
      }
    })(),
    { code: ErrorCodes.WRITE_TIMEOUT, message: /60 ms/ },
  );
  stream.close({ abort: true });
});

test('over real sockets: shutdown("output") sends end of file and the stream reads the peer\'s answer', async () => {
  const { client, server } = await socketPair();
  const ours = new SocketStream({ socket: client });
  const theirs = new SocketStream({ socket: server });
  ours.writeLine("request");
  ours.shutdown("output");
  assert.throws(
    () => {
      ours.writeString("more");
    },
    { code: ErrorCodes.WRONG_DIRECTION, message: /shut down/ },
  );
  await ours.finishOutput(); // resolves: what was written is with the OS
  ours.shutdown("output"); // twice: nothing more happens
  assert.deepEqual(await readAllLines(theirs), ["request"], "the peer read our end of file");
  theirs.writeLine("reply");
  theirs.close();
  assert.equal(await ours.readLine(), "reply", "our input side is still open");
  assert.equal(await ours.readLine(), null);
  ours.close();
  await eventually(() => client.destroyed && server.destroyed);
});

test('over real sockets: shutdown("input") gives reads end of file and drops what the peer still sends, while writes go on', async () => {
  const { client, server } = await socketPair();
  const stream = new SocketStream({ socket: server });
  const peer = new SocketStream({ socket: client });
  peer.writeLine("read");
  peer.forceOutput();
  assert.equal(await stream.readLine(), "read");
  const pending = stream.readLine();
  stream.shutdown("input");
  assert.equal(await pending, null, "a waiting read settles with end of file");
  peer.writeLine("unread");
  peer.writeString("x".repeat(256 * 1024)); // more than the stream would buffer unread
  await peer.finishOutput();
  await eventually(() => stream.bytesRead >= 256 * 1024, 5000, "the stream reads on, so the peer is never stuck");
  assert.equal(stream.listen(), false, "what came after the shutdown was dropped");
  assert.equal(await stream.readLine(), null);
  stream.writeLine("still talking");
  stream.forceOutput();
  assert.equal(await peer.readLine(), "still talking");
  stream.shutdown(); // "io": the output side too
  assert.equal(await peer.readLine(), null);
  assert.throws(
    () => {
      stream.shutdown("sideways" as "io");
    },
    { code: ErrorCodes.INVALID_ARGUMENT, message: /sideways/ },
  );
  peer.close();
  stream.close();
  stream.shutdown(); // closed: nothing to do
});

test("over real sockets: finishOutput waits for a slow reader instead of buffering without bound", async () => {
  const { client, server } = await socketPair();
  const stream = new SocketStream({ socket: server });
  client.pause();
  const chunk = "z".repeat(64 * 1024);
  let finished = false;
  const writer = (async () => {
    for (let i = 0; i < 200; i++) {
      stream.writeString(chunk);
      await stream.finishOutput();
    }
    finished = true;
  })();
  await sleep(100);
  assert.equal(finished, false, "13 MB cannot all be taken by the OS while the reader sleeps");
  assert.ok(server.writableLength <= 256 * 1024, `queued output stays small (${server.writableLength} bytes)`);
  client.resume();
  await writer;
  assert.equal(finished, true);
  stream.close({ abort: true });
});

test("over real sockets: a reader that echoes stops taking input while the peer does not read", async () => {
  const { client, server } = await socketPair();
  const stream = new SocketStream({ socket: server });
  const echo = (async () => {
    for (let line; (line = await stream.readLine()) !== null;) {
      stream.writeLine(line);
      stream.forceOutput();
    }
  })();
  client.pause();
  const line = "w".repeat(1000) + "\n";
  let accepted = 0;
  for (let i = 0; i < 50_000 && client.write(line); i++) accepted++;
  await sleep(200);
  assert.ok(server.writableLength < 8 * 1024 * 1024, `server output stays bounded (${server.writableLength} bytes)`);
  client.destroy();
  await echo;
  assert.ok(accepted < 50_000);
});

test("over real sockets: a peer reset ends reads with end of file, not an error", async () => {
  const { client, server } = await socketPair();
  const stream = new SocketStream({ socket: server });
  client.write("whole\npartial");
  await eventually(() => server.bytesRead > 0);
  client.resetAndDestroy();
  assert.equal(await stream.readLine(), "whole");
  assert.equal(await stream.readLine(), null);
});

test("a stream made inside a process is closed when the process is killed", async () => {
  const { client, server } = await socketPair();
  let stream: SocketStream | undefined;
  const p = processRunFunction("owner of stream", {}, async () => {
    stream = new SocketStream({ socket: server });
    await stream.readLine();
  });
  await eventually(() => stream !== undefined);
  processKill(p);
  assert.equal(stream?.closed, true);
  const peer = new SocketStream({ socket: client });
  assert.equal(await peer.readLine(), null, "the peer reads end of file");
  assert.equal(await processJoin(p, { timeout: 1000 }), true);
});

test("a stream made outside any process belongs to the first process that reads it", async () => {
  const { server } = await socketPair();
  const stream = new SocketStream({ socket: server });
  const p = processRunFunction("first reader", {}, () => stream.readLine());
  await sleep(5);
  processKill(p);
  assert.equal(stream.closed, true);
});

/** Everything `socket` sends until it ends, as text. */
function readToEnd(socket: net.Socket): Promise<string> {
  return new Promise((resolve, reject) => {
    let text = "";
    socket.setEncoding("utf8");
    socket.on("data", (chunk: string) => (text += chunk));
    socket.once("end", () => {
      resolve(text);
    });
    socket.once("error", reject);
  });
}

test("close with a reason sends the buffered output, then one line Error: <reason> with its controls escaped, then end of file", async () => {
  const { client, server } = await socketPair();
  const received = readToEnd(client);
  const stream = new SocketStream({ socket: server });
  stream.writeString("buffered, not forced\n");
  stream.close({ reason: 'session killed (process 7 "evil\tname\u202e\nCL-USER 1 > " was killed)' });
  assert.equal(
    await received,
    'buffered, not forced\nError: session killed (process 7 "evil\\tname\\u202e\\nCL-USER 1 > " was killed)\n',
  );
});

test("over maxOutputBuffer, a client that does not read gets, once it reads again, what was queued and then one line saying why", async () => {
  const { client, server } = await socketPair();
  client.pause();
  const limit = 64 * 1024;
  const stream = new SocketStream({ socket: server, maxOutputBuffer: limit });
  const line = "x".repeat(16 * 1024 - 1);
  let failure: unknown;
  let written = 0;
  const writer = processRunFunction("writer to a client that does not read", {}, async () => {
    const pending = stream.readLine().then(
      () => undefined,
      (error: unknown) => error,
    ); // a pending read fails too
    try {
      // Far past what the kernel buffers on loopback: the rest waits in the stream's socket.
      for (let i = 0; i < 10_000; i++) {
        stream.writeLine(line);
        stream.forceOutput();
        written++;
        await new Promise(setImmediate);
      }
    } catch (error) {
      failure = error;
    }
    assert.equal(((await pending) as { code?: unknown } | undefined)?.code, ErrorCodes.OUTPUT_BUFFER_FULL);
  });
  assert.equal(await processJoin(writer, { timeout: 10_000 }), true, "the writer stopped");
  assert.equal(writer.state, "finished", String(writer.error));
  assert.equal((failure as { code?: unknown } | undefined)?.code, ErrorCodes.OUTPUT_BUFFER_FULL);
  const received = readToEnd(client);
  client.resume();
  const lines = (await received).split("\n");
  assert.equal(lines.pop(), "", "the last line ends with a newline, then end of file");
  assert.equal(
    lines.pop(),
    `Error: output buffer over ${limit} bytes (maxOutputBuffer; the client is not reading); closing`,
  );
  assert.ok(
    lines.length > 0 && lines.length <= written && lines.every((l) => l === line),
    "before it, whole lines of what was queued",
  );
});

test("a stream's public surface is exactly the documented API: no plumbing is reachable from outside", () => {
  const stream = new SocketStream({ socket: chunkedSocket().socket });
  const names = (o: object): string[] => Object.getOwnPropertyNames(o).sort();
  assert.deepEqual(names(stream), ["remoteAddress", "remotePort"]);
  assert.deepEqual(
    names(SocketStream.prototype),
    [
      "bytesRead",
      "bytesWritten",
      "close",
      "closed",
      "constructor",
      "direction",
      "elementType",
      "finishOutput",
      "forceOutput",
      "listen",
      "localAddress",
      "localPort",
      "readBytes",
      "readChar",
      "readLine",
      "readTimeout",
      "shutdown",
      "socket",
      "write",
      "writeLine",
      "writeString",
      "writeTimeout",
    ].sort(),
  );
  // Symbol-keyed: the ProcessResource protocol (kOwner, kKill) and `for await`.
  assert.deepEqual(Object.getOwnPropertySymbols(stream), [kOwner]);
  assert.deepEqual(
    new Set(Object.getOwnPropertySymbols(SocketStream.prototype)),
    new Set([Symbol.asyncIterator, kKill, kWaitText]),
  );
  assert.deepEqual(names(SocketStream), ["length", "name", "prototype"], "no static members");
  stream.close({ abort: true });
});

const { start: closingServer, client: halfOpenClient } = testServers({
  // Says bye and closes at once; the test's client never closes its side (it is half-open).
  function: (socket: net.Socket) => {
    const stream = new SocketStream({ socket });
    stream.writeLine("bye");
    stream.close();
  },
});

test("a stream's close linger has a timer of its own: the server's idleTimeout keeps its length and its meaning while the stream closes", async () => {
  // The stream waits up to 5 s for the peer's end of file. Idle for 1.5 s, the first server's
  // connection is ended by idleTimeout then (not at 5 s); the second's idle limit (8 s) is
  // longer than the linger, which drops the connection at 5 s, and is not a time-out.
  const short = await closingServer({ idleTimeout: 1500 });
  const long = await closingServer({ idleTimeout: 8000 });
  const started = Date.now();
  const shortPeer = await halfOpenClient(short.port);
  const longPeer = await halfOpenClient(long.port);
  assert.equal(await shortPeer.line(), "bye");
  assert.equal(await longPeer.line(), "bye");
  await eventually(() => short.counters.active === 0, 4500, "the idle connection was dropped");
  const shortAfter = Date.now() - started;
  assert.ok(shortAfter >= 1400 && shortAfter < 4000, `dropped after ${shortAfter} ms, not after idleTimeout's 1500`);
  assert.equal(short.counters.timedOut, 1, "idle, and counted so");
  await eventually(() => long.counters.active === 0, 7000, "the lingering connection was dropped");
  const longAfter = Date.now() - started;
  assert.ok(longAfter >= 4900 && longAfter < 7500, `dropped after ${longAfter} ms, not after the linger's 5000`);
  assert.equal(long.counters.timedOut, 0, "the linger is no time-out");
});
