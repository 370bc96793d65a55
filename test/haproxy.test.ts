// confab behind a real HAProxy (Debian's package), on loopback: the handler must see the real
// client's address, not HAProxy's.
import assert from "node:assert/strict";
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { mkdtemp, writeFile, rm } from "node:fs/promises";
import type net from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { serverTerminate, startUpServer, type ServerProcess } from "../src/index.js";
import { captureReports, eventually, freePort, LineClient } from "./support.js";

const haproxy = spawnSync("haproxy", ["-v"], { encoding: "utf8" });
const skip = haproxy.error === undefined ? false : "haproxy is not installed (.ci/run installs Debian's package)";

const servers: ServerProcess[] = [];
const children: ChildProcess[] = [];
const dirs: string[] = [];
after(async () => {
  for (const c of children) c.kill("SIGKILL");
  for (const s of servers) serverTerminate(s);
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

/** Starts HAProxy in the foreground forwarding 127.0.0.1:front to 127.0.0.1:back with `sendProxy`. */
async function startHaproxy(back: number, sendProxy: "send-proxy" | "send-proxy-v2"): Promise<number> {
  const dir = await mkdtemp(join(tmpdir(), "confab-haproxy-"));
  dirs.push(dir);
  const front = await freePort();
  const config = join(dir, "haproxy.cfg");
  await writeFile(
    config,
    [
      "global",
      "  maxconn 64",
      "defaults",
      "  mode tcp",
      "  timeout connect 2s",
      "  timeout client 10s",
      "  timeout server 10s",
      "frontend front",
      `  bind 127.0.0.1:${front}`,
      "  default_backend confab",
      "backend confab",
      `  server confab 127.0.0.1:${back} ${sendProxy}`,
      "",
    ].join("\n"),
  );
  const child = spawn("haproxy", ["-db", "-f", config], { stdio: ["ignore", "pipe", "pipe"] });
  children.push(child);
  await eventually(
    () => {
      const probe = spawnSync("bash", ["-c", `exec 3<>/dev/tcp/127.0.0.1/${front}`]);
      return probe.status === 0;
    },
    10_000,
    "haproxy listens",
  );
  return front;
}

for (const sendProxy of ["send-proxy", "send-proxy-v2"] as const) {
  test(`behind HAProxy with ${sendProxy}, the handler sees the real client's address and port`, { skip }, async () => {
    const seen: string[] = [];
    const server = await startUpServer({
      service: 0,
      proxyProtocol: true,
      function: (handle: net.Socket) => {
        seen.push(`${String(handle.remoteAddress)}:${String(handle.remotePort)}`);
        handle.end(`you are ${String(handle.remoteAddress)}:${String(handle.remotePort)}\n`);
      },
    });
    servers.push(server);
    const front = await startHaproxy(server.port, sendProxy);
    const c = await LineClient.connect(front);
    const line = await c.line(5000);
    const expected = `127.0.0.1:${c.socket.localPort}`;
    assert.equal(line, `you are ${expected}`);
    // (The readiness probe went through HAProxy too, so it is seen first.)
    assert.equal(seen.at(-1), expected, "the peer is the client, not HAProxy's own connection");
    c.destroy();
  });
}

test("with proxyProtocol on, a direct connection without a header is closed with a logged reason", async () => {
  const { reports, restore } = captureReports();
  const events: string[] = [];
  try {
    let called = false;
    const server = await startUpServer({
      service: 0,
      proxyProtocol: true,
      logger: (e) => events.push(e.event === "refused" ? `refused: ${e.reason}` : e.event),
      function: () => {
        called = true;
      },
    });
    servers.push(server);
    const c = await LineClient.connect(server.port);
    c.send("GET / HTTP/1.1\r\n\r\n");
    await c.closed();
    assert.equal(called, false);
    assert.ok(
      events.some((e) => /refused: no PROXY header/.test(e)),
      JSON.stringify(events),
    );
    assert.equal(reports.length, 0);
  } finally {
    restore();
  }
});

test("with proxyProtocol off, a PROXY header is just data", async () => {
  const server = await startUpServer({
    service: 0,
    createStream: true,
    function: async (stream) => {
      stream.writeLine(String(await stream.readLine()));
      stream.close();
    },
  });
  servers.push(server);
  const c = await LineClient.connect(server.port);
  c.send("PROXY TCP4 192.0.2.1 127.0.0.1 1 2\r\n");
  assert.equal(await c.line(), "PROXY TCP4 192.0.2.1 127.0.0.1 1 2");
});

test(
  "TLS behind HAProxy in TCP mode: the PROXY header comes before the handshake, and the handler sees the client",
  { skip },
  async () => {
    const { makeTestCertificates } = await import("./tls-certs.js");
    const tls = await import("node:tls");
    const dir = await mkdtemp(join(tmpdir(), "confab-haproxy-tls-"));
    dirs.push(dir);
    const certs = await makeTestCertificates(dir);
    const server = await startUpServer({
      service: 0,
      proxyProtocol: true,
      tls: { key: certs.server.key, cert: certs.server.cert },
      function: (handle: net.Socket) => {
        handle.end(`you are ${String(handle.remoteAddress)}:${String(handle.remotePort)}\n`);
      },
    });
    servers.push(server);
    const front = await startHaproxy(server.port, "send-proxy-v2");
    const socket = tls.connect({ host: "127.0.0.1", port: front, ca: certs.ca.cert, servername: "localhost" });
    await new Promise<void>((resolve, reject) => {
      socket.once("secureConnect", resolve);
      socket.once("error", reject);
    });
    const text = await new Promise<string>((resolve) => {
      let got = "";
      socket.setEncoding("utf8");
      socket.on("data", (d: string) => (got += d));
      socket.on("end", () => resolve(got));
    });
    assert.equal(text, `you are 127.0.0.1:${socket.localPort}\n`);
    socket.destroy();
  },
);
