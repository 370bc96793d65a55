import assert from "node:assert/strict";
import { test } from "node:test";
import { captureReports, eventually, hang } from "../../test/support.js";
import { ConfabError, ErrorCodes } from "../errors.js";
import { processInterrupt } from "./interrupt.js";
import {
  processJoin,
  processKill,
  processRunFunction,
  processTerminate,
  type Process,
  type ProcessResource,
  kKill,
  kOwner,
} from "./process.js";
import { getCurrentProcess, listAllProcesses } from "./registry.js";
import { processWait } from "./wait.js";
import { makeMailbox, mailboxRead, mailboxSend } from "./mailbox.js";

test("whostate names what a process waits for: a processWait reason, a join; null otherwise", async () => {
  let release: () => void = () => undefined;
  const gate = new Promise<void>((resolve) => (release = resolve));
  const waiter = processRunFunction("waiter", {}, () => processWait("Waiting for the users query", gate));
  const joiner = processRunFunction("joiner", {}, () => processJoin(waiter));
  await eventually(() => waiter.whostate !== null && joiner.whostate !== null, 2000, "both wait");
  assert.equal(waiter.whostate, "Waiting for the users query");
  assert.equal(joiner.whostate, `Waiting for process ${waiter.id} "waiter" to end`);
  release();
  await processJoin(joiner);
  assert.equal(waiter.whostate, null, "ended: no whostate");
  const idle = processRunFunction("idle", {}, () => hang());
  await eventually(() => idle.alive, 1000, "started");
  assert.equal(idle.whostate, null, "waiting on something that is not one of confab's waits");
  processKill(idle);
});

test("a mailbox read shows its wait reason as the reader's whostate", async () => {
  const box = makeMailbox<string>({ name: "jobs" });
  const reader = processRunFunction("reader", {}, async () => {
    const first = await mailboxRead(box);
    const second = await mailboxRead(box, { waitReason: "Idle: no jobs" });
    return [first, second];
  });
  await eventually(() => reader.whostate !== null, 2000, "it waits");
  assert.equal(reader.whostate, 'Waiting for a value from mailbox "jobs"');
  mailboxSend(box, "a");
  await eventually(() => reader.whostate === "Idle: no jobs", 2000, "its own reason shows");
  mailboxSend(box, "b");
  await processJoin(reader);
  assert.deepEqual(reader.result, ["a", "b"]);
});

test("processWait resolves to the value, rejects with the error, and with ERR_TIMEOUT when its timeout passes first", async () => {
  assert.equal(await processWait("quick", Promise.resolve(42)), 42);
  await assert.rejects(processWait("failing", Promise.reject(new Error("no"))), /no/);
  await assert.rejects(
    processWait("slow query", new Promise(() => undefined), { timeout: 30 }),
    (error: unknown) =>
      error instanceof ConfabError &&
      error.code === ErrorCodes.TIMEOUT &&
      /slow query: no answer within 30 ms/.test(error.message),
  );
  const p = processRunFunction("times out", {}, async () => {
    try {
      await processWait("never", new Promise(() => undefined), { timeout: 20 });
    } catch {
      return getCurrentProcess()?.whostate ?? null;
    }
    return "not reached";
  });
  await processJoin(p);
  assert.equal(p.result, null, "the wait is over once it timed out");
});

test("processInterrupt runs a function inside the target: it is the current process there and owns what it makes", async () => {
  const target = processRunFunction("target", {}, () => hang());
  await eventually(() => target.alive, 1000, "started");
  // Set by the interrupt, later: `as` keeps the checker from taking them for always undefined.
  let seen = undefined as Process | undefined;
  let child = undefined as Process | undefined;
  let owner = undefined as Process | undefined;
  const resource: ProcessResource = {
    [kKill]: () => undefined,
  };
  processInterrupt(
    target,
    (label: string) => {
      seen = getCurrentProcess();
      child = processRunFunction(label, {}, () => hang());
      getCurrentProcess()?.own(resource);
      owner = resource[kOwner];
    },
    "started by the interrupt",
  );
  assert.equal(seen, undefined, "returns at once: the function runs later");
  await eventually(() => seen !== undefined, 2000, "the interrupt ran");
  assert.equal(seen, target);
  assert.equal(child?.parent, target, "a process it starts is the target's child");
  assert.equal(owner, target, "what it makes belongs to the target");
  processKill(target);
  const started = listAllProcesses().find((p) => p.name === "started by the interrupt");
  assert.ok(started !== undefined, "its child is still running");
  processKill(started);
});

test("an interrupt's error is reported with the target's name and does not end it; an ended process cannot be interrupted", async () => {
  const { reports, restore } = captureReports();
  try {
    const target = processRunFunction("patient", {}, () => hang());
    await eventually(() => target.alive, 1000, "started");
    processInterrupt(target, () => {
      throw new Error("oops");
    });
    processInterrupt(target, () => Promise.reject(new Error("async oops")));
    await eventually(() => reports.length >= 2, 2000, "both reported");
    assert.ok(reports.every((r) => r.what.includes(`process ${target.id} "patient"`)));
    assert.equal(target.state, "running", "the target lives on");
    processKill(target);
    assert.throws(
      () => processInterrupt(target, () => undefined),
      (error: unknown) =>
        error instanceof ConfabError &&
        error.code === ErrorCodes.PROCESS_ENDED &&
        /has been killed/.test(error.message),
    );
  } finally {
    restore();
  }
});

test("processTerminate lets a process end by itself, its finally blocks run, and counts a throw of its reason as killed, not failed", async () => {
  const { reports, restore } = captureReports();
  try {
    const cleaned: string[] = [];
    const polite = processRunFunction("polite", {}, async () => {
      const signal = getCurrentProcess()?.signal;
      try {
        await new Promise<void>((_resolve, reject) => {
          signal?.addEventListener("abort", () => {
            reject(signal.reason as Error);
          });
        });
      } finally {
        cleaned.push("polite");
      }
    });
    await eventually(() => polite.alive, 1000, "started");
    assert.equal(await processTerminate(polite, { joinTimeout: 2000 }), true);
    assert.deepEqual(cleaned, ["polite"]);
    assert.equal(polite.state, "killed");
    assert.equal(reports.length, 0, "ended by its termination: no failure reported");
    assert.equal(await processTerminate(polite), false, "already ended");
  } finally {
    restore();
  }
});

test("processTerminate closes what a process owns once joinTimeout passes without it ending", async () => {
  let closed = false;
  const stubborn = processRunFunction("stubborn", {}, () => hang());
  stubborn.own({ [kKill]: () => (closed = true) });
  await eventually(() => stubborn.alive, 1000, "started");
  const started = Date.now();
  assert.equal(await processTerminate(stubborn, { joinTimeout: 50 }), true);
  assert.ok(Date.now() - started >= 45, "it was given its time");
  assert.equal(stubborn.state, "killed");
  assert.equal(closed, true, "what it owned is closed, as processKill closes it");
  assert.equal(stubborn.signal.aborted, true);
  assert.match((stubborn.signal.reason as Error).message, /is being terminated/);
});
