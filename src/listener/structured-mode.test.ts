// The listener's structured mode on real sockets: the handshake, every message kind, malformed
// requests, interrupts, the time limit, kill, end of file, and the audit of a structured session.
import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { before, test } from "node:test";
import { eventually, testServers, type LineClient } from "../../test/support.js";
import type { ServerProcess } from "../index.js";
import { findProcessFromName } from "../mp/registry.js";
import { processKill } from "../mp/process.js";
import type { AuditRecord } from "./audit.js";
import { INTERRUPT_LINE } from "./session-input.js";
import { parseStructuredReply, type StructuredReply } from "./structured-protocol.js";

const { start, client } = testServers();
const audit: AuditRecord[] = [];
let server: ServerProcess;
before(async () => {
  server = await start({
    evalTimeout: 300,
    context: { app: { users: ["ada", "grace"] } },
    audit: (record) => audit.push(record),
  });
});

/** A client in structured mode: the handshake done, answers read one JSON line at a time. */
interface Structured {
  readonly raw: LineClient;
  send(message: unknown): void;
  next(timeout?: number): Promise<StructuredReply>;
  /** Ends the client's side and waits for the listener to close. */
  close(): Promise<void>;
}

async function structured(name: string): Promise<Structured> {
  const raw = await client(server.port);
  raw.send(`${JSON.stringify(name)}\n\u0010hello {"structured":true}\n`);
  // The plain greeting (the first prompt) comes before the hello frame, and is no answer.
  for (;;) {
    const line = await raw.line();
    assert.notEqual(line, null, "the listener greets before it ends");
    const at = (line as string).indexOf("\u0010hello ");
    if (at === -1) continue;
    assert.equal((line as string).slice(at), '\u0010hello {"version":2,"structured":true}');
    break;
  }
  return {
    raw,
    send: (message) => {
      raw.send(`${typeof message === "string" ? message : JSON.stringify(message)}\n`);
    },
    close: async () => {
      raw.end();
      await raw.closed();
    },
    next: async (timeout = 5000) => {
      const line = await raw.line(timeout);
      assert.notEqual(line, null, "the session is still open");
      const reply = parseStructuredReply(line as string);
      assert.ok(reply, `a well-formed answer, not ${JSON.stringify(line)}`);
      return reply;
    },
  };
}

/** The answer without its time, which varies. */
function timeless(reply: StructuredReply): unknown {
  if (reply.tag !== "ret") return reply;
  const { ms, ...rest } = reply;
  assert.ok(Number.isInteger(ms) && ms >= 0, "ms is a whole number of milliseconds");
  return rest;
}

test("a plain client (netcat) never meets the structured mode: no hello, no JSON", async () => {
  const raw = await client(server.port);
  raw.send('"plain"\n1 + 2\n');
  const text = await raw.until("CL-USER 2 > ");
  assert.equal(text, "CL-USER 1 > 3\nCL-USER 2 > ");
  raw.end();
  await raw.closed();
});

test("eval answers with ret: the value as the REPL prints it, the input's number, its id echoed", async () => {
  const s = await structured("values");
  s.send({ op: "eval", id: 1, code: "1 + 2" });
  assert.deepEqual(timeless(await s.next()), {
    tag: "ret",
    id: 1,
    input: 1,
    val: "3",
    exception: false,
    status: "value",
  });
  s.send({ op: "eval", id: "two", code: "({ a: [1, { b: 2 }], s: 'str' })" });
  assert.deepEqual(timeless(await s.next()), {
    tag: "ret",
    id: "two",
    input: 2,
    val: "{ a: [ 1, { b: 2 } ], s: 'str' }",
    exception: false,
    status: "value",
  });
  await s.close();
});

test("a multi-line input is one message; declarations persist, TypeScript and await included", async () => {
  const s = await structured("multi-line");
  s.send({
    op: "eval",
    id: 1,
    code: "function twice(x: number): number {\n  return x * 2\n}\nconst n = await Promise.resolve(20)",
  });
  assert.equal((await s.next()).tag, "ret");
  s.send({ op: "eval", id: 2, code: "twice(n) + app.users.length" });
  const reply = await s.next();
  assert.equal(reply.tag === "ret" && reply.val, "42");
  await s.close();
});

test("output while an input runs is out with its id, before its ret; a stray timer's has id null", async () => {
  const s = await structured("output");
  s.send({
    op: "eval",
    id: 7,
    code: "console.log('one'); await null; console.log('two'); setTimeout(() => console.log('late'), 30); 'done'",
  });
  assert.deepEqual(await s.next(), { tag: "out", id: 7, text: "one\n" });
  assert.deepEqual(await s.next(), { tag: "out", id: 7, text: "two\n" });
  const ret = await s.next();
  assert.equal(ret.tag === "ret" && ret.val, "'done'");
  assert.deepEqual(await s.next(), { tag: "out", id: null, text: "late\n" });
  await s.close();
});

test("a thrown error is ret with exception true and the error as printed; the session goes on", async () => {
  const s = await structured("errors");
  s.send({ op: "eval", id: 1, code: "throw new TypeError('bad thing')" });
  const thrown = await s.next();
  assert.ok(thrown.tag === "ret", "a ret");
  assert.equal(thrown.exception, true);
  assert.equal(thrown.status, "error");
  assert.match(thrown.val, /^TypeError: bad thing\n {4}at /);
  assert.doesNotMatch(thrown.val, /\u001b\[/, "never colours");
  s.send({ op: "eval", id: 2, code: "const x = ;" });
  const syntax = await s.next();
  assert.ok(syntax.tag === "ret" && syntax.exception && syntax.status === "error");
  assert.match(syntax.val, /SyntaxError/);
  s.send({ op: "eval", id: 3, code: "'still here'" });
  const after = await s.next();
  assert.equal(after.tag === "ret" && after.val, "'still here'");
  await s.close();
});

test("malformed requests are err answers saying what was wrong, and the session goes on", async () => {
  const s = await structured("malformed");
  s.send("this is not json");
  const notJson = await s.next();
  assert.ok(notJson.tag === "err", "an err");
  assert.equal(notJson.id, null);
  assert.match(notJson.message, /not a JSON object/);
  s.send("[1, 2]");
  assert.deepEqual(await s.next(), {
    tag: "err",
    id: null,
    message: "not a JSON object; every line in structured mode is one",
  });
  s.send({ op: "launch", id: 5 });
  assert.deepEqual(await s.next(), {
    tag: "err",
    id: 5,
    message: 'unknown "op" "launch"; one of "eval", "complete", "interrupt"',
  });
  s.send({ op: "eval", code: "1" });
  assert.deepEqual(await s.next(), { tag: "err", id: null, message: '"eval" needs an "id" (a string or a number)' });
  s.send({ op: "eval", id: 6, code: 42 });
  assert.deepEqual(await s.next(), { tag: "err", id: 6, message: '"eval" needs "code" (a string)' });
  s.send({ op: "eval", id: 7, code: "(1 +" });
  const incomplete = await s.next();
  assert.ok(incomplete.tag === "err" && incomplete.id === 7);
  assert.match(incomplete.message, /^incomplete input/);
  s.send({ op: "eval", id: 8, code: "'after all that'" });
  const after = await s.next();
  assert.deepEqual(after.tag === "ret" && [after.input, after.val], [1, "'after all that'"]);
  await s.close();
});

test("complete answers with completions and the prefix they replace", async () => {
  const s = await structured("completion");
  s.send({ op: "complete", id: "c", code: "app.us" });
  assert.deepEqual(await s.next(), { tag: "completions", id: "c", completions: ["users"], prefix: "us" });
  await s.close();
});

test("an interrupt request abandons the input running; the inputs behind it still run and are answered", async () => {
  const s = await structured("interrupt");
  s.send({ op: "eval", id: 1, code: "console.log('waiting'); await new Promise(() => {})" });
  s.send({ op: "eval", id: 2, code: "'next'" });
  assert.deepEqual(await s.next(), { tag: "out", id: 1, text: "waiting\n" });
  s.send({ op: "interrupt" });
  const interrupted = await s.next();
  assert.ok(interrupted.tag === "ret");
  assert.deepEqual([interrupted.id, interrupted.exception, interrupted.status], [1, true, "interrupted"]);
  assert.match(interrupted.val, /^Interrupted: input 1 abandoned/);
  const next = await s.next();
  assert.deepEqual(next.tag === "ret" && [next.id, next.val], [2, "'next'"]);
  // With nothing running an interrupt is no request at all: no answer, and the session goes on.
  s.send({ op: "interrupt" });
  s.send({ op: "eval", id: 3, code: "await new Promise(() => {})" });
  s.send(INTERRUPT_LINE);
  const byEtx = await s.next();
  assert.deepEqual(byEtx.tag === "ret" && [byEtx.id, byEtx.status], [3, "interrupted"]);
  s.send({ op: "eval", id: 4, code: "_" });
  const last = await s.next();
  assert.deepEqual(last.tag === "ret" && [last.id, last.val], [4, "'next'"]);
  await s.close();
});

test("an interrupt that names its input stops that one, even if it was still waiting to run", async () => {
  const s = await structured("targeted interrupt");
  s.send({ op: "eval", id: "a", code: "console.log('a runs'); await new Promise(() => {})" });
  s.send({ op: "eval", id: "b", code: "await new Promise(() => {})" });
  s.send({ op: "eval", id: "c", code: "'c'" });
  assert.deepEqual(await s.next(), { tag: "out", id: "a", text: "a runs\n" });
  // Meant for b, which waits behind a: a runs on.
  s.send({ op: "interrupt", id: "b" });
  s.send({ op: "interrupt", id: "a" });
  const answers = [await s.next(), await s.next(), await s.next()].map((r) =>
    r.tag === "ret" ? [r.id, r.status] : [r.tag],
  );
  assert.deepEqual(answers, [
    ["a", "interrupted"],
    ["b", "interrupted"],
    ["c", "value"],
  ]);
  await s.close();
});

test("the evaluation time limit answers ret with status timeout, and the session goes on", async () => {
  const s = await structured("timeout");
  s.send({ op: "eval", id: 1, code: "while (true) {}" });
  const reply = await s.next();
  assert.ok(reply.tag === "ret");
  assert.deepEqual([reply.exception, reply.status], [true, "timeout"]);
  assert.match(reply.val, /timed out after 300 ms/);
  assert.ok(reply.ms >= 250, `it ran until the limit (${reply.ms} ms)`);
  s.send({ op: "eval", id: 2, code: "1" });
  assert.equal((await s.next()).tag, "ret");
  await s.close();
});

test("kill() from another session ends a structured session with an err whose id is null, in JSON", async () => {
  const s = await structured("to be killed");
  s.send({ op: "eval", id: 1, code: "await new Promise(() => {})" });
  const session = findProcessFromName("to be killed");
  assert.ok(session);
  await eventually(() => session.whostate?.startsWith("Evaluating input 1") === true);
  processKill(session);
  const reply = await s.next();
  assert.ok(reply.tag === "err");
  assert.equal(reply.id, null);
  assert.match(reply.message, /^session killed/);
  assert.equal(await s.raw.line(), null, "then the connection ends");
});

test("a line past the connection's limit is an err, the session ends, and the server serves on", async () => {
  const s = await structured("huge");
  s.send(`{"op":"eval","id":1,"code":"'${"x".repeat(1024 * 1024 + 10)}'"}`);
  const reply = await s.next(10_000);
  assert.ok(reply.tag === "err");
  assert.match(reply.message, /longer than/);
  assert.equal(await s.raw.line(), null);
  const again = await structured("after huge");
  again.send({ op: "eval", id: 1, code: "1" });
  assert.equal((await again.next()).tag, "ret");
  await again.close();
});

test("the audit of a structured session: start, each input before it runs, its outcome and ms, the end", async () => {
  const s = await structured("audited");
  const mine = (): AuditRecord[] => audit.filter((r) => "session" in r && r.session === "audited");
  s.send({ op: "eval", id: 1, code: "const k = 2;\nk * 21" });
  await s.next();
  s.send({ op: "eval", id: 2, code: "throw new RangeError('nope')" });
  await s.next();
  s.send({ op: "eval", id: 3, code: "while (true) {}" });
  await s.next();
  s.send({ op: "eval", id: 4, code: "await new Promise(() => {})" });
  // The input is on record before it runs, so its record is there while it runs.
  await eventually(() => mine().some((r) => r.event === "input" && r.input === 4));
  s.send({ op: "interrupt" });
  await s.next();
  s.send({ op: "eval", id: 5, code: "await new Promise(() => {})" });
  await eventually(() => mine().some((r) => r.event === "input" && r.input === 5));
  await s.close();
  await eventually(() => mine().some((r) => r.event === "session-end"));
  const summary = mine().map((r) =>
    r.event === "input"
      ? ["input", r.input, r.text]
      : r.event === "outcome"
        ? ["outcome", r.input, r.outcome, typeof r.ms, r.error ?? null]
        : r.event === "session-end"
          ? ["end", r.how, r.inputs]
          : [r.event],
  );
  assert.deepEqual(summary, [
    ["session-start"],
    ["input", 1, "const k = 2;\nk * 21"],
    ["outcome", 1, "value", "number", null],
    ["input", 2, "throw new RangeError('nope')"],
    ["outcome", 2, "error", "number", "RangeError: nope"],
    ["input", 3, "while (true) {}"],
    [
      "outcome",
      3,
      "timeout",
      "number",
      "ConfabError: evaluation timed out after 300 ms (the listener's timeout option) { code: 'ERR_EVAL_TIMEOUT' }",
    ],
    ["input", 4, "await new Promise(() => {})"],
    ["outcome", 4, "interrupted", "number", null],
    ["input", 5, "await new Promise(() => {})"],
    ["outcome", 5, "abandoned", "number", null],
    ["end", "end of file while input 5 ran (abandoned)", 4],
  ]);
});

test("a structured session is recorded as the plain session it stands for: code typed, output, values, prompts", async () => {
  const recordings = await mkdtemp(join(tmpdir(), "confab-structured-recording-"));
  try {
    const recorded = await start({ record: recordings });
    const raw = await client(recorded.port);
    raw.send('"recorded"\n\u0010hello {"structured":true}\n');
    raw.send(`${JSON.stringify({ op: "eval", id: 1, code: "6 * 7" })}\n`);
    raw.send(`${JSON.stringify({ op: "eval", id: 2, code: "console.log('hi');\n'two lines'" })}\n`);
    await raw.until('"id":2,"input":2');
    raw.end();
    await raw.closed();
    let file = "";
    await eventually(() => {
      const names = readdirSync(recordings).filter((name) => name.endsWith(".cast"));
      file = names.length === 1 ? join(recordings, names[0] as string) : "";
      return file !== "" && readFileSync(file, "utf8").includes("session ended");
    });
    // asciicast v2: a header line, then [time, "o" | "i", text] events.
    const events = readFileSync(file, "utf8")
      .trim()
      .split("\n")
      .slice(1)
      .map((line) => JSON.parse(line) as [number, string, string]);
    const shown = events.flatMap(([, kind, text]) => (kind === "o" ? [text] : [])).join("");
    const sent = events.flatMap(([, kind, text]) => (kind === "i" ? [text] : [])).join("");
    assert.ok(
      shown.startsWith(
        "CL-USER 1 > 6 * 7\r\n42\r\nCL-USER 2 > console.log('hi');\r\n'two lines'\r\nhi\r\n'two lines'\r\nCL-USER 3 > ",
      ),
      JSON.stringify(shown),
    );
    assert.equal(sent, "6 * 7\nconsole.log('hi');\n'two lines'\n");
    assert.doesNotMatch(shown + sent, /"tag"|"op"|\u0010/, "no protocol on record");
  } finally {
    await rm(recordings, { recursive: true, force: true });
  }
});
