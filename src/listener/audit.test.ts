import assert from "node:assert/strict";
import { readdirSync, readFileSync, statSync } from "node:fs";
import { mkdtemp, readFile, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { PassThrough, Writable } from "node:stream";
import { after, before, test } from "node:test";
import { captureReports, eventually, LineClient } from "../../test/support.js";
import { ConfabError, ErrorCodes } from "../errors.js";
import { serverTerminate, startUpServer, type ServerProcess } from "../index.js";
import { AuditLog, type AuditRecord } from "./audit.js";
import { INTERRUPT_LINE } from "./session-input.js";
import { asciinemaCat, noPlayer } from "../../test/asciinema.js";

let dir: string;
const servers: ServerProcess[] = [];
const clients: LineClient[] = [];
before(async () => {
  dir = await mkdtemp(join(tmpdir(), "confab-audit-"));
});
after(async () => {
  for (const c of clients) c.destroy();
  for (const s of servers) serverTerminate(s);
  await rm(dir, { recursive: true, force: true });
});

/** The audit file's records, parsed (every line must be JSON). */
function records(path: string): AuditRecord[] {
  const text = readFileSync(path, "utf8");
  return text
    .split("\n")
    .filter((line) => line !== "")
    .map((line) => JSON.parse(line) as AuditRecord);
}

test("an audit file is created readable by its owner only, appended to and never truncated", async () => {
  const path = join(dir, "mode.jsonl");
  await writeFile(path, '{"kept":true}\n', { mode: 0o600 });
  const audit = new AuditLog(path);
  audit.record({ event: "refused", server: "s", peer: "127.0.0.1:1", reason: "wrong token" });
  audit.close();
  const fresh = join(dir, "fresh.jsonl");
  new AuditLog(fresh).close();
  assert.equal((await stat(fresh)).mode & 0o777, 0o600);
  const lines = (await readFile(path, "utf8")).split("\n");
  assert.equal(lines[0], '{"kept":true}', "what was there stays");
  const record = JSON.parse(lines[1] ?? "") as Record<string, unknown>;
  assert.equal(record.event, "refused");
  assert.match(String(record.time), /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
});

test("an audit file that cannot be opened stops the start with ERR_AUDIT naming it", async () => {
  const path = join(dir, "no-such-dir", "audit.jsonl");
  assert.throws(
    () => new AuditLog(path),
    (error: unknown) => error instanceof ConfabError && error.code === ErrorCodes.AUDIT && error.message.includes(path),
  );
  await assert.rejects(
    startUpServer({ service: 0, audit: path }),
    (error: unknown) => error instanceof ConfabError && error.code === ErrorCodes.AUDIT,
  );
});

test("an audit stream or function gets the records; one that fails is reported once a minute, never thrown", () => {
  const out = new PassThrough();
  let written = "";
  out.on("data", (chunk: Buffer) => (written += chunk.toString()));
  new AuditLog(out).record({ event: "refused", server: "s", peer: "?", reason: "r" });
  assert.match(written, /^\{"time":"[^"]+","event":"refused","server":"s","peer":"\?","reason":"r"\}\n$/);
  const seen: AuditRecord[] = [];
  new AuditLog((record) => seen.push(record)).record({ event: "refused", server: "s", peer: "?", reason: "r" });
  assert.equal(seen[0]?.event, "refused");

  const { reports, restore } = captureReports();
  try {
    const broken = new AuditLog(
      new Writable({
        write() {
          throw new Error("disk full");
        },
      }),
    );
    const failing = new AuditLog(() => {
      throw new Error("sink down");
    });
    for (let i = 0; i < 5; i++) {
      broken.record({ event: "refused", server: "s", peer: "?", reason: "r" });
      failing.record({ event: "refused", server: "s", peer: "?", reason: "r" });
    }
    assert.equal(reports.length, 2, "one report for each sink, not one per record");
    assert.match(reports.map((r) => r.what).join("\n"), /the audit stream: a record was lost/);
  } finally {
    restore();
  }
});

const ALICE = "alice-audit-0123456789abcdef";
const TOKEN = "shared-audit-token-0123456789";

test("the audit holds each session, its user, and an input still running before it ends; refusals say why; no token anywhere", async () => {
  const path = join(dir, "listener.jsonl");
  const log = new PassThrough();
  let logged = "";
  log.on("data", (chunk: Buffer) => (logged += chunk.toString()));
  const server = await startUpServer({
    service: 0,
    users: { alice: ALICE },
    audit: path,
    logger: "text",
    announce: log,
    nameTimeout: 500,
  });
  servers.push(server);
  const c = await LineClient.connect(server.port);
  clients.push(c);
  c.send(`token ${ALICE}\n"ops"\n6 * 7\n`);
  await c.until("CL-USER 2 > ");
  c.send("await new Promise(() => {})\n");
  // Still running: its input is on record, with its user, and has no outcome yet.
  await eventually(
    () => records(path).some((r) => r.event === "input" && r.input === 2),
    5000,
    "the running input is on record",
  );
  const running = records(path);
  const input = running.find((r) => r.event === "input" && r.input === 2);
  assert.deepEqual(
    { ...input, time: undefined, id: undefined },
    {
      time: undefined,
      event: "input",
      session: "ops",
      id: undefined,
      user: "alice",
      input: 2,
      text: "await new Promise(() => {})",
    },
  );
  assert.equal(running.filter((r) => r.event === "outcome" && r.input === 2).length, 0, "not ended yet");
  c.send(`${INTERRUPT_LINE}\n`);
  await c.until("CL-USER 3 > ");
  c.send("null.x\n");
  await c.until("CL-USER 4 > ");
  c.end();
  await c.closed();

  // Refused: a wrong token, then a bad name line from an open server's point of view (after the token).
  const wrong = await LineClient.connect(server.port);
  clients.push(wrong);
  wrong.send("token not-the-right-token-at-all\n");
  await wrong.closed(15_000);
  const badName = await LineClient.connect(server.port);
  clients.push(badName);
  badName.send(`token ${ALICE}\nnot a lisp string\n`);
  await badName.closed();
  const silent = await LineClient.connect(server.port);
  clients.push(silent);
  await silent.closed(5000);

  await eventually(
    () => records(path).filter((r) => r.event === "refused").length >= 3,
    15_000,
    "three refusals on record",
  );
  await eventually(() => records(path).some((r) => r.event === "session-end"), 5000, "the end");
  const all = records(path);
  const outcomes = all.filter((r) => r.event === "outcome");
  assert.deepEqual(
    outcomes.map((r) => [r.input, r.outcome]),
    [
      [1, "value"],
      [2, "interrupted"],
      [3, "error"],
    ],
  );
  const failed = outcomes[2];
  assert.match(failed?.event === "outcome" ? (failed.error ?? "") : "", /^TypeError: Cannot read properties of null/);
  assert.ok(outcomes.every((r) => r.ms >= 0));
  const start = all.find((r) => r.event === "session-start");
  assert.equal(start?.event === "session-start" && start.user, "alice");
  assert.match(start?.event === "session-start" ? start.peer : "", /^127\.0\.0\.1:\d+$/);
  const end = all.find((r) => r.event === "session-end");
  assert.deepEqual(end?.event === "session-end" && [end.how, end.inputs, end.user], ["end of file", 3, "alice"]);
  const reasons = all.flatMap((r) => (r.event === "refused" ? [r.reason] : []));
  assert.ok(reasons.includes("wrong token"), reasons.join(", "));
  assert.ok(
    reasons.some((r) => r.startsWith("bad name line")),
    reasons.join(", "),
  );
  assert.ok(reasons.includes("no token within 500 ms"), reasons.join(", "));
  // The server's own log has the same session events, in its own format.
  assert.match(logged, /session \d+ "ops" of "alice" started from 127\.0\.0\.1:\d+/);
  assert.match(logged, /session \d+ "ops" of "alice" ended \(end of file\) after 3 inputs/);
  assert.match(logged, /refused 127\.0\.0\.1:\d+: wrong token/);
  const file = await readFile(path, "utf8");
  assert.ok(!file.includes(ALICE) && !logged.includes(ALICE), "no token in the audit or the log");
});

test(
  "each session is recorded to its own file, which asciinema cat replays, with no token in it",
  { skip: noPlayer },
  async () => {
    const recordings = join(dir, "recordings");
    const server = await startUpServer({ service: 0, token: TOKEN, record: recordings });
    servers.push(server);
    const c = await LineClient.connect(server.port);
    clients.push(c);
    c.send(`token ${TOKEN}\n"recorded"\n6 * 7\nconsole.log("hello from the session")\n`);
    await c.until("CL-USER 3 > ");
    c.end();
    await c.closed();
    // Closed once the session has ended: its last line says how.
    let file = "";
    await eventually(
      () => {
        const names = readdirSync(recordings).filter((name) => name.endsWith(".cast"));
        file = names.length === 1 ? join(recordings, names[0] as string) : "";
        return file !== "" && readFileSync(file, "utf8").includes("session ended: end of file");
      },
      5000,
      "the recording is closed",
    );
    assert.match(file, /\/\d{4}-\d\d-\d\dT\d\d-\d\d-\d\d\.\d{3}Z-\d+-recorded\.cast$/);
    assert.equal(statSync(file).mode & 0o777, 0o600);
    const shown = await asciinemaCat(file);
    for (const expected of [
      "CL-USER 1 > 6 * 7",
      "42",
      'CL-USER 2 > console.log("hello from the session")',
      "hello from the session",
      "undefined",
      "session ended: end of file",
    ]) {
      assert.ok(shown.includes(expected), `${JSON.stringify(expected)} in ${JSON.stringify(shown)}`);
    }
    assert.ok(!readFileSync(file, "utf8").includes(TOKEN), "the token line is never recorded");
  },
);
