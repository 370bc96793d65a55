// `confab serve --monitor`: the monitor page alongside the server, stopped with it.
import assert from "node:assert/strict";
import type { ChildProcess } from "node:child_process";
import { after, test } from "node:test";
import { runConfab, startConfab } from "./cli.js";
import { portOpen } from "./support.js";

const children: ChildProcess[] = [];
after(() => {
  for (const c of children) c.kill("SIGKILL");
});

test("confab serve --monitor ADDR:PORT --announce prints the page's URL, serves it, and SIGTERM stops both", async () => {
  const { child, match } = await startConfab(
    ["serve", "--service", "0", "--monitor", "127.0.0.1:0", "--announce"],
    /listening on 127\.0\.0\.1:(\d+).*\n(monitor 127\.0\.0\.1:(\d+)): open (http:\/\/127\.0\.0\.1:\d+\/) in a browser\n/,
  );
  children.push(child);
  const [, port, monitorName, monitorPort, url] = match as unknown as [string, string, string, string, string];
  const snapshot = (await (await fetch(`${url}api/snapshot`)).json()) as {
    servers: { name: string; listening: string }[];
    processes: { name: string; kind: string }[];
  };
  assert.deepEqual(
    snapshot.servers.map((s) => [s.name, s.listening]),
    [["0 server", `127.0.0.1:${port}`]],
  );
  assert.ok(snapshot.processes.some((p) => p.name === monitorName && p.kind === "monitor"));
  const page = await fetch(url);
  assert.match(await page.text(), /<title>confab monitor/);
  const started = Date.now();
  child.kill("SIGTERM");
  const code = await new Promise((resolve) => child.once("exit", resolve));
  assert.equal(code, 0);
  assert.ok(Date.now() - started < 4000, "the monitor does not hold up the drain");
  assert.equal(await portOpen(Number(monitorPort)), false);
});

test("confab serve --monitor refuses a non-loopback address and a malformed one", async () => {
  const exposed = await runConfab(["serve", "--service", "0", "--monitor", "0.0.0.0:0"]);
  assert.equal(exposed.code, 1);
  assert.match(exposed.stderr, /cannot start the monitor on 0\.0\.0\.0:0: .*loopback only/);
  const malformed = await runConfab(["serve", "--service", "0", "--monitor", "nine"]);
  assert.equal(malformed.code, 1);
  assert.match(malformed.stderr, /--monitor takes \[ADDR:\]PORT/);
});
