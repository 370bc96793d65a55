// Endpoints beyond plain TCP: TLS (with and without client certificates) and Unix domain
// sockets, end to end with real sockets, servers and clients.
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { existsSync, lstatSync } from "node:fs";
import { mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import net from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import tls from "node:tls";
import { after, before, test } from "node:test";
import { ConfabError, ErrorCodes } from "../errors.js";
import { processKill } from "../mp/process.js";
import { openTcpStream } from "./client.js";
import { unixSocketPath } from "./endpoint.js";
import { serverTerminate, startUpServer, type ServerProcess } from "../index.js";
import { SocketStream } from "./socket-stream.js";
import { captureReports, eventually, LineClient, portOpen, sleep } from "../../test/support.js";
import { makeTestCertificates, type TestCertificates } from "../../test/tls-certs.js";

let dir: string;
let certs: TestCertificates;
const servers: ServerProcess[] = [];
const streams: SocketStream[] = [];
const clients: LineClient[] = [];

before(async () => {
  dir = await mkdtemp(join(tmpdir(), "confab-endpoint-"));
  certs = await makeTestCertificates(join(dir, "certs"));
});

after(async () => {
  for (const s of servers) serverTerminate(s);
  for (const s of streams) s.close();
  for (const c of clients) c.destroy();
  await rm(dir, { recursive: true, force: true });
});

async function start(options: Parameters<typeof startUpServer>[0]): Promise<ServerProcess> {
  const server = await startUpServer(options);
  servers.push(server);
  return server;
}

/** A server whose function echoes each line as `echo: LINE`, recording each handle it was given. */
async function echoServer(
  options: Omit<NonNullable<Parameters<typeof startUpServer>[0]>, "function"> = {},
  delay = 0,
): Promise<{ server: ServerProcess; handles: net.Socket[]; paused: boolean[] }> {
  const handles: net.Socket[] = [];
  const paused: boolean[] = [];
  const server = await start({
    service: 0,
    ...options,
    function: async (handle: net.Socket) => {
      handles.push(handle);
      paused.push(handle.isPaused());
      // The server waits for this promise: bytes the client sends meanwhile must not be lost.
      if (delay > 0) await sleep(delay);
      const stream = new SocketStream({ socket: handle });
      streams.push(stream);
      void (async () => {
        for (let line; (line = await stream.readLine().catch(() => null)) !== null;) {
          stream.writeLine(`echo: ${line}`);
          stream.forceOutput();
        }
        stream.close();
      })();
    },
  });
  return { server, handles, paused };
}

async function tlsClient(port: number, options: tls.ConnectionOptions = {}): Promise<SocketStream> {
  const stream = await openTcpStream("127.0.0.1", port, {
    tls: { ca: certs.ca.cert, ...(options as object) },
    connectTimeout: 5000,
    readTimeout: 5000,
  });
  streams.push(stream);
  return stream;
}

async function rawClient(port: number): Promise<LineClient> {
  const c = await LineClient.connect(port);
  clients.push(c);
  return c;
}

function isTlsReport(what: string): boolean {
  return /TLS/.test(what);
}

// ---------------------------------------------------------------------------------------------
// TLS

test("a TLS server gives function a TLSSocket after its handshake, and no byte sent at once is lost", async () => {
  const { server, handles, paused } = await echoServer(
    { tls: { key: certs.server.key, cert: certs.server.cert } },
    150,
  );
  const stream = await tlsClient(server.port);
  stream.writeLine("first");
  stream.writeLine("second");
  stream.forceOutput();
  assert.equal(await stream.readLine(), "echo: first");
  assert.equal(await stream.readLine(), "echo: second");
  const handle = handles[0];
  assert.ok(handle instanceof tls.TLSSocket, "the handle is the TLS socket, not the raw TCP one");
  assert.equal(handle.encrypted, true);
  assert.ok(handle.getProtocol()?.startsWith("TLS"));
  assert.deepEqual(paused, [true], "handed over paused, as a plain server's handle");
  stream.close();
});

test("openTcpStream over TLS rejects a server its CA did not sign, and that client never reaches function", async () => {
  const { server, handles } = await echoServer({ tls: { key: certs.server.key, cert: certs.server.cert } });
  const captured = captureReports();
  try {
    await assert.rejects(
      openTcpStream("127.0.0.1", server.port, { tls: { ca: certs.otherCa.cert }, connectTimeout: 5000 }),
      (error: unknown) => {
        assert.ok(error instanceof ConfabError);
        assert.match(error.message, /^cannot connect to 127\.0\.0\.1:\d+: TLS handshake failed: /);
        assert.equal(error.code, "UNABLE_TO_VERIFY_LEAF_SIGNATURE");
        return true;
      },
    );
    await sleep(50);
    assert.equal(handles.length, 0);
  } finally {
    captured.restore();
  }
});

test("openTcpStream over TLS checks the server's name: a certificate for another host is refused", async () => {
  const { server } = await echoServer({ tls: { key: certs.server.key, cert: certs.server.cert } });
  await assert.rejects(
    openTcpStream("127.0.0.1", server.port, {
      tls: { ca: certs.ca.cert, servername: "example.com" },
      connectTimeout: 5000,
    }),
    (error: unknown) => {
      assert.ok(error instanceof ConfabError);
      assert.equal(error.code, "ERR_TLS_CERT_ALTNAME_INVALID");
      return true;
    },
  );
});

test("a plain-TCP client of a TLS server never reaches function, is reported, and does not hold up TLS clients", async () => {
  const { server, handles } = await echoServer({ tls: { key: certs.server.key, cert: certs.server.cert } });
  const captured = captureReports();
  try {
    const silent = await rawClient(server.port); // says nothing: its handshake is pending
    const plain = await rawClient(server.port);
    plain.send("GET / HTTP/1.0\r\n\r\n");
    await plain.closed();
    assert.doesNotMatch(plain.received, /echo/);
    await eventually(() => captured.reports.some((r) => isTlsReport(r.what)), 3000, "the failed handshake is reported");
    const report = captured.reports.find((r) => isTlsReport(r.what));
    assert.match(
      report?.what ?? "",
      new RegExp(`^0 server on 127\\.0\\.0\\.1:${server.port}: TLS handshake with 127\\.0\\.0\\.1:\\d+ failed$`),
    );

    const good = await tlsClient(server.port);
    good.writeLine("still served");
    good.forceOutput();
    assert.equal(await good.readLine(), "echo: still served");
    assert.equal(handles.length, 1, "only the TLS client reached function");
    assert.ok(handles.every((h) => h instanceof tls.TLSSocket));
    assert.equal(silent.ended, false);
    good.close();
  } finally {
    captured.restore();
  }
});

test("a client that never completes its handshake is dropped after handshakeTimeout and reported", async () => {
  const { server, handles } = await echoServer({
    tls: { key: certs.server.key, cert: certs.server.cert, handshakeTimeout: 300 },
  });
  const captured = captureReports();
  try {
    const started = Date.now();
    const silent = await rawClient(server.port);
    await silent.closed(3000);
    const waited = Date.now() - started;
    assert.ok(waited >= 250 && waited < 2500, `dropped after ${waited} ms`);
    await eventually(() => captured.reports.some((r) => isTlsReport(r.what)), 2000);
    assert.equal(handles.length, 0);
  } finally {
    captured.restore();
  }
});

test("with ca, a client holding a certificate signed by that CA gets through, and function can see who it is", async () => {
  const { server, handles } = await echoServer({
    tls: { key: certs.server.key, cert: certs.server.cert, ca: certs.ca.cert },
  });
  const stream = await tlsClient(server.port, { cert: certs.client.cert, key: certs.client.key });
  stream.writeLine("hello");
  stream.forceOutput();
  assert.equal(await stream.readLine(), "echo: hello");
  const handle = handles[0] as tls.TLSSocket;
  assert.equal(handle.authorized, true);
  assert.equal(handle.getPeerCertificate().subject.CN, "confab test client");
  stream.close();
});

for (const [which, credentials] of [
  ["no certificate", () => ({})],
  ["a certificate signed by another CA", () => ({ cert: certs.stranger.cert, key: certs.stranger.key })],
] as const) {
  test(`with ca, a client with ${which} is refused in one line, never reaches function, and is reported`, async () => {
    const { server, handles } = await echoServer({
      tls: { key: certs.server.key, cert: certs.server.cert, ca: certs.ca.cert },
    });
    const captured = captureReports();
    try {
      // TLS 1.3: the client's handshake completes before the server has judged its certificate;
      // the server then says why in one line and closes.
      const stream = await openTcpStream("127.0.0.1", server.port, {
        tls: { ca: certs.ca.cert, ...credentials() },
        connectTimeout: 5000,
        readTimeout: 5000,
      });
      streams.push(stream);
      stream.writeLine("let me in");
      stream.forceOutput();
      assert.equal(await stream.readLine(), "Error: a client certificate signed by the server's CA is required");
      assert.equal(await stream.readLine(), null);
      await eventually(() => captured.reports.some((r) => /refused/.test(r.what)), 3000, "the refusal is reported");
      const report = captured.reports.find((r) => /refused/.test(r.what));
      assert.ok(report?.error instanceof ConfabError);
      assert.equal(report.error.code, ErrorCodes.TLS_CLIENT_REFUSED);
      assert.match(
        report.error.message,
        which === "no certificate" ? /no client certificate/ : /UNABLE_TO_VERIFY_LEAF_SIGNATURE/,
      );
      assert.equal(handles.length, 0);
      // ... and a good client is still served.
      const good = await tlsClient(server.port, { cert: certs.client.cert, key: certs.client.key });
      good.writeLine("me too");
      good.forceOutput();
      assert.equal(await good.readLine(), "echo: me too");
      good.close();
    } finally {
      captured.restore();
    }
  });
}

test("TLS options that cannot work are refused before anything listens", async () => {
  await assert.rejects(
    startUpServer({
      service: 0,
      function: () => undefined,
      tls: { key: certs.server.key, cert: certs.server.cert, requestCert: true },
    }),
    (error: unknown) => {
      assert.ok(error instanceof ConfabError);
      assert.equal(error.code, ErrorCodes.INVALID_ARGUMENT);
      assert.match(error.message, /requestCert needs tls\.ca/);
      return true;
    },
  );
  await assert.rejects(
    startUpServer({ service: 0, function: () => undefined, tls: { key: "not a key", cert: certs.server.cert } }),
    (error: unknown) => {
      assert.ok(error instanceof ConfabError);
      assert.equal(error.code, ErrorCodes.INVALID_ARGUMENT);
      assert.match(error.message, /invalid TLS key or certificate/);
      return true;
    },
  );
});

test("killing a TLS server frees its port at once, and a handshake finishing afterwards reaches nobody", async () => {
  const { server, handles } = await echoServer({ tls: { key: certs.server.key, cert: certs.server.cert } });
  const port = server.port;
  // Connected, but its handshake not started: it finishes only after the kill.
  const raw = net.connect({ host: "127.0.0.1", port });
  await new Promise((resolve) => raw.once("connect", resolve));
  await sleep(20);
  processKill(server);
  assert.equal(await portOpen(port), false);
  const late = tls.connect({ socket: raw, ca: certs.ca.cert, servername: "localhost" });
  late.on("error", () => undefined);
  const closed = await new Promise<boolean>((resolve) => {
    const timer = setTimeout(() => resolve(false), 3000);
    late.once("close", () => {
      clearTimeout(timer);
      resolve(true);
    });
    late.once("secureConnect", () => {
      late.write("anyone?\n");
    });
  });
  late.destroy();
  assert.equal(handles.length, 0);
  assert.ok(closed, "the late client is disconnected");
});

// ---------------------------------------------------------------------------------------------
// Unix domain sockets

test("a service that is a path names a Unix socket: unix:PATH or any string with a slash", () => {
  assert.equal(unixSocketPath("unix:/run/x.sock"), "/run/x.sock");
  assert.equal(unixSocketPath("/run/x.sock"), "/run/x.sock");
  assert.equal(unixSocketPath("./x.sock"), join(process.cwd(), "x.sock"));
  assert.equal(unixSocketPath("unix:x.sock"), join(process.cwd(), "x.sock"));
  assert.equal(unixSocketPath("confab"), undefined);
  assert.equal(unixSocketPath("10243"), undefined);
  assert.equal(unixSocketPath(10243), undefined);
  assert.throws(
    () => unixSocketPath("unix:"),
    (error: unknown) => error instanceof ConfabError && error.code === ErrorCodes.INVALID_ARGUMENT,
  );
});

test("a Unix socket server listens with owner-only permissions; address is the path, port 0", async () => {
  const path = join(dir, "owner.sock");
  const announced: string[] = [];
  const { server } = await echoServer({
    service: `unix:${path}`,
    announce: { write: (text: string) => announced.push(text) } as unknown as NodeJS.WritableStream,
  });
  assert.equal(server.address, path);
  assert.equal(server.port, 0);
  assert.equal(server.family, "unix");
  assert.deepEqual(announced, [`"unix:${path}" server: listening on ${path}\n`]);
  const stat = lstatSync(path);
  assert.ok(stat.isSocket());
  assert.equal(stat.mode & 0o777, 0o600);
  const stream = await openTcpStream("localhost", path, { readTimeout: 5000 });
  streams.push(stream);
  stream.writeLine("over unix");
  stream.forceOutput();
  assert.equal(await stream.readLine(), "echo: over unix");
  stream.close();
});

test("the socket is 0600 even when the process umask would let everyone in", async () => {
  const path = join(dir, "umask.sock");
  const previous = process.umask(0);
  let after: number;
  try {
    await echoServer({ service: path });
  } finally {
    after = process.umask(previous);
  }
  assert.equal(lstatSync(path).mode & 0o777, 0o600);
  assert.equal(after, 0, "the umask confab found is restored");
});

test("a stale socket file left by a crashed server is replaced", async () => {
  const path = join(dir, "stale.sock");
  // A real crash: a process that binds the path and dies by SIGKILL, leaving the file.
  const child = spawn(
    process.execPath,
    ["-e", `require("net").createServer().listen(${JSON.stringify(path)}, () => process.kill(process.pid, "SIGKILL"))`],
    { stdio: "ignore" },
  );
  await new Promise((resolve) => child.once("exit", resolve));
  assert.ok(lstatSync(path).isSocket(), "the crashed server left its socket file");
  const { server } = await echoServer({ service: path });
  assert.equal(server.address, path);
  const stream = await openTcpStream("localhost", `unix:${path}`, { readTimeout: 5000 });
  streams.push(stream);
  stream.writeLine("fresh");
  stream.forceOutput();
  assert.equal(await stream.readLine(), "echo: fresh");
  stream.close();
});

test("a socket a live server answers on is EADDRINUSE, and that server keeps it", async () => {
  const path = join(dir, "live.sock");
  await echoServer({ service: path });
  await assert.rejects(startUpServer({ service: path, function: () => undefined }), (error: unknown) => {
    assert.ok(error instanceof ConfabError);
    assert.equal(error.code, "EADDRINUSE");
    assert.match(error.message, /live\.sock is already in use/);
    return true;
  });
  const stream = await openTcpStream("localhost", path, { readTimeout: 5000 });
  streams.push(stream);
  stream.writeLine("still mine");
  stream.forceOutput();
  assert.equal(await stream.readLine(), "echo: still mine");
  stream.close();
});

test("a path that is not a socket is never deleted", async () => {
  const path = join(dir, "precious.txt");
  await writeFile(path, "do not delete\n");
  await assert.rejects(startUpServer({ service: path, function: () => undefined }), (error: unknown) => {
    assert.ok(error instanceof ConfabError);
    assert.equal(error.code, ErrorCodes.NOT_A_SOCKET);
    assert.match(error.message, /precious\.txt exists and is not a socket/);
    return true;
  });
  assert.equal(await readFile(path, "utf8"), "do not delete\n");
});

test("killing a Unix socket server removes its socket file, and the path can be served again", async () => {
  const path = join(dir, "killed.sock");
  const { server } = await echoServer({ service: path });
  assert.ok(existsSync(path));
  processKill(server);
  await eventually(() => !existsSync(path), 2000, "the socket file is removed");
  const again = await echoServer({ service: path });
  assert.equal(again.server.address, path);
});

test("openTcpStream to a Unix socket nobody serves says so", async () => {
  await assert.rejects(openTcpStream("localhost", join(dir, "nobody.sock")), (error: unknown) => {
    assert.ok(error instanceof ConfabError);
    assert.equal(error.code, "ENOENT");
    assert.match(error.message, /nobody\.sock: no such socket/);
    return true;
  });
});

test("TLS runs over a Unix socket too", async () => {
  const path = join(dir, "tls.sock");
  const { handles } = await echoServer({
    service: path,
    tls: { key: certs.server.key, cert: certs.server.cert, ca: certs.ca.cert },
  });
  const stream = await openTcpStream("localhost", path, {
    tls: { ca: certs.ca.cert, cert: certs.client.cert, key: certs.client.key },
    readTimeout: 5000,
  });
  streams.push(stream);
  stream.writeLine("both");
  stream.forceOutput();
  assert.equal(await stream.readLine(), "echo: both");
  assert.ok(handles[0] instanceof tls.TLSSocket);
  stream.close();
});

/** A path under `dir` of exactly `bytes` bytes of UTF-8, ending in `.sock`, with a multi-byte character in it. */
function pathOfBytes(bytes: number, fill = "s"): string {
  const base = join(dir, "é"); // two bytes
  return `${base}${fill.repeat(bytes - Buffer.byteLength(base) - ".sock".length)}.sock`;
}

test(
  "a Unix socket path longer than the OS takes (107 bytes on Linux) is refused before binding; 107 bytes is served",
  { skip: process.platform !== "linux" },
  async () => {
    const long = pathOfBytes(108);
    assert.equal(Buffer.byteLength(long), 108);
    assert.throws(
      () => unixSocketPath(long),
      (error: unknown) => {
        assert.ok(error instanceof ConfabError);
        assert.equal(error.code, ErrorCodes.SOCKET_PATH_TOO_LONG);
        assert.equal(
          error.message,
          `the Unix socket path ${long} is 108 bytes; linux takes at most 107 (and would cut it short): choose a shorter path`,
        );
        return true;
      },
    );
    const before = new Set(await readdir(dir));
    for (const service of [long, `unix:${long}`, `unix:${pathOfBytes(300)}`]) {
      await assert.rejects(startUpServer({ service, function: () => undefined }), {
        code: ErrorCodes.SOCKET_PATH_TOO_LONG,
        message: /is (108|300) bytes; linux takes at most 107/,
      });
    }
    // Nothing was bound: no socket under the name the OS would have cut it to.
    assert.deepEqual(new Set(await readdir(dir)), before);
    // The longest path the OS takes is served, and reached, whole.
    const longest = pathOfBytes(107);
    const { server } = await echoServer({ service: longest });
    assert.equal(server.address, longest);
    assert.ok(lstatSync(longest).isSocket());
    const stream = await openTcpStream("localhost", longest, { readTimeout: 5000 });
    streams.push(stream);
    stream.writeLine("107 bytes");
    stream.forceOutput();
    assert.equal(await stream.readLine(), "echo: 107 bytes");
    stream.close();
  },
);

test(
  'openTcpStream to a Unix socket path over the OS\'s limit is refused with its length, not a misleading "no such socket" or the socket its first 107 bytes name',
  { skip: process.platform !== "linux" },
  async () => {
    // A server on the 107-byte path: a client whose path were cut to it would reach this one
    // (libuv 1.46 says ENOENT instead: nothing listens on the whole path, which is just as wrong).
    const longest = pathOfBytes(107, "c");
    await echoServer({ service: longest });
    const longer = `${longest}x`;
    await assert.rejects(openTcpStream("localhost", longer), {
      code: ErrorCodes.SOCKET_PATH_TOO_LONG,
      message: /is 108 bytes; linux takes at most 107/,
    });
    assert.equal(await openTcpStream("localhost", longer, { errorp: false }), null);
  },
);

test("a Unix socket in a directory that does not exist: the server and the client say that directory does not exist", async () => {
  const missing = join(dir, "no-such-dir", "deeper");
  const path = join(missing, "s.sock");
  await assert.rejects(startUpServer({ service: `unix:${path}`, function: () => undefined }), (error: unknown) => {
    assert.ok(error instanceof ConfabError);
    // libuv says EACCES; the directory is what is missing.
    assert.equal(error.code, "ENOENT");
    assert.equal(
      error.message,
      `cannot start "unix:${path}" server: the directory ${missing} of the socket ${path} does not exist (ENOENT)`,
    );
    return true;
  });
  await assert.rejects(openTcpStream("localhost", path), {
    code: "ENOENT",
    message: `cannot connect to ${path}: no such socket: the directory ${missing} does not exist`,
  });
});
