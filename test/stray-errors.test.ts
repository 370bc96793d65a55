// What typed code leaves behind (rejections, throwing timers and callbacks) must not kill the
// host; the host's own errors still do, as Node's default has it. Both against real
// `confab serve` children, since the process that might die is the host.
import assert from "node:assert/strict";
import type { ChildProcess } from "node:child_process";
import { mkdtemp, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { after, test } from "node:test";
import { root, startConfab } from "./cli.js";
import { LineClient } from "./support.js";

const children: ChildProcess[] = [];
after(() => {
  for (const c of children) c.kill("SIGKILL");
});

function exited(child: ChildProcess): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
  if (child.exitCode !== null || child.signalCode !== null)
    return Promise.resolve({ code: child.exitCode, signal: child.signalCode });
  return new Promise((resolve) => child.once("exit", (code, signal) => resolve({ code, signal })));
}

const STRAYS = [
  'Promise.reject(new Error("x")); 1',
  'fetch("http://127.0.0.1:1/"); "started"',
  '(async () => { throw new Error("f") })(); 2',
  '(await import("node:net")).connect(1, "127.0.0.1"); 1',
  'setTimeout(() => { throw new Error("late") }, 10)',
  "queueMicrotask(() => { throw 1 })",
];

test(
  "errors left behind by typed code are shown in the session as Uncaught, and the host lives on",
  { timeout: 60_000 },
  async () => {
    const { child, match, output } = await startConfab(
      ["serve", "--service", "0", "--announce", "--log", "none"],
      /listening on 127\.0\.0\.1:(\d+)/,
    );
    children.push(child);
    const port = Number(match[1]);
    const c = await LineClient.connect(port);
    c.send('"stray"\n');
    await c.until("CL-USER 1 > ");
    let prompt = 2;
    for (const input of STRAYS) {
      c.clear();
      c.send(`${input}\n`);
      await c.until(`CL-USER ${prompt} > `);
      prompt++;
      const seen = await c.until("Uncaught", 10_000);
      assert.ok(seen.includes("Uncaught"), input);
      assert.equal(child.exitCode, null, `the host survived ${input}`);
    }
    c.clear();
    c.send("1 + 1\n");
    assert.match(await c.until(`CL-USER ${prompt} > `), /^2\n/m);

    // Once the session has ended, what its code leaves behind goes to the host's stderr, named.
    c.send('setTimeout(() => { throw new Error("after the end") }, 300); 0\n');
    await c.until(`CL-USER ${prompt + 1} > `);
    c.end();
    await c.closed();
    const deadline = Date.now() + 10_000;
    while (!output().includes("after the end") && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    assert.match(
      output(),
      /listener "stray" \(session ended\): uncaught error from code it evaluated: Error: after the end/,
    );
    const again = await LineClient.connect(port);
    again.send('"still here"\n40 + 2\n');
    assert.match(await again.until("CL-USER 2 > "), /42/);
    again.destroy();
    child.kill("SIGTERM");
    assert.deepEqual(await exited(child), { code: 0, signal: null });
  },
);

test("the host's own uncaught error keeps Node's default: printed, exit code 1", { timeout: 30_000 }, async () => {
  const dir = await mkdtemp(join(tmpdir(), "confab-host-"));
  const module = join(dir, "host.mjs");
  const confab = pathToFileURL(join(root, "src/index.ts")).href;
  await writeFile(
    module,
    [
      `import { startUpServer } from ${JSON.stringify(confab)};`,
      // A listener inside the host, so that confab's handler for stray errors is in place.
      'await startUpServer({ service: 0, processName: "host listener", announce: process.stdout });',
      "export function crash(handle) {",
      "  handle.destroy();",
      '  setTimeout(() => { throw new Error("the host\'s own bug") }, 0);',
      "}",
    ].join("\n"),
  );
  const { child, output } = await startConfab(
    ["serve", "--service", "0", "--function", `${module}#crash`, "--announce", "--log", "none"],
    /host listener: listening on 127\.0\.0\.1:(\d+)[\s\S]*0 server: listening on 127\.0\.0\.1:(\d+)/,
  );
  children.push(child);
  const ports = [...output().matchAll(/listening on 127\.0\.0\.1:(\d+)/g)].map((m) => Number(m[1]));
  const [listenerPort, functionPort] = ports as [number, number];
  const c = await LineClient.connect(listenerPort);
  c.send('"watcher"\n1 + 1\n');
  await c.until("CL-USER 2 > ");
  const victim = await LineClient.connect(functionPort);
  victim.send("hello\n");
  assert.deepEqual(await exited(child), { code: 1, signal: null });
  assert.match(output(), /Error: the host's own bug/);
  c.destroy();
  victim.destroy();
});
