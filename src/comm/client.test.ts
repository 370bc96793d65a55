import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import net from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import tls from "node:tls";
import { after, test } from "node:test";
import { ConfabError, ErrorCodes } from "../errors.js";
import { processKill, processRunFunction } from "../mp/process.js";
import { eventually, spyOnSocketTuning } from "../../test/support.js";
import { makeTestCertificates } from "../../test/tls-certs.js";
import { startTalkServer } from "../../examples/talk.js";
import { openTcpStream } from "./client.js";
import { serverTerminate, type ServerProcess } from "../index.js";
import type { SocketStream } from "./socket-stream.js";

const servers: ServerProcess[] = [];
const children: ChildProcess[] = [];
after(() => {
  for (const s of servers) serverTerminate(s);
  for (const c of children) c.kill();
});

/** A port on which nothing listens: bind one, note it, close it. */
async function closedPort(): Promise<number> {
  const s = net.createServer();
  await new Promise<void>((resolve) => s.listen(0, "127.0.0.1", resolve));
  const port = (s.address() as net.AddressInfo).port;
  await new Promise((resolve) => s.close(resolve));
  return port;
}

test("openTcpStream talks to a server, by host name as in the seed", async () => {
  const server = await startTalkServer(0);
  servers.push(server);
  const talk = await openTcpStream("localhost", server.port);
  talk.writeLine("Hello self.");
  talk.forceOutput();
  assert.equal(await talk.readLine(), "You sent: 'Hello self.'");
  assert.equal(talk.remotePort, server.port);
  talk.close();
});

test("a refused connection rejects with an error naming host and port", async () => {
  const port = await closedPort();
  await assert.rejects(openTcpStream("127.0.0.1", port), (error: unknown) => {
    assert.ok(error instanceof ConfabError);
    assert.equal(error.code, "ECONNREFUSED");
    assert.match(error.message, new RegExp(`127\\.0\\.0\\.1:${port}`));
    return true;
  });
});

test("errorp false resolves null instead of rejecting", async () => {
  const port = await closedPort();
  assert.equal(await openTcpStream("127.0.0.1", port, { errorp: false }), null);
  assert.equal(await openTcpStream("127.0.0.1", "no-such-service-here", { errorp: false }), null);
});

test("an unknown service name is an error saying where it looked", async () => {
  await assert.rejects(openTcpStream("127.0.0.1", "no-such-service-here"), {
    code: ErrorCodes.UNKNOWN_SERVICE,
    message: /no-such-service-here.*services/,
  });
});

test("a connection that is not answered in time rejects with a timeout naming host and port", async () => {
  // A listener that never accepts, with a full queue: further SYNs are dropped, so the
  // connection neither succeeds nor fails until our timeout.
  const child = spawn(
    "python3",
    [
      "-c",
      [
        "import socket, sys, time",
        "s = socket.socket(); s.bind(('127.0.0.1', 0)); s.listen(0)",
        "port = s.getsockname()[1]",
        "fillers = []",
        "for _ in range(4):",
        "    c = socket.socket(); c.setblocking(False)",
        "    try: c.connect(('127.0.0.1', port))",
        "    except BlockingIOError: pass",
        "    fillers.append(c)",
        "time.sleep(0.2); print(port, flush=True); time.sleep(30)",
      ].join("\n"),
    ],
    { stdio: ["ignore", "pipe", "inherit"] },
  );
  children.push(child);
  const port = await new Promise<number>((resolve) =>
    child.stdout.once("data", (d: Buffer) => resolve(Number(d.toString().trim()))),
  );
  const started = Date.now();
  await assert.rejects(openTcpStream("127.0.0.1", port, { connectTimeout: 300 }), (error: unknown) => {
    assert.ok(error instanceof ConfabError);
    assert.equal(error.code, ErrorCodes.CONNECT_TIMEOUT);
    assert.match(error.message, new RegExp(`127\\.0\\.0\\.1:${port}.*300 ms`));
    return true;
  });
  assert.ok(Date.now() - started < 3000);
});

test("a stream opened inside a process belongs to it and closes when it is killed", async () => {
  const server = await startTalkServer(0);
  servers.push(server);
  let stream: SocketStream | undefined;
  const p = processRunFunction("client process", {}, async () => {
    stream = await openTcpStream("127.0.0.1", server.port);
    await stream.readLine();
  });
  await eventually(() => stream !== undefined);
  processKill(p);
  assert.equal(stream?.closed, true);
});

test("openTcpStream's localPort, nodelay and keepalive options reach the socket", async () => {
  const seen: number[] = [];
  const server = net.createServer((socket) => {
    seen.push(socket.remotePort ?? 0);
    socket.end();
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.address() as net.AddressInfo).port;
  const localPort = await closedPort();
  const { calls, restore } = spyOnSocketTuning();
  try {
    const stream = await openTcpStream("127.0.0.1", port, { localPort, nodelay: true, keepalive: 30_000 });
    assert.equal(stream.localPort, localPort);
    assert.deepEqual(calls, ["nodelay true", "keepalive true 30000"]);
    stream.close();
  } finally {
    restore();
    server.close();
  }
  await eventually(() => seen.length === 1, 2000, "the server saw the connection");
  assert.deepEqual(seen, [localPort], "it came from the port asked for");
});

test("a TLS server that accepts and never answers is dropped at handshakeTimeout with ERR_CONNECT_TIMEOUT", async () => {
  const held: net.Socket[] = [];
  const silent = net.createServer((socket) => held.push(socket));
  await new Promise<void>((resolve) => silent.listen(0, "127.0.0.1", resolve));
  const port = (silent.address() as net.AddressInfo).port;
  const started = Date.now();
  try {
    await assert.rejects(
      openTcpStream("127.0.0.1", port, { tls: true, handshakeTimeout: 150 }),
      (error: unknown) =>
        error instanceof ConfabError &&
        error.code === ErrorCodes.CONNECT_TIMEOUT &&
        /TLS handshake did not finish within 150 ms \(handshakeTimeout\)/.test(error.message),
    );
    assert.ok(Date.now() - started < 3000, "not the default 10 s");
  } finally {
    for (const s of held) s.destroy();
    silent.close();
  }
});

test("openTcpStream's servername is the name a TLS server is asked for (SNI) and the certificate is checked against", async () => {
  const dir = await mkdtemp(join(tmpdir(), "confab-sni-"));
  try {
    const certs = await makeTestCertificates(dir);
    const asked: string[] = [];
    const server = tls.createServer({
      key: certs.server.key,
      cert: certs.server.cert,
      SNICallback: (name, done) => {
        asked.push(name);
        done(null, tls.createSecureContext({ key: certs.server.key, cert: certs.server.cert }));
      },
    });
    server.on("secureConnection", (socket) => socket.end("hello\n"));
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    const port = (server.address() as net.AddressInfo).port;
    try {
      // The server's certificate names localhost: asked for by that name, it is accepted.
      const stream = await openTcpStream("127.0.0.1", port, { tls: { ca: certs.ca.cert }, servername: "localhost" });
      assert.equal(await stream.readLine(), "hello");
      stream.close();
      assert.deepEqual(asked, ["localhost"]);
      await assert.rejects(
        openTcpStream("127.0.0.1", port, { tls: { ca: certs.ca.cert }, servername: "elsewhere.example" }),
        (error: unknown) => error instanceof ConfabError && /elsewhere\.example/.test(error.message),
        "a name the certificate does not hold is refused",
      );
    } finally {
      server.close();
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
