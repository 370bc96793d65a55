import assert from "node:assert/strict";
import { mkdtemp, readdir, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import type { ChildProcess } from "node:child_process";
import { eventually, LineClient, portOpen } from "./support.js";
import { runConfab, startConfab } from "./cli.js";

const children: ChildProcess[] = [];
after(() => {
  for (const c of children) c.kill("SIGKILL");
});

test("confab serve --function MODULE#EXPORT serves a user's handler module", async () => {
  const dir = await mkdtemp(join(tmpdir(), "confab-handler-"));
  const module = join(dir, "shout.mjs");
  await writeFile(
    module,
    [
      "export async function shout(handle) {",
      "  handle.resume();",
      "  handle.setEncoding('utf8');",
      "  handle.once('data', (text) => handle.end(text.toUpperCase()));",
      "}",
    ].join("\n"),
  );
  const { child, match } = await startConfab(
    ["serve", "--service", "0", "--function", `${module}#shout`, "--announce"],
    /listening on 127\.0\.0\.1:(\d+)\n/,
  );
  children.push(child);
  const port = Number(match[1]);
  const c = await LineClient.connect(port);
  c.send("quiet please\n");
  assert.equal(await c.line(), "QUIET PLEASE");
  child.kill("SIGTERM");
  const code = await new Promise((resolve) => child.once("exit", resolve));
  assert.equal(code, 0, "SIGTERM stops the server cleanly");
  assert.equal(await portOpen(port), false);
});

test("confab serve --announce names the listener server and says how to connect", async () => {
  const { child, match } = await startConfab(
    ["serve", "--service", "0", "--announce"],
    /^0 server: listening on 127\.0\.0\.1:(\d+); connect with: npx confab connect (\d+)\n/,
  );
  children.push(child);
  assert.equal(match[1], match[2]);
  child.kill("SIGINT");
  assert.deepEqual(await new Promise((resolve) => child.once("exit", (code, signal) => resolve([code, signal]))), [
    0,
    null,
  ]);
});

test("confab serve reports a missing export clearly", async () => {
  const { code, stderr } = await runConfab(["serve", "--service", "0", "--function", "./no/such/module.mjs#nope"]);
  assert.equal(code, 1);
  assert.match(stderr, /^confab: --function: cannot import \.\/no\/such\/module\.mjs/);
});

test("confab serve on a Unix socket in a directory that does not exist says that directory does not exist", async () => {
  const { code, stdout, stderr } = await runConfab(["serve", "--service", "unix:/no/such/dir/s.sock"]);
  assert.equal(code, 1);
  assert.equal(stdout, "");
  assert.equal(
    stderr,
    'confab: cannot start "unix:/no/such/dir/s.sock" server: the directory /no/such/dir of the socket /no/such/dir/s.sock does not exist (ENOENT)\n',
  );
});

test(
  "confab serve on a Unix socket path over the OS's 107 bytes refuses it, and leaves no socket under a shortened name",
  { skip: process.platform !== "linux" },
  async () => {
    const dir = await mkdtemp(join(tmpdir(), "confab-long-"));
    const path = join(dir, "q".repeat(130 - dir.length));
    const { code, stderr } = await runConfab(["serve", "--service", `unix:${path}`]);
    assert.equal(code, 1);
    assert.equal(
      stderr,
      `confab: the Unix socket path ${path} is 131 bytes; linux takes at most 107 (and would cut it short): choose a shorter path\n`,
    );
    assert.deepEqual(await readdir(dir), [], "no stray socket");
  },
);

test("confab serve --max-buffered-input bounds the unread input of a --function server: the connection over it is told why and logged", async () => {
  const { child, output } = await startConfab(
    [
      "serve",
      "--service",
      "0",
      "--function",
      "examples/talk.ts#makeStreamAndTalk",
      "--max-buffered-input",
      "100000",
      "--announce",
    ],
    /listening on 127\.0\.0\.1:(\d+)\n/,
  );
  children.push(child);
  const port = Number(/listening on 127\.0\.0\.1:(\d+)\n/.exec(output())?.[1]);
  const c = await LineClient.connect(port);
  c.send("x".repeat(200_000)); // no newline
  assert.match(
    (await c.line()) ?? "",
    /^Error: the server held \d+ bytes of unread input, over its maxBufferedInput of 100000, and this connection the most \(\d+ bytes\); closing$/,
  );
  await c.closed();
  await eventually(
    () => /: dropped 127\.0\.0\.1:\d+: maxBufferedInput 100000: held \d+ of the \d+ bytes/.test(output()),
    5000,
    "the drop logged",
  );
  const ok = await LineClient.connect(port);
  ok.send("still here\n");
  assert.equal(await ok.line(), "You sent: 'still here'");
  ok.destroy();
  child.kill("SIGTERM");
  await new Promise((resolve) => child.once("exit", resolve));
});

test("confab with an unknown command or option prints usage and exits 2", async () => {
  const unknown = await runConfab(["frobnicate"]);
  assert.equal(unknown.code, 2);
  assert.match(unknown.stderr, /unknown command "frobnicate"/);
  const badOption = await runConfab(["serve", "--bogus"]);
  assert.equal(badOption.code, 2);
  const help = await runConfab(["--help"]);
  assert.equal(help.code, 0);
  assert.match(help.stdout, /confab connect \[HOST\] SERVICE/);
});

test("SIGTERM stops accepting at once, lets sessions finish until the drain deadline, then exits 0", async () => {
  const { child, match } = await startConfab(
    [
      "serve",
      "--service",
      "0",
      "--function",
      "examples/talk.ts#makeStreamAndTalk",
      "--drain-timeout",
      "700",
      "--announce",
    ],
    /listening on 127\.0\.0\.1:(\d+)\n/,
  );
  children.push(child);
  const port = Number(match[1]);
  const session = await LineClient.connect(port);
  session.send("before\n");
  assert.equal(await session.line(), "You sent: 'before'");
  const exited = new Promise<number | null>((resolve) => child.once("exit", resolve));
  const stoppedAt = Date.now();
  child.kill("SIGTERM");
  await eventually(() => !session.ended && Date.now() - stoppedAt > 50);
  assert.equal(await portOpen(port), false, "no new connections once SIGTERM arrived");
  session.send("during the drain\n");
  assert.equal(await session.line(), "You sent: 'during the drain'", "open sessions are still served");
  assert.equal(await session.line(5000), null, "the session is closed at the deadline");
  assert.equal(await exited, 0);
  const took = Date.now() - stoppedAt;
  assert.ok(took >= 600 && took < 5000, `exited after the 700 ms drain (${took} ms)`);
});
