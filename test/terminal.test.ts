// The interactive `confab connect` driven for real in a terminal: tmux runs the client in a
// pane, `send-keys` types, and `capture-pane` reads the screen. The tmux server has its own
// socket (in a temporary directory) and its own configuration, so it never touches a user's tmux.
import assert from "node:assert/strict";
import { execFile, spawnSync } from "node:child_process";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { promisify } from "node:util";
import { findProcessFromName, processKill, serverTerminate, startUpServer, type ServerProcess } from "../src/index.js";
import { childEnv, confabCommand, root } from "./cli.js";
import { eventually, sleep } from "./support.js";

const run = promisify(execFile);
const hasTmux = spawnSync("tmux", ["-V"], { stdio: "ignore" }).status === 0;
const skip = hasTmux ? false : "tmux is not installed (CI installs it; apt-get install tmux)";

let dir = "";
let historyFile: string;
let server: ServerProcess | undefined;
let tmuxStarted = false;
let sessions = 0;

before(async () => {
  if (!hasTmux) return;
  dir = await mkdtemp(join(tmpdir(), "confab-terminal-"));
  historyFile = join(dir, "history");
  // A known shell runs each pane's command; remain-on-exit keeps the screen of a client that has
  // ended; exit-empty off keeps the tmux server up between panes (a pane started while the server
  // exits after the last one closed fails with "server exited unexpectedly"). after() stops it.
  await writeFile(
    join(dir, "tmux.conf"),
    "set -g default-shell /bin/sh\nset -g remain-on-exit on\nset -s exit-empty off\n",
  );
  server = await startUpServer({ service: 0, context: { uniqueWidgetName: 1 } });
});

after(async () => {
  if (tmuxStarted) await tmux("kill-server").catch(() => undefined);
  if (server !== undefined) serverTerminate(server);
  if (dir !== "") await rm(dir, { recursive: true, force: true });
});

/** Runs one tmux command against the tests' own tmux server. */
async function tmux(...args: string[]): Promise<string> {
  // Its own socket, in the tests' temporary directory (removed with it), and its own configuration.
  const { stdout } = await run("tmux", ["-S", join(dir, "tmux.sock"), "-f", join(dir, "tmux.conf"), ...args], {
    env: childEnv(),
    timeout: 10_000,
  });
  return stdout;
}

/** A pane running `confab connect PORT ...args`, 120x30, with its own history file. */
class Pane {
  readonly target: string;
  readonly statusFile: string;

  private constructor(target: string, statusFile: string) {
    this.target = target;
    this.statusFile = statusFile;
  }

  static async start(args: string[] = []): Promise<Pane> {
    assert.ok(server);
    const target = `t${++sessions}`;
    const statusFile = join(dir, `${target}.status`);
    const client = confabCommand(["connect", String(server.port), ...args]);
    const command = `env -u NODE_TEST_CONTEXT CONFAB_HISTORY='${historyFile}' ${client}; echo $? > '${statusFile}'`;
    await tmux("new-session", "-d", "-s", target, "-x", "120", "-y", "30", "-c", root, command);
    tmuxStarted = true;
    return new Pane(target, statusFile);
  }

  /** The visible screen, one string (trailing spaces trimmed by tmux). */
  screen(): Promise<string> {
    return tmux("capture-pane", "-p", "-t", this.target);
  }

  /** Types keys: text is sent literally, and names such as `Enter`, `Tab`, `C-c`, `Up` as keys. */
  async keys(...keys: string[]): Promise<void> {
    for (const key of keys) {
      if (/^(Enter|Tab|Up|Down|Left|Right|Home|End|BSpace|C-[a-z])$/.test(key))
        await tmux("send-keys", "-t", this.target, key);
      else await tmux("send-keys", "-t", this.target, "-l", key);
    }
  }

  /** Polls the screen until `expected` matches it; returns the screen. */
  async until(expected: RegExp, timeout = 10_000): Promise<string> {
    const deadline = Date.now() + timeout;
    let screen = "";
    for (;;) {
      screen = await this.screen();
      if (expected.test(screen)) return screen;
      if (Date.now() > deadline)
        throw new Error(`the pane did not show ${String(expected)} within ${timeout} ms; it shows:\n${screen}`);
      await sleep(50);
    }
  }

  /** `undefined` while the client runs; its exit status once it has ended. */
  async exitStatus(): Promise<number | undefined> {
    // The pane's shell writes the status to a file (tmux's own #{pane_dead_status} is not
    // always filled in).
    const text = await readFile(this.statusFile, "utf8").catch(() => "");
    return text.endsWith("\n") ? Number(text) : undefined;
  }

  /** Waits until the client has exited and returns its status. */
  async exited(timeout = 10_000): Promise<number> {
    const deadline = Date.now() + timeout;
    for (;;) {
      const status = await this.exitStatus();
      if (status !== undefined) return status;
      if (Date.now() > deadline)
        throw new Error(
          `the client in ${this.target} still runs after ${timeout} ms; it shows:\n${await this.screen()}`,
        );
      await sleep(50);
    }
  }

  /** Ends the client with Ctrl-D and checks it exited cleanly. */
  async close(): Promise<void> {
    await this.keys("C-d");
    assert.equal(await this.exited(), 0);
    await tmux("kill-session", "-t", this.target);
  }
}

/** A line of the screen, as a regular expression source: the text exactly, on a line of its own. */
function line(text: string): RegExp {
  return new RegExp(`^${text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}$`, "m");
}

test("the client shows the prompt CL-USER 1 > and prints values", { skip }, async () => {
  const pane = await Pane.start();
  await pane.until(line("CL-USER 1 >"));
  await pane.keys("1 + 2", "Enter");
  const screen = await pane.until(line("CL-USER 2 >"));
  assert.match(screen, /^CL-USER 1 > 1 \+ 2\n3\nCL-USER 2 >$/m, "the input, its value, the next prompt");
  await pane.close();
});

test("input over several lines gets a continuation prompt, then its value", { skip }, async () => {
  const pane = await Pane.start();
  await pane.until(line("CL-USER 1 >"));
  await pane.keys("function triple(n: number) {", "Enter");
  await pane.until(line("..."));
  await pane.keys("return n * 3", "Enter");
  await pane.until(line("... return n * 3"));
  await pane.until(/^\.\.\.$/m);
  await pane.keys("}", "Enter");
  await pane.until(line("CL-USER 2 >"));
  await pane.keys("triple(", "Enter");
  await pane.until(/^\.\.\.$/m);
  await pane.keys("14)", "Enter");
  const screen = await pane.until(line("CL-USER 3 >"));
  assert.match(
    screen,
    /^CL-USER 1 > function triple\(n: number\) \{\n\.\.\. return n \* 3\n\.\.\. \}\nundefined\nCL-USER 2 > triple\(\n\.\.\. 14\)\n42\nCL-USER 3 >$/m,
  );
  await pane.close();
});

test("Tab completes names the listener exposes and names inside mp", { skip }, async () => {
  const pane = await Pane.start();
  await pane.until(line("CL-USER 1 >"));
  await pane.keys("uniqueWid");
  await pane.until(line("CL-USER 1 > uniqueWid"));
  await pane.keys("Tab");
  await pane.until(line("CL-USER 1 > uniqueWidgetName"));
  await pane.keys(" + 1", "Enter");
  await pane.until(/^CL-USER 1 > uniqueWidgetName \+ 1\n2\nCL-USER 2 >$/m);
  await pane.keys("mp.processR");
  await pane.until(line("CL-USER 2 > mp.processR"));
  await pane.keys("Tab");
  await pane.until(line("CL-USER 2 > mp.processRunFunction"));
  await pane.keys("Enter");
  await pane.until(/^\[Function: processRunFunction\]\nCL-USER 3 >$/m);
  await pane.close();
});

test("history is kept in a file across sessions, and Up recalls the last input", { skip }, async () => {
  const marker = `'history marker ${Date.now().toString(36)}'`;
  const first = await Pane.start();
  await first.until(line("CL-USER 1 >"));
  await first.keys(marker, "Enter");
  await first.until(line("CL-USER 2 >"));
  await first.close();
  const saved = await readFile(historyFile, "utf8");
  assert.ok(saved.split("\n").includes(marker), `the history file holds the input; it has ${JSON.stringify(saved)}`);

  const second = await Pane.start();
  await second.until(line("CL-USER 1 >"));
  await second.keys("Up");
  await second.until(line(`CL-USER 1 > ${marker}`));
  await second.keys("Enter");
  await second.until(new RegExp(`^${marker}\\nCL-USER 2 >$`, "m"));
  await second.close();
});

test("Ctrl-C cancels a half-typed line or an unfinished input, and the next input works", { skip }, async () => {
  const pane = await Pane.start();
  await pane.until(line("CL-USER 1 >"));
  await pane.keys("this is not going to run");
  await pane.until(line("CL-USER 1 > this is not going to run"));
  await pane.keys("Left", "Left", "Left", "C-c");
  // The whole line is dropped, also the part right of the cursor.
  await pane.until(/^CL-USER 1 > \^C\nCL-USER 1 >$/m);
  await pane.keys("6 * 7", "Enter");
  await pane.until(/^CL-USER 1 > 6 \* 7\n42\nCL-USER 2 >$/m);
  await pane.keys("const unfinished = [", "Enter");
  await pane.until(/^\.\.\.$/m);
  await pane.keys("C-c");
  await pane.until(/^\.\.\. \^C\nCL-USER 2 >$/m);
  await pane.keys("typeof unfinished", "Enter");
  await pane.until(/^CL-USER 2 > typeof unfinished\n'undefined'\nCL-USER 3 >$/m);
  assert.equal(await pane.exitStatus(), undefined, "Ctrl-C never ends the client");
  await pane.close();
});

test(
  "Ctrl-D ends the client and its session at once, even while an input is still being evaluated",
  { skip },
  async () => {
    const pane = await Pane.start(["--name", "terminal leaver"]);
    await pane.until(line("CL-USER 1 >"));
    await pane.keys("await new Promise(() => {})", "Enter");
    await eventually(() => findProcessFromName("terminal leaver") !== undefined);
    await pane.keys("C-d");
    assert.equal(await pane.exited(), 0);
    await eventually(() => findProcessFromName("terminal leaver") === undefined, 5000, "the session's process ends");
    await tmux("kill-session", "-t", pane.target);
  },
);

test("Ctrl-C while an input awaits abandons it: the prompt comes back, declarations intact", { skip }, async () => {
  const pane = await Pane.start();
  await pane.until(line("CL-USER 1 >"));
  await pane.keys("const kept = 6", "Enter");
  await pane.until(line("CL-USER 2 >"));
  await pane.keys("await new Promise(() => {})", "Enter");
  await pane.keys("C-c");
  await pane.until(line("CL-USER 3 >"));
  assert.match(await pane.screen(), /Interrupted: input 2 abandoned/);
  await pane.keys("kept * 7", "Enter");
  await pane.until(line("42"));
  await pane.keys("C-d");
  assert.equal(await pane.exited(), 0);
  await tmux("kill-session", "-t", pane.target);
});

test("the client ends when its listener is killed on the server", { skip }, async () => {
  const pane = await Pane.start(["--name", "terminal victim"]);
  await pane.until(line("CL-USER 1 >"));
  await pane.keys("'about to be killed'", "Enter");
  await pane.until(line("CL-USER 2 >"));
  const p = findProcessFromName("terminal victim");
  assert.ok(p, "the --name names the listener's process");
  processKill(p);
  assert.equal(await pane.exited(), 0);
});
