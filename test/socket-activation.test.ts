// `confab serve` started the systemd way: systemd-socket-activate (Debian's systemd package)
// binds the port, then starts confab with the listening socket as fd 3 and LISTEN_FDS/LISTEN_PID set.
import assert from "node:assert/strict";
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { after, test } from "node:test";
import { confabArgv, childEnv, root } from "./cli.js";
import { LineClient, eventually, freePort } from "./support.js";

const available = spawnSync("systemd-socket-activate", ["--version"]).error === undefined;
const skip = available ? false : "systemd-socket-activate is not installed (Debian's systemd package)";
const children: ChildProcess[] = [];
after(() => {
  for (const c of children) c.kill("SIGKILL");
});

function activate(port: number, args: string[]): { child: ChildProcess; output: () => string } {
  const child = spawn("systemd-socket-activate", ["-l", `127.0.0.1:${port}`, ...confabArgv(args)], {
    cwd: root,
    env: childEnv(),
    stdio: ["ignore", "pipe", "pipe"],
  });
  children.push(child);
  let out = "";
  child.stdout.on("data", (d: Buffer) => (out += d.toString()));
  child.stderr.on("data", (d: Buffer) => (out += d.toString()));
  return { child, output: () => out };
}

test(
  "confab serve takes the listening socket systemd passes, and serves the connection that started it",
  { skip },
  async () => {
    const port = await freePort();
    const { child, output } = activate(port, [
      "serve",
      "--service",
      "1",
      "--function",
      "examples/talk.ts#makeStreamAndTalk",
      "--announce",
    ]);
    await eventually(() => /Listening on/.test(output()), 10_000, "systemd-socket-activate listens");
    // The first connection makes systemd-socket-activate start confab with the socket.
    const c = await LineClient.connect(port);
    c.send("activated\n");
    assert.equal(await c.line(15_000), "You sent: 'activated'");
    assert.match(
      output(),
      new RegExp(`listening on 127\\.0\\.0\\.1:${port}\\n`),
      "the announce line names the inherited socket, not --service 1",
    );
    const exited = new Promise<number | null>((resolve) => child.once("exit", resolve));
    child.kill("SIGTERM");
    c.destroy();
    assert.equal(await exited, 0);
  },
);

test("the listener server behind an inherited socket keeps its loopback rule and works", { skip }, async () => {
  const port = await freePort();
  const { child, output } = activate(port, ["serve", "--announce"]);
  await eventually(() => /Listening on/.test(output()), 10_000, "systemd-socket-activate listens");
  const c = await LineClient.connect(port);
  c.send('"activated listener"\n6 * 7\n');
  const text = await c.until("CL-USER 2 > ", 15_000);
  assert.match(text, /CL-USER 1 > 42\n/);
  c.destroy();
  child.kill("SIGTERM");
});
