import assert from "node:assert/strict";
import { getEventListeners } from "node:events";
import { test } from "node:test";
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import fc from "fast-check";
import { ConfabError, type ConfabErrorCode } from "../errors.js";
import {
  Mailbox,
  mailboxCount,
  mailboxEmptyP,
  mailboxPeek,
  mailboxRead,
  mailboxSend,
  makeMailbox,
  processSend,
} from "./mailbox.js";
import { Process, processJoin, processKill, processRunFunction } from "./process.js";
import { getCurrentProcess } from "./registry.js";

/** Whether `error` is a ConfabError with `code`. */
function hasCode(error: unknown, code: ConfabErrorCode): boolean {
  return error instanceof ConfabError && error.code === code;
}

/** What a promise settled with, caught at once so that no rejection goes unhandled meanwhile. */
type Outcome<T> = { value: T } | { error: unknown };
function outcome<T>(promise: Promise<T>): Promise<Outcome<T>> {
  return promise.then(
    (value) => ({ value }),
    (error: unknown) => ({ error }),
  );
}

/** Whether `promise` is still pending once everything already due (timers of 0 ms included) has run. */
async function pending(promise: Promise<unknown>): Promise<boolean> {
  let settled = false;
  promise.then(
    () => (settled = true),
    () => (settled = true),
  );
  await new Promise((resolve) => setImmediate(resolve));
  return !settled;
}

/** A promise and the function that resolves it: for a process to say "I am waiting now". */
function signalled<T = void>(): { promise: Promise<T>; resolve: (value: T) => void } {
  let resolve!: (value: T) => void;
  const promise = new Promise<T>((r) => (resolve = r));
  return { promise, resolve };
}

/** A full garbage collection, turning on `gc()` if Node was started without `--expose-gc`. */
function collectGarbage(): void {
  setFlagsFromString("--expose-gc");
  (runInNewContext("gc") as () => void)();
}

test("values come out in the order they were sent, and each to one reader only", async () => {
  const m = makeMailbox<number>({ name: "fifo" });
  for (const n of [1, 2, 3]) mailboxSend(m, n);
  const reads = [mailboxRead(m), mailboxRead(m), mailboxRead(m)];
  assert.deepEqual(await Promise.all(reads), [1, 2, 3]);
  assert.equal(mailboxCount(m), 0);
  const fourth = mailboxRead(m);
  assert.equal(await pending(fourth), true, "no value is read twice");
  mailboxSend(m, 4);
  assert.equal(await fourth, 4);
});

test("readers that wait are served in the order they started waiting", async () => {
  const m = makeMailbox<string>();
  const reads = [mailboxRead(m), mailboxRead(m), mailboxRead(m)];
  mailboxSend(m, "a");
  mailboxSend(m, "b");
  assert.equal(mailboxCount(m), 0, "a value sent to a waiting reader is never held");
  mailboxSend(m, "c");
  assert.deepEqual(await Promise.all(reads), ["a", "b", "c"]);
});

test("a read whose timeout passes rejects with ERR_TIMEOUT, and the value sent afterwards goes to the next reader", async () => {
  const m = makeMailbox<string>({ name: "slow" });
  const early = outcome(mailboxRead(m, { timeout: 10 }));
  const patient = mailboxRead(m);
  const result = await early;
  assert.ok("error" in result && hasCode(result.error, "ERR_TIMEOUT"), "timed out");
  assert.match((result.error as Error).message, /mailbox "slow" had no value for 10 ms/);
  mailboxSend(m, "late");
  assert.equal(await patient, "late", "the value is not lost to the reader that gave up");
  assert.equal(mailboxCount(m), 0);

  // A timeout of 0 takes a value that is there and does not wait for one that is not.
  mailboxSend(m, "here");
  assert.equal(await mailboxRead(m, { timeout: 0 }), "here");
  const polled = await outcome(mailboxRead(m, { timeout: 0 }));
  assert.ok("error" in polled && hasCode(polled.error, "ERR_TIMEOUT"));
  assert.match((polled.error as Error).message, /was empty/);
});

test("a timeout that is not a number of milliseconds is refused", async () => {
  const m = makeMailbox();
  for (const timeout of [-1, Number.NaN]) {
    await assert.rejects(mailboxRead(m, { timeout }), (error) => hasCode(error, "ERR_INVALID_ARGUMENT"));
  }
});

test("a killed reader's read settles at once with ERR_PROCESS_KILLED and the value goes to the next reader", async () => {
  const m = makeMailbox<string>({ name: "jobs" });
  // Wrapped: a promise resolved with a promise would follow it.
  const waiting = signalled<{ read: Promise<string> }>();
  const reader = processRunFunction("doomed reader", {}, async () => {
    const read = mailboxRead(m, { waitReason: "Waiting for a job" });
    waiting.resolve({ read });
    return await read;
  });
  const read = outcome((await waiting.promise).read);
  const next = mailboxRead(m);
  assert.equal(processKill(reader), true);
  const result = await read;
  assert.ok("error" in result && hasCode(result.error, "ERR_PROCESS_KILLED"), "killed");
  assert.match((result.error as Error).message, /"doomed reader" was killed while reading mailbox "jobs"/);
  assert.equal((result.error as Error).cause, reader.signal.reason, "the kill's reason is the cause");
  mailboxSend(m, "job 1");
  assert.equal(await next, "job 1");
  assert.equal(getEventListeners(reader.signal, "abort").length, 0, "no listener is left on the killed process");
});

test("a killed process takes no value, even one that is there", async () => {
  const m = makeMailbox<string>();
  mailboxSend(m, "keep");
  const running = signalled();
  const gate = signalled();
  const tried = signalled<Outcome<string>>();
  // Killing takes effect at the next await: code still runs between a kill and that await.
  const reader = processRunFunction("killed before reading", {}, async () => {
    running.resolve();
    await gate.promise;
    tried.resolve(await outcome(mailboxRead(m)));
  });
  await running.promise;
  processKill(reader);
  gate.resolve();
  const result = await tried.promise;
  assert.ok("error" in result && hasCode(result.error, "ERR_PROCESS_KILLED"));
  assert.equal(mailboxCount(m), 1);
  assert.equal(mailboxPeek(m), "keep");
});

test("a process waiting on many reads has one abort listener, and none once they end", async () => {
  const m = makeMailbox<number>();
  const waiting = signalled();
  const p = processRunFunction("many reads", {}, async () => {
    const signal = getCurrentProcess()?.signal;
    assert.ok(signal !== undefined);
    const reads = Array.from({ length: 20 }, () => mailboxRead(m));
    assert.equal(getEventListeners(signal, "abort").length, 1);
    waiting.resolve();
    const values = await Promise.all(reads);
    return { values, listeners: getEventListeners(signal, "abort").length };
  });
  await waiting.promise;
  for (let n = 0; n < 20; n++) mailboxSend(m, n);
  await processJoin(p);
  assert.deepEqual(p.result, { values: Array.from({ length: 20 }, (_, n) => n), listeners: 0 });
});

test("10,000 reads that time out leave nothing behind: no waiting reader, no listener, no retained read", async () => {
  const m = makeMailbox<string>({ name: "quiet" });
  const refs: WeakRef<Promise<string>>[] = [];
  // In a function of its own, so that nothing in this frame keeps the reads.
  const timeOutMany = async (): Promise<{ timedOut: number; listeners: number }> => {
    const signal = getCurrentProcess()?.signal;
    let timedOut = 0;
    const settled: Promise<void>[] = [];
    for (let i = 0; i < 10_000; i++) {
      const read = mailboxRead(m, { timeout: 1 });
      refs.push(new WeakRef(read));
      settled.push(
        read.then(
          () => undefined,
          (error: unknown) => {
            if (hasCode(error, "ERR_TIMEOUT")) timedOut++;
          },
        ),
      );
    }
    await Promise.all(settled);
    return { timedOut, listeners: signal === undefined ? -1 : getEventListeners(signal, "abort").length };
  };
  const p = processRunFunction("times out", {}, timeOutMany);
  await processJoin(p);
  assert.deepEqual(p.result, { timedOut: 10_000, listeners: 0 });
  await new Promise((resolve) => setImmediate(resolve));
  collectGarbage();
  const kept = refs.filter((ref) => ref.deref() !== undefined).length;
  assert.equal(kept, 0, "the mailbox keeps no read that timed out");
  mailboxSend(m, "after");
  assert.equal(mailboxCount(m), 1, "no reader that gave up took the value");
  assert.equal(await mailboxRead(m, { timeout: 0 }), "after");
});

test("a full mailbox refuses a send with ERR_MAILBOX_FULL naming it and its size", async () => {
  const m = makeMailbox<number>({ name: "small", size: 2 });
  assert.equal(m.size, 2);
  mailboxSend(m, 1);
  mailboxSend(m, 2);
  assert.throws(
    () => {
      mailboxSend(m, 3);
    },
    (error) => hasCode(error, "ERR_MAILBOX_FULL") && /mailbox "small" is full: it holds 2 values/.test(String(error)),
  );
  assert.equal(mailboxCount(m), 2);
  assert.equal(await mailboxRead(m), 1);
  mailboxSend(m, 3);
  assert.deepEqual([await mailboxRead(m), await mailboxRead(m)], [2, 3]);

  // Size 0 holds nothing: it only hands a value to a reader already waiting.
  const rendezvous = makeMailbox<string>({ size: 0 });
  assert.throws(() => {
    mailboxSend(rendezvous, "nobody");
  }, /a mailbox is full: it holds 0 values/);
  const read = mailboxRead(rendezvous);
  mailboxSend(rendezvous, "handed");
  assert.equal(await read, "handed");
});

test("a mailbox is bounded by default, unbounded on request, and refuses a size that is not one", () => {
  assert.equal(makeMailbox().size, 65_536);
  assert.equal(makeMailbox({ size: Infinity }).size, Infinity);
  for (const size of [-1, 1.5, Number.NaN]) {
    assert.throws(
      () => makeMailbox({ size }),
      (error) => hasCode(error, "ERR_INVALID_ARGUMENT"),
    );
  }
});

test("mailboxPeek, mailboxCount and mailboxEmptyP look without taking", async () => {
  const m = makeMailbox<string | undefined>({ name: "looked at" });
  assert.equal(m.name, "looked at");
  assert.equal(makeMailbox().name, undefined);
  assert.equal(mailboxPeek(m), undefined);
  assert.equal(mailboxCount(m), 0);
  assert.equal(mailboxEmptyP(m), true);
  mailboxSend(m, "first");
  mailboxSend(m, undefined);
  assert.equal(mailboxPeek(m), "first");
  assert.equal(mailboxPeek(m), "first", "peeking takes nothing");
  assert.equal(mailboxCount(m), 2);
  assert.equal(mailboxEmptyP(m), false);
  assert.equal(await mailboxRead(m), "first");
  assert.equal(mailboxPeek(m), undefined, "a value that is undefined peeks as undefined...");
  assert.equal(mailboxEmptyP(m), false, "...and mailboxEmptyP tells it from none");
  assert.equal(await mailboxRead(m), undefined);
  assert.equal(mailboxEmptyP(m), true);
});

test("a long-lived mailbox that is never quite empty keeps its values in order", async () => {
  const m = makeMailbox<number>({ size: Infinity });
  let sent = 0;
  let read = 0;
  for (let round = 0; round < 50; round++) {
    for (let i = 0; i < 100; i++) mailboxSend(m, sent++);
    for (let i = 0; i < 90; i++) assert.equal(await mailboxRead(m), read++);
  }
  assert.equal(mailboxCount(m), sent - read);
  while (!mailboxEmptyP(m)) assert.equal(await mailboxRead(m), read++);
  assert.equal(read, sent);
});

test("processRunFunction with { mailbox: true } gives the process its own mailbox, and processSend plays ping-pong", async () => {
  interface Ball {
    readonly from: Process;
    readonly n: number;
  }
  const isBall = (value: unknown): value is Ball => typeof value === "object" && value !== null && "n" in value;
  const ponger = processRunFunction("ponger", { mailbox: true }, async () => {
    const inbox = getCurrentProcess()?.mailbox;
    assert.ok(inbox !== undefined);
    let returned = 0;
    for (;;) {
      const ball = await mailboxRead(inbox);
      if (!isBall(ball)) return returned;
      processSend(ball.from, ball.n + 1);
      returned++;
    }
  });
  const pinger = processRunFunction("pinger", { mailbox: true }, async () => {
    const self = getCurrentProcess();
    const inbox = self?.mailbox;
    assert.ok(self !== undefined && inbox !== undefined);
    const heard: number[] = [];
    for (let n = 0; n < 20; n += 2) {
      processSend(ponger, { from: self, n });
      heard.push(Number(await mailboxRead(inbox, { timeout: 5000 })));
    }
    processSend(ponger, "stop");
    return heard;
  });
  assert.ok(ponger.mailbox instanceof Mailbox);
  assert.equal(ponger.mailbox.name, "ponger", "a process's mailbox has the process's name");
  assert.notEqual(ponger.mailbox, pinger.mailbox);
  await Promise.all([processJoin(pinger), processJoin(ponger)]);
  assert.equal(pinger.state, "finished", String(pinger.error));
  assert.deepEqual(pinger.result, [1, 3, 5, 7, 9, 11, 13, 15, 17, 19]);
  assert.equal(ponger.result, 10);
});

test("a process has no mailbox unless asked, and may be given one made beforehand", async () => {
  const plain = processRunFunction("plain", {}, () => undefined);
  assert.equal(plain.mailbox, undefined);
  assert.equal(processRunFunction("none", { mailbox: false }, () => undefined).mailbox, undefined);
  const shared = makeMailbox({ name: "shared", size: 3 });
  const given = processRunFunction("given", { mailbox: shared }, async () => mailboxRead(shared));
  assert.equal(given.mailbox, shared);
  processSend(given, "hello");
  await processJoin(given);
  assert.equal(given.result, "hello");
  assert.throws(
    () => processRunFunction("bad", { mailbox: "inbox" as unknown as boolean }, () => undefined),
    (error) => hasCode(error, "ERR_INVALID_ARGUMENT"),
  );
});

test("processSend to a process without a mailbox, or one that has ended, fails clearly", async () => {
  const plain = processRunFunction("no mailbox", {}, () => new Promise(() => undefined));
  assert.throws(
    () => {
      processSend(plain, 1);
    },
    (error) => hasCode(error, "ERR_INVALID_ARGUMENT") && /"no mailbox" has no mailbox/.test(String(error)),
  );
  processKill(plain);
  const ended = processRunFunction("ended", { mailbox: true }, () => "done");
  await processJoin(ended);
  assert.throws(
    () => {
      processSend(ended, 1);
    },
    (error) => hasCode(error, "ERR_PROCESS_ENDED") && /"ended" has ended \(finished\)/.test(String(error)),
  );
  assert.equal(ended.mailbox === undefined ? -1 : mailboxCount(ended.mailbox), 0, "nothing was put in it");
  // A process that has not started yet is running: what is sent to it waits for it.
  const early = processRunFunction("early", { mailbox: true }, async () => {
    const inbox = getCurrentProcess()?.mailbox;
    return inbox === undefined ? undefined : mailboxRead(inbox);
  });
  processSend(early, "before it ran");
  await processJoin(early);
  assert.equal(early.result, "before it ran");
});

test("a Mailbox's public surface is its name and size only", () => {
  const m = makeMailbox({ name: "surface" });
  assert.deepEqual(Reflect.ownKeys(m), []);
  assert.deepEqual(Reflect.ownKeys(Mailbox.prototype).map(String).sort(), ["constructor", "name", "size"]);
  for (const name of ["name", "size"]) {
    const descriptor = Object.getOwnPropertyDescriptor(Mailbox.prototype, name);
    assert.equal(Reflect.get(descriptor ?? {}, "set"), undefined, `${name} has no setter`);
  }
  assert.deepEqual(Object.getOwnPropertyNames(Mailbox).sort(), ["length", "name", "prototype"]);
});

type Op = "send" | "read" | "poll" | "processRead" | "kill" | "tick";

test("any interleaving of sends and reads delivers every value exactly once, in the order sent", async () => {
  await fc.assert(
    fc.asyncProperty(
      fc.array(fc.constantFrom<Op>("send", "read", "poll", "processRead", "kill", "tick"), { maxLength: 40 }),
      async (ops) => {
        const m = makeMailbox<number>({ size: Infinity });
        // The model: values held and readers waiting, both oldest first.
        const held: number[] = [];
        const waiters: number[] = [];
        // What each read (numbered as started) should end with.
        const expected = new Map<number, number | "timeout" | "killed">();
        const outcomes = new Map<number, Promise<Outcome<number>>>();
        const readers: { id: number; process: Process }[] = [];
        let nextValue = 0;
        let nextRead = 0;
        const send = (): void => {
          const value = nextValue++;
          mailboxSend(m, value);
          const waiter = waiters.shift();
          if (waiter === undefined) held.push(value);
          else expected.set(waiter, value);
        };
        const started = (id: number, promise: Promise<number>): void => {
          outcomes.set(id, outcome(promise));
          const value = held.shift();
          if (value === undefined) waiters.push(id);
          else expected.set(id, value);
        };
        for (const op of ops) {
          if (op === "send") send();
          else if (op === "read") started(nextRead++, mailboxRead(m));
          else if (op === "poll") {
            const id = nextRead++;
            outcomes.set(id, outcome(mailboxRead(m, { timeout: 0 })));
            const value = held.shift();
            expected.set(id, value ?? "timeout");
          } else if (op === "processRead") {
            const id = nextRead++;
            const reading = signalled<{ read: Promise<number> }>();
            const process = processRunFunction("property reader", {}, async () => {
              const read = mailboxRead(m);
              reading.resolve({ read });
              return await read;
            });
            started(id, (await reading.promise).read);
            readers.push({ id, process });
          } else if (op === "kill") {
            const reader = readers.shift();
            if (reader !== undefined) {
              processKill(reader.process);
              const at = waiters.indexOf(reader.id);
              if (at !== -1) {
                waiters.splice(at, 1);
                expected.set(reader.id, "killed");
              }
            }
          } else {
            await new Promise((resolve) => setImmediate(resolve));
          }
        }
        while (waiters.length > 0) send();
        const delivered: number[] = [];
        for (let id = 0; id < nextRead; id++) {
          const result = await outcomes.get(id);
          const want = expected.get(id);
          if (want === "timeout") assert.ok(result && "error" in result && hasCode(result.error, "ERR_TIMEOUT"));
          else if (want === "killed")
            assert.ok(result && "error" in result && hasCode(result.error, "ERR_PROCESS_KILLED"));
          else {
            assert.deepEqual(result, { value: want }, `read ${id}`);
            delivered.push(want ?? -1);
          }
        }
        assert.equal(mailboxCount(m), held.length);
        while (!mailboxEmptyP(m)) delivered.push(await mailboxRead(m));
        assert.deepEqual(
          delivered,
          Array.from({ length: nextValue }, (_, n) => n),
          "every value once, in order",
        );
        for (const { process } of readers) processKill(process);
      },
    ),
    { numRuns: 200 },
  );
});
