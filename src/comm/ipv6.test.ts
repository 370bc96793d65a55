import assert from "node:assert/strict";
import { PassThrough } from "node:stream";
import { after, test } from "node:test";
import { ErrorCodes } from "../errors.js";
import { listAllProcesses } from "../mp/registry.js";
import { processKill } from "../mp/process.js";
import { makeStreamAndTalk } from "../../examples/talk.js";
import { openTcpStream } from "./client.js";
import { SocketStream } from "./socket-stream.js";
import { serverTerminate, startUpServer, type ServerProcess } from "../index.js";

const servers: ServerProcess[] = [];
after(() => {
  for (const s of servers) serverTerminate(s);
  for (const p of listAllProcesses()) if (p.name.startsWith("talk ")) processKill(p);
});

test("a server on ::1 talks IPv6 and announces its address in brackets", async () => {
  const out = new PassThrough();
  let text = "";
  out.on("data", (chunk: Buffer) => (text += chunk.toString()));
  const server = await startUpServer({
    function: makeStreamAndTalk,
    service: 0,
    address: "::1",
    processName: "six",
    announce: out,
    logger: false,
  });
  servers.push(server);
  assert.equal(server.address, "::1");
  assert.equal(server.family, "IPv6");
  assert.equal(text, `six: listening on [::1]:${server.port}\n`);
  const talk = await openTcpStream("::1", server.port);
  assert.equal(talk.remoteAddress, "::1");
  talk.writeLine("over six");
  talk.forceOutput();
  assert.equal(await talk.readLine(), "You sent: 'over six'");
  talk.close();
});

test("a server on :: is dual-stack: IPv4 and IPv6 clients both get through", async () => {
  const server = await startUpServer({ function: makeStreamAndTalk, service: 0, address: "::" });
  servers.push(server);
  for (const host of ["127.0.0.1", "::1"]) {
    const talk = await openTcpStream(host, server.port);
    talk.writeLine(`via ${host}`);
    talk.forceOutput();
    assert.equal(await talk.readLine(), `You sent: 'via ${host}'`);
    talk.close();
  }
});

test("a connection refused on ::1 names the host in brackets", async () => {
  const server = await startUpServer({ function: makeStreamAndTalk, service: 0, address: "::1" });
  const port = server.port;
  serverTerminate(server);
  await assert.rejects(openTcpStream("::1", port), { code: "ECONNREFUSED", message: new RegExp(`\\[::1\\]:${port}`) });
});

test("the listener server counts ::1 as loopback and :: as exposed", async () => {
  const local = await startUpServer({ service: 0, address: "::1" });
  servers.push(local);
  assert.equal(local.address, "::1");
  await assert.rejects(startUpServer({ service: 0, address: "::" }), { code: ErrorCodes.INSECURE_LISTENER });
});

test("a served stream's local end is the one the client connected to, after close too, on one address or a wildcard", async () => {
  for (const [address, host, expected] of [
    ["127.0.0.1", "127.0.0.1", "127.0.0.1"],
    ["::1", "::1", "::1"],
    ["::", "127.0.0.1", "::ffff:127.0.0.1"],
    ["::", "::1", "::1"],
  ] as const) {
    let served: SocketStream | undefined;
    const server = await startUpServer({
      service: 0,
      address,
      function: (handle) => {
        served = new SocketStream({ socket: handle });
        served.close();
      },
    });
    servers.push(server);
    const talk = await openTcpStream(host, server.port);
    assert.equal(await talk.readLine(), null);
    talk.close();
    assert.ok(served?.closed);
    assert.equal(served.localAddress, expected, `${address} reached via ${host}`);
    assert.equal(served.localPort, server.port);
  }
});
