import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import { captureReports, hang, sleep } from "../../test/support.js";
import {
  kKill,
  kOwner,
  Process,
  processAliveP,
  processJoin,
  processKill,
  processRunFunction,
  type ProcessResource,
} from "./process.js";
import { findProcessFromName, getCurrentProcess, listAllProcesses } from "./registry.js";
import { kWait } from "./wait-state.js";

class FakeResource implements ProcessResource {
  [kOwner]: ProcessResource[typeof kOwner];
  closed = 0;
  [kKill](): void {
    this.closed++;
  }
}

test("processRunFunction returns the process at once and the function's value becomes its result", async () => {
  let ran = false;
  const p = processRunFunction(
    "adder",
    {},
    (a: number, b: number) => {
      ran = true;
      return a + b;
    },
    2,
    3,
  );
  assert.equal(ran, false, "the function starts after processRunFunction returns");
  assert.equal(p.name, "adder");
  assert.equal(p.state, "running");
  assert.equal(await processJoin(p), true);
  assert.equal(p.state, "finished");
  assert.equal(p.result, 5);
});

test("process ids are unique and increasing", () => {
  const a = processRunFunction("a", undefined, () => undefined);
  const b = processRunFunction("b", undefined, () => undefined);
  assert.ok(b.id > a.id);
});

test("getCurrentProcess follows a process through awaits and timers", async () => {
  assert.equal(getCurrentProcess(), undefined);
  const seen: unknown[] = [];
  const p = processRunFunction("current", {}, async () => {
    seen.push(getCurrentProcess());
    await sleep(1);
    seen.push(getCurrentProcess());
    await new Promise<void>((resolve) =>
      setImmediate(() => {
        seen.push(getCurrentProcess());
        resolve();
      }),
    );
  });
  await processJoin(p);
  assert.deepEqual(seen, [p, p, p]);
});

test("listAllProcesses and findProcessFromName see running processes only", async () => {
  let release!: () => void;
  const gate = new Promise<void>((resolve) => (release = resolve));
  const p = processRunFunction("findable worker", {}, () => gate);
  assert.ok(listAllProcesses().includes(p));
  assert.equal(findProcessFromName("findable worker"), p);
  assert.equal(processAliveP(p), true);
  release();
  await processJoin(p);
  assert.equal(processAliveP(p), false);
  assert.ok(!listAllProcesses().includes(p));
  assert.equal(findProcessFromName("findable worker"), undefined);
});

test("processJoin resolves false when the timeout passes first, and never rejects", async () => {
  const p = processRunFunction("sleeper", {}, () => hang());
  assert.equal(await processJoin(p, { timeout: 20 }), false);
  processKill(p);
  assert.equal(await processJoin(p, { timeout: 20 }), true);
  const failing = processRunFunction("failing", {}, () => Promise.reject(new Error("nope")));
  const { restore } = captureReports();
  try {
    assert.equal(await processJoin(failing), true);
  } finally {
    restore();
  }
});

test("processKill aborts the signal, closes owned resources and marks the process killed", async () => {
  const resource = new FakeResource();
  let signal: AbortSignal | undefined;
  const p = processRunFunction("victim", {}, async () => {
    signal = getCurrentProcess()?.signal;
    getCurrentProcess()?.own(resource);
    await hang();
  });
  await sleep(1);
  assert.ok(signal !== undefined);
  assert.equal(signal.aborted, false);
  assert.equal(processKill(p), true);
  assert.equal(p.state, "killed");
  assert.equal(signal.reason instanceof Error, true);
  assert.equal(resource.closed, 1);
  assert.equal(processKill(p), false, "killing twice does nothing");
  assert.equal(resource.closed, 1);
  assert.equal(await processJoin(p, { timeout: 100 }), true);
});

test("a process killed before it starts never runs", async () => {
  let ran = false;
  const p = processRunFunction("never", {}, () => {
    ran = true;
  });
  processKill(p);
  await sleep(1);
  assert.equal(ran, false);
  assert.equal(p.state, "killed");
});

test("a resource made outside any process and passed as an argument belongs to the new process", () => {
  const resource = new FakeResource();
  const p = processRunFunction("owner", {}, (_r: FakeResource) => hang(), resource);
  assert.equal(resource[kOwner], p);
  processKill(p);
  assert.equal(resource.closed, 1);
});

test("a thrown error or rejection is recorded and reported once with the process name, never unhandled", async () => {
  const { reports, restore } = captureReports();
  try {
    const thrower = processRunFunction("thrower", {}, () => {
      throw new Error("sync boom");
    });
    const rejecter = processRunFunction("rejecter", {}, async () => {
      await sleep(1);
      throw new Error("async boom");
    });
    await processJoin(thrower);
    await processJoin(rejecter);
    assert.equal(thrower.state, "failed");
    assert.equal((thrower.error as Error).message, "sync boom");
    assert.equal(rejecter.state, "failed");
    assert.equal((rejecter.error as Error).message, "async boom");
    assert.equal(reports.length, 2);
    assert.match(reports[0]?.what ?? "", /"thrower"/);
    assert.match(reports[1]?.what ?? "", /"rejecter"/);
  } finally {
    restore();
  }
});

test("a killed process whose last await rejects is not reported as failed", async () => {
  const { reports, restore } = captureReports();
  try {
    const p = processRunFunction("dies quietly", {}, async () => {
      const signal = getCurrentProcess()?.signal;
      await new Promise((_, reject) => signal?.addEventListener("abort", () => reject(new Error("aborted"))));
    });
    await sleep(1);
    processKill(p);
    await sleep(5);
    assert.equal(p.state, "killed");
    assert.equal(reports.length, 0);
  } finally {
    restore();
  }
});

test("properties given as keywords are kept on the process", () => {
  const p = processRunFunction("with props", { properties: { role: "test" } }, () => undefined);
  assert.deepEqual(p.properties, { role: "test" });
});

test("a process that fails closes what it owns; one that finishes lets go of it for the next user", async () => {
  const { restore } = captureReports();
  try {
    const crashed = new FakeResource();
    const failing = processRunFunction(
      "crashes",
      {},
      (_r: FakeResource) => {
        throw new Error("crash");
      },
      crashed,
    );
    await processJoin(failing);
    assert.equal(crashed.closed, 1);
    const handedOn = new FakeResource();
    const finishing = processRunFunction("finishes", {}, (_r: FakeResource) => 1, handedOn);
    await processJoin(finishing);
    assert.equal(handedOn.closed, 0);
    assert.equal(handedOn[kOwner], undefined);
  } finally {
    restore();
  }
});

test("a process's async context is its own, from the first process a program starts on: code around it never sees it, and it keeps the caller's other async context", () => {
  const fixture = fileURLToPath(new URL("../../test/fixtures/process-context.ts", import.meta.url));
  const run = spawnSync(process.execPath, ["--import", "tsx", fixture], { encoding: "utf8", timeout: 20_000 });
  assert.equal(run.status, 0, run.stderr);
  const rounds = JSON.parse(run.stdout) as string[][];
  assert.equal(rounds.length, 3);
  rounds.forEach((seen, i) => {
    const r = String(i + 1);
    const request = i === 0 ? "-" : `request${r}`;
    const expected = [
      "after-immediate:-/-",
      "after-microtask:-/-",
      "after-timer:-/-",
      "before-immediate:-/-",
      "before-microtask:-/-",
      "caller-after-join:-/-",
      `child:c${r}/${request}`,
      `inside-after-await:p${r}/${request}`,
      `inside-after-child:p${r}/${request}`,
      `inside-timer:p${r}/${request}`,
      `inside:p${r}/${request}`,
    ].sort();
    assert.deepEqual(seen, expected, `round ${r}`);
  });
});

test("a Process's public surface is exactly the documented API: nothing internal is reachable", () => {
  const p = processRunFunction("surface", {}, () => hang());
  assert.deepEqual(
    Reflect.ownKeys(p),
    [kWait],
    "an instance's one own property is its current wait, a symbol shared with what makes it wait",
  );
  const names = Reflect.ownKeys(Process.prototype).map(String).sort();
  assert.deepEqual(names, [
    "age",
    "alive",
    "constructor",
    "disown",
    "endedAt",
    "error",
    "id",
    "mailbox",
    "name",
    "own",
    "parent",
    "properties",
    "resources",
    "result",
    "signal",
    "startedAt",
    "state",
    "whostate",
  ]);
  // Every accessor is a getter only: outcome fields cannot be written from outside.
  for (const name of names) {
    const descriptor = Object.getOwnPropertyDescriptor(Process.prototype, name);
    if (descriptor !== undefined && "get" in descriptor)
      assert.equal(Reflect.get(descriptor, "set"), undefined, `${name} has no setter`);
  }
  assert.deepEqual(Object.getOwnPropertyNames(Process).sort(), ["length", "name", "prototype"], "no static members");
  processKill(p);
});

test("assigning a Process's outcome fields throws (modules are strict) and breaks neither kill nor join", async () => {
  const p = processRunFunction("stubborn", {}, () => hang());
  for (const [field, value] of [
    ["state", "finished"],
    ["result", 1],
    ["error", new Error("x")],
    ["endedAt", 0],
    ["id", 0],
  ] as const) {
    assert.throws(
      () => {
        (p as unknown as Record<string, unknown>)[field] = value;
      },
      TypeError,
      `assigning ${field}`,
    );
  }
  assert.equal(p.state, "running");
  assert.equal(p.endedAt, undefined);
  assert.equal(findProcessFromName("stubborn"), p, "still listed");
  assert.equal(processKill(p), true, "kill still works");
  assert.equal(await processJoin(p, { timeout: 1000 }), true, "join still works");
  assert.equal(p.state, "killed");
  assert.ok(!listAllProcesses().includes(p));
});
