// "No unhandled rejection and no uncaught exception anywhere": a test that leaks one must fail.
//
// Finding: no setup module is needed. node:test (Node 20 and later) installs its own
// `uncaughtException` and `unhandledRejection` handlers. A leak while a test runs fails that
// test; a leak after its test ended (even after the last test of the file) is reported as
// "generated asynchronous activity after the test ended" and fails the file. Either way the run
// exits non-zero, with or without --unhandled-rejections=strict (which `npm test` passes too, so
// a leak outside the runner's reach still crashes). These tests hold the runner to that: each
// runs `node --import tsx --unhandled-rejections=strict --test` on a fixture that leaks one way,
// and the control fixture shows that handled rejections and confab process failures do not count.
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { fileURLToPath } from "node:url";
import { test } from "node:test";
import { childEnv, root } from "./cli.js";

interface Run {
  code: number | null;
  signal: NodeJS.Signals | null;
  output: string;
}

function fixture(name: string): string {
  return fileURLToPath(new URL(`./fixtures/${name}`, import.meta.url));
}

/** Runs the test runner on `files` as `npm test` does; killed after 30 s. */
function runTests(files: string[], extra: string[] = []): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(
      process.execPath,
      ["--import", "tsx", "--unhandled-rejections=strict", "--test", "--test-reporter=tap", ...extra, ...files],
      {
        cwd: root,
        env: childEnv(),
        stdio: ["ignore", "pipe", "pipe"],
      },
    );
    let output = "";
    child.stdout.on("data", (d: Buffer) => (output += d.toString()));
    child.stderr.on("data", (d: Buffer) => (output += d.toString()));
    const timer = setTimeout(() => child.kill("SIGKILL"), 30_000);
    child.on("error", reject);
    child.on("close", (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, output });
    });
  });
}

function assertFailed(run: Run, message: string): void {
  assert.equal(run.signal, null, `the run finished by itself:\n${run.output}`);
  assert.notEqual(run.code, 0, `the run must fail:\n${run.output}`);
  assert.match(run.output, /^# fail [1-9]/m, `the runner counts a failure:\n${run.output}`);
  assert.ok(run.output.includes(message), `the report names the leaked error "${message}":\n${run.output}`);
}

// The children run at once: each is a separate node process, and the suite waits for all.
const runs = {
  inTest: runTests([fixture("leak-rejection-in-test.ts")]),
  afterTest: runTests([fixture("leak-rejection-after-test.ts")]),
  afterLastTest: runTests([fixture("leak-rejection-after-last-test.ts")]),
  exception: runTests([fixture("leak-exception-after-test.ts")]),
  control: runTests([fixture("no-leak.ts")]),
  suite: runTests([fixture("no-leak.ts"), fixture("leak-rejection-after-last-test.ts")], ["--test-concurrency=1"]),
};
// Settled promises are awaited by the tests below; none may be left unobserved if one fails early.
for (const run of Object.values(runs)) run.catch(() => undefined);

test("a rejection leaked while a test runs fails that test and the run", async () => {
  const run = await runs.inTest;
  assertFailed(run, "leaked rejection in a running test");
  assert.match(run.output, /^not ok 1 - leaks a rejection while it runs/m);
});

test("a rejection leaked after its test ended fails the run", async () => {
  assertFailed(await runs.afterTest, "leaked rejection after its test ended");
});

test("a rejection leaked after the last test ended fails the run", async () => {
  assertFailed(await runs.afterLastTest, "leaked rejection after the last test");
});

test("an exception thrown from a timer after its test ended fails the run", async () => {
  assertFailed(await runs.exception, "uncaught exception after its test ended");
});

test("one leaking file fails a run of several files, as npm test runs them", async () => {
  assertFailed(await runs.suite, "leaked rejection after the last test");
});

test("control: handled rejections and a confab process that fails do not fail the run", async () => {
  const run = await runs.control;
  assert.equal(run.code, 0, run.output);
  assert.match(run.output, /^# fail 0/m);
  assert.match(run.output, /^# pass 2/m);
});
