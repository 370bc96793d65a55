import assert from "node:assert/strict";
import { test } from "node:test";
import { listAllProcesses } from "../mp/registry.js";
import { captureReports, eventually, testServers } from "../../test/support.js";

const { start, client } = testServers();

/** A session on a fresh listener server, named `name`, with its first prompt read. */
async function session(
  name: string,
  options: Parameters<typeof start>[0] = {},
): Promise<{ c: Awaited<ReturnType<typeof client>>; port: number }> {
  const server = await start(options);
  const c = await client(server.port);
  c.send(`"${name}"\n`);
  await c.until("CL-USER 1 > ");
  return { c, port: server.port };
}

const sessionProcess = (name: string): boolean => listAllProcesses().some((p) => p.name === name);

for (const how of ["end of file", "reset"] as const) {
  test(`a client that leaves (${how}) while its input awaits ends the session at once, and the input's late outcome is dropped`, async () => {
    const reports = captureReports();
    try {
      const g = globalThis as { settled?: boolean };
      g.settled = false;
      const { c } = await session(`leaver ${how}`);
      // Rejects (and flags it) some time after the client has gone.
      c.send(
        "await new Promise((_, reject) => setTimeout(() => { globalThis.settled = true; reject(new Error('late')) }, 300))\n",
      );
      await eventually(() => sessionProcess(`leaver ${how}`), 2000, "the session runs");
      if (how === "end of file") c.end();
      else c.socket.resetAndDestroy();
      await eventually(() => !sessionProcess(`leaver ${how}`), 2000, "the session's process ends at once");
      if (how === "end of file") await c.closed(2000); // our side is closed too: nothing is left in CLOSE-WAIT
      const before = c.received;
      await eventually(() => g.settled === true, 5000, "the abandoned input settles");
      // A turn later its rejection would have been printed or reported, or crashed this runner.
      await new Promise((resolve) => setImmediate(resolve));
      assert.equal(c.received, before);
      assert.deepEqual(reports.reports, []);
    } finally {
      reports.restore();
    }
  });
}

test("a synchronous input sent together with end of file is still answered", async () => {
  const server = await start();
  const c = await client(server.port);
  c.send('"sync then eof"\n1 + 1\n');
  c.end();
  await c.closed(5000);
  assert.equal(c.received, "CL-USER 1 > 2\nCL-USER 2 > ");
});

test("an interrupt line abandons an input that awaits, brings the prompt back and keeps declarations", async () => {
  const { c } = await session("interrupted");
  c.send("const kept = 41\n");
  await c.until("CL-USER 2 > ");
  c.send("await new Promise(() => {})\n");
  await eventually(() => listAllProcesses().some((p) => p.name === "interrupted"));
  c.send("\u0003\n");
  await c.until("CL-USER 3 > ");
  assert.match(c.received, /Interrupted: input 2 abandoned/);
  c.send("kept + 1\n");
  await c.until("CL-USER 4 > ");
  assert.match(c.received, /CL-USER 3 > 42\n/);
});

test("an interrupt line with nothing running drops the unfinished input", async () => {
  const { c } = await session("cancelled");
  c.send("[1,\n2,\n\u0003\n3\n");
  await c.until("CL-USER 2 > ");
  assert.match(c.received, /CL-USER 1 > CL-USER 1 > 3\nCL-USER 2 > $/);
});

test(
  "a long paste is answered: deciding whether input is complete costs time linear in its size",
  { timeout: 60_000 },
  async () => {
    const { c } = await session("paster");
    const lines = 20_000;
    const body = Array.from({ length: lines }, (_, i) => `  k${i}: ${i},`).join("\n");
    c.send(`Object.keys({\n${body}\n}).length\n`);
    await c.until(`${lines}\nCL-USER 2 > `, 50_000);
  },
);
