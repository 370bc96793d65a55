// A listener session cut off by the server (idle, over its output limit, its process killed) is
// told why in one line, `Error: <reason>`, before its connection closes.
import assert from "node:assert/strict";
import { test } from "node:test";
import { findProcessFromName } from "../src/mp/registry.js";
import { processKill } from "../src/mp/process.js";
import { captureReports, eventually, testServers, type LineClient } from "./support.js";

const { start: listenerServer, client } = testServers();

async function session(port: number, name: string): Promise<LineClient> {
  const c = await client(port);
  c.send(`"${name}"\n`);
  await c.until("CL-USER 1 > ");
  return c;
}

test("a listener session idle for idleTimeout gets one line saying so, then end of file, and its process ends", async () => {
  const server = await listenerServer({ idleTimeout: 300 });
  const c = await session(server.port, "idler");
  const p = findProcessFromName("idler");
  assert.ok(p);
  c.send("6 * 7\n");
  await c.until("CL-USER 2 > ");
  c.clear();
  await c.closed(3000);
  assert.equal(c.received, "Error: connection idle for 300 ms (the server's idleTimeout); closing\n");
  await eventually(() => !p.alive, 2000, "the session's process ended");
  assert.equal(p.state, "finished");
});

test("a listener session whose client does not read gets, once it reads, its output up to the limit and then one line saying why", async () => {
  const { restore } = captureReports();
  try {
    const limit = 256 * 1024;
    const server = await listenerServer({ streamOptions: { maxOutputBuffer: limit } });
    const c = await session(server.port, "not reading");
    const p = findProcessFromName("not reading");
    assert.ok(p);
    c.socket.pause();
    c.clear();
    // 40 MB, far past what the kernel holds for a loopback connection that is not read.
    c.send("for (let i = 0; i < 4000; i++) console.log('x'.repeat(9999)); 'done'\n");
    await eventually(() => !p.alive, 10_000, "the session ends");
    c.socket.resume();
    await c.closed(5000);
    const lines = c.received.split("\n");
    assert.equal(lines.pop(), "", "the reason line is the last, then end of file");
    assert.equal(
      lines.pop(),
      `Error: output buffer over ${limit} bytes (maxOutputBuffer; the client is not reading); closing`,
    );
    assert.ok(
      lines.length > 0 && lines.every((l) => l === "x".repeat(9999)),
      "before it, whole lines of the output, nothing else",
    );
  } finally {
    restore();
  }
});

test("a listener session whose process is killed gets one line naming the process, then end of file", async () => {
  const server = await listenerServer();
  const c = await session(server.port, "victim");
  const p = findProcessFromName("victim");
  assert.ok(p);
  c.clear();
  processKill(p);
  await c.closed(3000);
  assert.equal(c.received, `Error: session killed (process ${p.id} "victim" was killed)\n`);
});
