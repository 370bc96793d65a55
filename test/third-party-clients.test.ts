// Real third-party clients holding sessions: OpenBSD netcat and socat against a listener
// server (and the seed's talk server) started in this process. A plain client needs no
// protocol extension: it sends a name line, then source text, and reads prompts and values.
import assert from "node:assert/strict";
import { spawn, spawnSync, type ChildProcess, type ChildProcessByStdio } from "node:child_process";
import { after, before, test } from "node:test";
import type { Readable, Writable } from "node:stream";
import { startTalkServer } from "../examples/talk.js";
import { findProcessFromName, serverTerminate, startUpServer, type ServerProcess } from "../src/index.js";
import { eventually } from "./support.js";
import { Waker } from "./waker.js";

// netcat-openbsd says so in its usage text; -N (shut down the socket after EOF on stdin) is its option.
const ncUsage = spawnSync("nc", ["-h"], { encoding: "utf8" });
const hasNc =
  ncUsage.error === undefined &&
  /OpenBSD netcat/.test(`${ncUsage.stdout}${ncUsage.stderr}`) &&
  /-N\b/.test(`${ncUsage.stdout}${ncUsage.stderr}`);
const hasSocat = spawnSync("socat", ["-V"], { stdio: "ignore" }).status === 0;
const skipNc = hasNc ? false : "OpenBSD netcat (nc with -N) is not installed (CI installs netcat-openbsd with apt)";
const skipSocat = hasSocat ? false : "socat is not installed (CI installs it with apt)";

let listener: ServerProcess;
let talk: ServerProcess;
const children: ChildProcess[] = [];

before(async () => {
  listener = await startUpServer({ service: 0, context: { inventory: { widgets: 3 } } });
  talk = await startTalkServer(0);
});

after(() => {
  for (const child of children) if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
  serverTerminate(listener);
  serverTerminate(talk);
});

/** A running client program: what it printed so far, a way to wait for text, and its exit. */
interface Client {
  readonly child: ChildProcessByStdio<Writable, Readable, Readable>;
  output(): string;
  until(needle: string, timeout?: number): Promise<string>;
  exited(timeout?: number): Promise<number | null>;
}

function client(command: string, args: string[]): Client {
  const child = spawn(command, args, { stdio: ["pipe", "pipe", "pipe"] });
  children.push(child);
  let out = "";
  let err = "";
  const waker = new Waker();
  child.stdout.setEncoding("utf8");
  child.stdout.on("data", (text: string) => {
    out += text;
    waker.wake();
  });
  child.stderr.on("data", (d: Buffer) => (err += d.toString()));
  const exit = new Promise<number | null>((resolve) => child.once("close", (code) => resolve(code)));
  const describe = (): string =>
    `${command} ${args.join(" ")}: stdout ${JSON.stringify(out)}, stderr ${JSON.stringify(err)}`;
  return {
    child,
    output: () => out,
    async until(needle, timeout = 10_000) {
      const deadline = Date.now() + timeout;
      while (!out.includes(needle)) {
        const left = deadline - Date.now();
        if (left <= 0) throw new Error(`no ${JSON.stringify(needle)} within ${timeout} ms; ${describe()}`);
        await waker.sleep(left);
      }
      return out;
    },
    exited(timeout = 10_000) {
      return Promise.race([
        exit,
        new Promise<never>((_, reject) => {
          const timer = setTimeout(
            () => reject(new Error(`still running after ${timeout} ms; ${describe()}`)),
            timeout,
          );
          void exit.then(() => clearTimeout(timer));
        }),
      ]);
    },
  };
}

/** Runs a client with all of `input` on stdin (then end of file) and returns its output once it exits. */
async function transcript(
  command: string,
  args: string[],
  input: string,
): Promise<{ code: number | null; output: string }> {
  const c = client(command, args);
  c.child.stdin.end(input);
  const code = await c.exited();
  return { code, output: c.output() };
}

const nc = (port: number): [string, string[]] => ["nc", ["-N", "127.0.0.1", String(port)]];
// -t: after end of input, wait (up to 10 s) for the listener to finish and hang up.
const socat = (port: number): [string, string[]] => ["socat", ["-t", "10", "-", `TCP:127.0.0.1:${port}`]];

test("netcat: a piped session prints prompts and values, declarations persist", { skip: skipNc }, async () => {
  const { code, output } = await transcript(...nc(listener.port), '"nc session"\n1 + 1\nconst x = 5\nx * 2\n');
  assert.equal(output, "CL-USER 1 > 2\nCL-USER 2 > undefined\nCL-USER 3 > 10\nCL-USER 4 > ");
  assert.equal(code, 0, "the listener hangs up at end of input and nc exits");
});

test("socat: a piped session prints prompts and values, declarations persist", { skip: skipSocat }, async () => {
  const { code, output } = await transcript(...socat(listener.port), '"socat session"\n1 + 1\nconst x = 5\nx * 2\n');
  assert.equal(output, "CL-USER 1 > 2\nCL-USER 2 > undefined\nCL-USER 3 > 10\nCL-USER 4 > ");
  assert.equal(code, 0);
});

test(
  "socat: TypeScript over several lines, awaits, console output and exposed objects",
  { skip: skipSocat },
  async () => {
    const input = [
      '"socat typescript"',
      "function widgets(extra: number): number {",
      "  console.log('counting')",
      "  return inventory.widgets + extra",
      "}",
      "await new Promise((r) => setTimeout(() => r(widgets(4)), 50))",
      "'after the await'",
      "",
    ].join("\n");
    // The input stays open until the last answer: end of file ends a session, even one whose input awaits.
    const c = client(...socat(listener.port));
    c.child.stdin.write(input);
    await c.until("CL-USER 4 > ");
    c.child.stdin.end();
    assert.equal(await c.exited(), 0);
    assert.equal(
      c.output(),
      "CL-USER 1 > undefined\nCL-USER 2 > counting\n7\nCL-USER 3 > 'after the await'\nCL-USER 4 > ",
    );
  },
);

test("socat: end of input ends the session at once, even while an input awaits", { skip: skipSocat }, async () => {
  const { code, output } = await transcript(...socat(listener.port), '"socat leaver"\nawait new Promise(() => {})\n');
  assert.equal(output, "CL-USER 1 > ");
  assert.equal(code, 0);
  await eventually(() => findProcessFromName("socat leaver") === undefined);
});

test("netcat holds a live session: each line is answered while its input stays open", { skip: skipNc }, async () => {
  const c = client(...nc(listener.port));
  c.child.stdin.write('"live nc session"\n');
  await c.until("CL-USER 1 > ");
  const p = findProcessFromName("live nc session");
  assert.ok(p, "the name line named the listener's process");
  assert.equal(p.state, "running");
  c.child.stdin.write("const y: number = 20\n");
  await c.until("CL-USER 2 > ");
  c.child.stdin.write("await new Promise((r) => setTimeout(() => r(y + 1), 50))\n");
  await c.until("CL-USER 3 > ");
  assert.equal(c.output(), "CL-USER 1 > undefined\nCL-USER 2 > 21\nCL-USER 3 > ", "no echo, one prompt per input");
  assert.equal(p.state, "running", "the session is still open");
  c.child.stdin.end();
  assert.equal(await c.exited(), 0);
  await eventually(() => p.state !== "running", 5000, "the listener to end");
  assert.equal(p.state, "finished", "end of file ends the listener's process");
});

test(
  "two third-party sessions at once: one lists the other and kills it, which hangs up on it",
  { skip: skipNc || skipSocat },
  async () => {
    // socat as the victim: unlike nc, it quits when the connection ends even though its input is open.
    const victim = client("socat", ["-", `TCP:127.0.0.1:${listener.port}`]);
    victim.child.stdin.write('"victim via socat"\n');
    await victim.until("CL-USER 1 > ");
    const p = findProcessFromName("victim via socat");
    assert.ok(p);
    const killer = client(...nc(listener.port));
    killer.child.stdin.write('"killer via nc"\n');
    await killer.until("CL-USER 1 > ");
    killer.child.stdin.write(
      "ps().filter((r) => r.name === 'victim via socat').map((r) => [r.state, r.peer?.startsWith('127.0.0.1:')])\n",
    );
    await killer.until("CL-USER 2 > ");
    killer.child.stdin.write("kill('victim via socat')\n");
    await killer.until("CL-USER 3 > ");
    assert.equal(killer.output(), "CL-USER 1 > [ [ 'running', true ] ]\nCL-USER 2 > true\nCL-USER 3 > ");
    assert.equal(p.state, "killed");
    // The victim's input is still open: socat quits because the listener closed the connection.
    assert.equal(await victim.exited(), 0);
    assert.match(
      victim.output(),
      /^CL-USER 1 > Error: session killed \(process \d+ "victim via socat" was killed\)\n$/,
      "told why, then hung up on",
    );
    killer.child.stdin.end();
    assert.equal(await killer.exited(), 0);
  },
);

test("a first line that is not a string: nc gets a one-line error and is hung up on", { skip: skipNc }, async () => {
  const { code, output } = await transcript(...nc(listener.port), "globalThis.pwned = 1\nglobalThis.pwned = 2\n");
  assert.match(output, /^Error: [^\n]*\n$/);
  assert.equal(code, 0);
  assert.equal((globalThis as Record<string, unknown>).pwned, undefined, "nothing was evaluated");
});

test("the seed's talk server answers netcat line by line", { skip: skipNc }, async () => {
  const { code, output } = await transcript(...nc(talk.port), "Hello self.\nWhy don't you say something original?\n");
  assert.equal(output, "You sent: 'Hello self.'\nYou sent: 'Why don't you say something original?'\n");
  assert.equal(code, 0);
});

test("the seed's talk server holds a live netcat conversation", { skip: skipNc }, async () => {
  const c = client(...nc(talk.port));
  c.child.stdin.write("first\n");
  await c.until("You sent: 'first'\n");
  c.child.stdin.write("second\n");
  await c.until("You sent: 'second'\n");
  assert.equal(c.output(), "You sent: 'first'\nYou sent: 'second'\n");
  c.child.stdin.end();
  assert.equal(await c.exited(), 0);
});
