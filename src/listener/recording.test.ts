// Session recordings in asciicast v2, checked against the real player (see test/asciinema.ts).
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { existsSync } from "node:fs";
import { chmod, mkdtemp, readdir, readFile, rm, stat, symlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { basename, join } from "node:path";
import { after, before, describe, test } from "node:test";
import { promisify } from "node:util";
import fc from "fast-check";
import { ConfabError, ErrorCodes } from "../errors.js";
import { captureReports } from "../../test/support.js";
import { asciinemaCat, noPlayer } from "../../test/asciinema.js";
import {
  DEFAULT_RECORDING_MAX_BYTES,
  recordingFileName,
  SessionRecording,
  type RecordedSession,
  type RecordingOptions,
} from "./recording.js";

const run = promisify(execFile);
const isRoot = process.getuid?.() === 0;

let dir = "";
let sessions = 0;
before(async () => {
  dir = await mkdtemp(join(tmpdir(), "confab-recording-"));
});
after(async () => {
  if (dir !== "") await rm(dir, { recursive: true, force: true });
});

/** A session of its own for each call (distinct ids), started `ago` ms before now. */
function session(overrides: Partial<RecordedSession> = {}, ago = 0): RecordedSession {
  sessions++;
  return {
    id: 100 + sessions,
    name: "listener 1",
    user: "ops",
    peer: "127.0.0.1:5000",
    startedAt: Date.now() - ago,
    ...overrides,
  };
}

function options(sub: string, more: Partial<RecordingOptions> = {}): RecordingOptions {
  return { dir: join(dir, sub), ...more };
}

type Event = [number, string, string];

/** The file's header and events, asserting that every line is JSON of the right shape and times never decrease. */
async function parse(file: string): Promise<{ header: Record<string, unknown>; events: Event[]; text: string }> {
  const text = await readFile(file, "utf8");
  assert.ok(text.endsWith("\n"), "the file ends with a whole line");
  const lines = text.slice(0, -1).split("\n");
  const header = JSON.parse(lines[0] ?? "") as Record<string, unknown>;
  assert.equal(header.version, 2);
  const events = lines.slice(1).map((line, i) => {
    const event = JSON.parse(line) as unknown;
    assert.ok(Array.isArray(event) && event.length === 3, `line ${i + 2} is a 3-element array: ${line.slice(0, 80)}`);
    const [time, code, data] = event as unknown[];
    assert.ok(typeof time === "number" && time >= 0, `line ${i + 2}: a time in seconds`);
    assert.ok(code === "o" || code === "i", `line ${i + 2}: an "o" or "i" event`);
    assert.equal(typeof data, "string");
    return event as Event;
  });
  for (let i = 1; i < events.length; i++) {
    assert.ok((events[i]?.[0] ?? 0) >= (events[i - 1]?.[0] ?? 0), `event ${i + 1}'s time is not before event ${i}'s`);
  }
  return { header, events, text };
}

function output(events: Event[]): string {
  return events
    .filter(([, code]) => code === "o")
    .map(([, , data]) => data)
    .join("");
}

describe("a recorded session", () => {
  test("is replayed by asciinema cat: prompts, typed lines and outputs in order", { skip: noPlayer }, async () => {
    const reports = captureReports();
    try {
      const s = session({ name: "listener 7", user: "ops", peer: "10.0.0.7:40000" }, 1500);
      const recording = SessionRecording.start(s, options("replay"));
      recording.shown("confab listener (node v20)\n");
      recording.shown("CL-USER 1 > ");
      recording.sent("1 + 1");
      recording.shown("2\n");
      recording.shown("CL-USER 2 > ");
      recording.sent('"héllo ✓"');
      recording.shown("'héllo ✓'\r\n");
      recording.shown("CL-USER 3 > ");
      await recording.close("session ended: end of file");
      assert.equal(recording.stopped, false);

      const shown =
        "confab listener (node v20)\r\nCL-USER 1 > 1 + 1\r\n2\r\nCL-USER 2 > \"héllo ✓\"\r\n'héllo ✓'\r\nCL-USER 3 > " +
        "\r\nsession ended: end of file\r\n";
      assert.equal(await asciinemaCat(recording.path), shown);

      const { header, events } = await parse(recording.path);
      assert.deepEqual(header, {
        version: 2,
        width: 80,
        height: 24,
        timestamp: Math.floor(s.startedAt / 1000),
        title: "listener 7 (ops@10.0.0.7:40000)",
        env: {
          CONFAB_SESSION_ID: String(s.id),
          CONFAB_SESSION_NAME: "listener 7",
          CONFAB_USER: "ops",
          CONFAB_PEER: "10.0.0.7:40000",
        },
      });
      assert.equal(output(events), shown);
      assert.deepEqual(
        events.filter(([, code]) => code === "i").map(([, , data]) => data),
        ["1 + 1\n", '"héllo ✓"\n'],
      );
      // Times count from startedAt, 1.5 s before the recording began.
      assert.ok((events[0]?.[0] ?? 0) >= 1.5, `the first event is at ${events[0]?.[0]} s`);
      assert.deepEqual(reports.reports, []);
    } finally {
      reports.restore();
    }
  });

  test("its title says what is known of user and peer", async () => {
    const titles: unknown[] = [];
    for (const known of [{ user: "ops" }, { peer: "[::1]:9" }, {}]) {
      const recording = SessionRecording.start(
        { id: 1, name: "s", startedAt: Date.now() - 5, ...known },
        options("titles"),
      );
      await recording.close();
      const { header, events } = await parse(recording.path);
      titles.push(header.title);
      assert.deepEqual(events, [], "no note, no events");
    }
    assert.deepEqual(titles, ["s (ops)", "s ([::1]:9)", "s"]);
  });

  test("close is idempotent, and calls after it are no-ops", async () => {
    const recording = SessionRecording.start(session(), options("idempotent"));
    recording.shown("before\n");
    const closing = recording.close("first note");
    assert.equal(recording.close("second note"), closing);
    recording.shown("after\n");
    recording.sent("after");
    await closing;
    await recording.close();
    const { events } = await parse(recording.path);
    assert.equal(output(events), "before\r\nfirst note\r\n");
  });
});

describe("files and directories", () => {
  test("the directory is created 0700 and the file 0600; a second recording never overwrites the first", async () => {
    const opts = options(join("nested", "recordings"));
    const s = session();
    const first = SessionRecording.start(s, opts);
    first.shown("first\n");
    await first.close();
    assert.equal((await stat(opts.dir)).mode & 0o777, 0o700);
    assert.equal((await stat(join(dir, "nested"))).mode & 0o777, 0o700, "a missing parent too");
    assert.equal((await stat(first.path)).mode & 0o777, 0o600);
    assert.equal(first.path, join(opts.dir, recordingFileName(s)));

    const second = SessionRecording.start(s, opts);
    const third = SessionRecording.start(s, opts);
    second.shown("second\n");
    third.shown("third\n");
    await Promise.all([second.close(), third.close()]);
    assert.equal(second.path, first.path.replace(/\.cast$/, ".2.cast"));
    assert.equal(third.path, first.path.replace(/\.cast$/, ".3.cast"));
    assert.equal((await stat(second.path)).mode & 0o777, 0o600);
    assert.equal(output((await parse(first.path)).events), "first\r\n", "the first recording is intact");
    assert.equal(output((await parse(second.path)).events), "second\r\n");
    assert.equal(output((await parse(third.path)).events), "third\r\n");
  });

  test("a symbolic link where the file would go is not written through", async () => {
    const opts = options("symlink");
    const s = session();
    const target = join(dir, "symlink-target");
    await writeFile(target, "precious\n");
    const recording0 = SessionRecording.start(session(), opts); // makes the directory
    await recording0.close();
    await symlink(target, join(opts.dir, recordingFileName(s)));
    const recording = SessionRecording.start(s, opts);
    await recording.close("bye");
    assert.equal(await readFile(target, "utf8"), "precious\n");
    assert.ok(recording.path.endsWith(".2.cast"));
  });

  test("start throws ERR_RECORDING naming the path when the directory cannot be made", async () => {
    const blocker = join(dir, "a-file");
    await writeFile(blocker, "");
    const where = join(blocker, "recordings");
    assert.throws(
      () => SessionRecording.start(session(), { dir: where }),
      (error: unknown) =>
        error instanceof ConfabError && error.code === ErrorCodes.RECORDING && error.message.includes(where),
    );
  });

  test(
    "start throws ERR_RECORDING naming the path when the directory is read-only",
    { skip: isRoot && "root writes anyway" },
    async () => {
      const opts = options("read-only");
      await SessionRecording.start(session(), opts).close();
      await chmod(opts.dir, 0o500);
      try {
        const s = session();
        assert.throws(
          () => SessionRecording.start(s, opts),
          (error: unknown) =>
            error instanceof ConfabError &&
            error.code === ErrorCodes.RECORDING &&
            error.message.includes(join(opts.dir, recordingFileName(s))),
        );
      } finally {
        await chmod(opts.dir, 0o700);
      }
    },
  );

  test("a maxBytes that is not a positive whole number, or too small for the header, is refused before any file is made", () => {
    const opts = options("too-small");
    for (const maxBytes of [0, -1, 1.5, Number.NaN, Number.POSITIVE_INFINITY]) {
      assert.throws(
        () => SessionRecording.start(session(), { ...opts, maxBytes }),
        (error: unknown) => error instanceof ConfabError && error.code === ErrorCodes.INVALID_ARGUMENT,
      );
    }
    assert.throws(
      () => SessionRecording.start(session(), { ...opts, maxBytes: 150 }),
      (error: unknown) =>
        error instanceof ConfabError && error.code === ErrorCodes.RECORDING && error.message.includes(opts.dir),
    );
    assert.equal(existsSync(opts.dir), false);
  });
});

describe("the size limit", () => {
  const maxBytes = 4096;
  const note = `\r\n[recording stopped: it reached its size limit of ${maxBytes} bytes]\r\n`;

  async function checkStopped(recording: SessionRecording, closeNote?: string): Promise<Event[]> {
    assert.equal(recording.stopped, true);
    await recording.close(closeNote);
    const size = (await stat(recording.path)).size;
    assert.ok(size <= maxBytes, `${size} bytes, at most ${maxBytes}`);
    const { events } = await parse(recording.path);
    assert.equal(events.at(-1)?.[2], note, "the last event is the note");
    assert.equal(events.filter(([, , data]) => data === note).length, 1, "the note once");
    return events;
  }

  test(
    "10× maxBytes of output in small pieces leaves a file within the limit that ends with the note",
    { skip: noPlayer },
    async () => {
      const recording = SessionRecording.start(session(), options("limit", { maxBytes }));
      const line = `${"0123456789".repeat(9)}\n`;
      let i = 0;
      while (i * line.length < 10 * maxBytes) {
        recording.shown(`${i++} ${line}`);
        recording.sent(`typed ${i}`);
      }
      // Charged when queued: the burst stopped the recording before the disk could take any of it.
      const events = await checkStopped(recording, "session ended: this note does not get in");
      const played = await asciinemaCat(recording.path);
      assert.ok(played.startsWith("0 0123456789"));
      assert.ok(played.endsWith(note), "asciinema cat plays it to the note");
      assert.equal(played, output(events));
    },
  );

  test("one call of 10× maxBytes stops at once; the session's later calls are no-ops", async () => {
    const recording = SessionRecording.start(session(), options("limit", { maxBytes }));
    recording.shown("prompt > ");
    recording.shown("é".repeat(10 * maxBytes));
    recording.shown("after\n");
    recording.sent("after");
    const events = await checkStopped(recording);
    assert.equal(output(events), `prompt > ${note}`);
  });

  test("a closing note too big for what is left gives way to the limit's note", async () => {
    const recording = SessionRecording.start(session(), options("limit", { maxBytes }));
    recording.shown("hello\n");
    assert.equal(recording.stopped, false);
    await recording.close("x".repeat(maxBytes));
    const events = await checkStopped(recording);
    assert.equal(output(events), `hello\r\n${note}`);
  });

  test("whatever the limit and the pieces, the file stays within it and valid, ending with the note if it stopped", async () => {
    const piece = fc.oneof(
      fc.string({ unit: "binary", maxLength: 300 }).map((text) => ({ shown: text })),
      fc.string({ unit: "binary-ascii", maxLength: 100 }).map((text) => ({ sent: text })),
    );
    await fc.assert(
      fc.asyncProperty(
        fc.integer({ min: 400, max: 3000 }),
        fc.array(piece, { maxLength: 40 }),
        async (limit, pieces) => {
          const recording = SessionRecording.start(session(), options("limit-property", { maxBytes: limit }));
          for (const p of pieces) {
            if ("shown" in p) recording.shown(p.shown);
            else recording.sent(p.sent);
          }
          await recording.close("session ended");
          const size = (await stat(recording.path)).size;
          assert.ok(size <= limit, `${size} bytes, at most ${limit}`);
          const { events } = await parse(recording.path);
          const last = events.at(-1)?.[2];
          const limitNote = `\r\n[recording stopped: it reached its size limit of ${limit} bytes]\r\n`;
          if (recording.stopped) assert.equal(last, limitNote);
          else assert.ok(last?.endsWith("session ended\r\n"), "the closing note is last");
        },
      ),
      { numRuns: 150 },
    );
  });

  test("the default limit is 8 MiB", () => {
    assert.equal(DEFAULT_RECORDING_MAX_BYTES, 8 * 1024 * 1024);
  });
});

// A write that fails mid-session, for real: a child process whose file size limit (RLIMIT_FSIZE,
// `ulimit -f`) is 64 blocks (32 KiB in dash's 512-byte blocks, 64 KiB in bash's) records until a
// write fails with EFBIG (Node ignores SIGXFSZ).
const CHILD = `
const { SessionRecording } = await import(process.env.RECORDING_MODULE);
const { setErrorReporter } = await import(process.env.REPORT_MODULE);
const reports = [];
setErrorReporter((what, error) => reports.push({ what, code: error?.code }));
const recording = SessionRecording.start({ id: 9, name: "full disk", startedAt: Date.now() }, { dir: process.env.RECORDING_DIR });
const line = "x".repeat(999) + "\\n";
for (let i = 0; i < 1000 && !recording.stopped; i++) {
  recording.shown(line);
  await new Promise((resolve) => setImmediate(resolve));
}
const stoppedByError = recording.stopped;
for (let i = 0; i < 100; i++) {
  recording.shown(line);
  recording.sent("still typing");
}
await recording.close("session ended");
await recording.close();
process.stdout.write(JSON.stringify({ path: recording.path, stoppedByError, reports }));
`;

describe("a write error", () => {
  test(
    "stops the recording, is reported once, leaves the file valid, and later calls are harmless",
    { skip: noPlayer },
    async () => {
      const recordingDir = join(dir, "full");
      const { stdout } = await run(
        "/bin/sh",
        [
          "-c",
          'ulimit -f 64 && exec "$@"',
          "sh",
          process.execPath,
          "--import",
          "tsx",
          "--input-type=module",
          "-e",
          CHILD,
        ],
        {
          encoding: "utf8",
          timeout: 30_000,
          env: {
            ...process.env,
            TSX_DISABLE_CACHE: "1",
            RECORDING_MODULE: new URL("./recording.ts", import.meta.url).href,
            REPORT_MODULE: new URL("../report.ts", import.meta.url).href,
            RECORDING_DIR: recordingDir,
          },
        },
      );
      const result = JSON.parse(stdout) as {
        path: string;
        stoppedByError: boolean;
        reports: { what: string; code: unknown }[];
      };
      assert.equal(result.stoppedByError, true);
      const [report, ...more] = result.reports;
      assert.ok(report !== undefined && more.length === 0, `reported once: ${JSON.stringify(result.reports)}`);
      assert.equal(report.code, "EFBIG");
      assert.ok(report.what.includes(result.path), "the report names the file");
      const size = (await stat(result.path)).size;
      assert.ok(size <= 64 * 1024, `${size} bytes: the child's limit held`);
      // The partial line of the failed write was cut: every line is still JSON.
      const { events } = await parse(result.path);
      assert.ok(events.length > 10, `${events.length} events got in before the failure`);
      const played = await asciinemaCat(result.path);
      assert.equal(played, output(events));
      assert.deepEqual(await readdir(recordingDir), [basename(result.path)], "one file, and only the recording");
    },
  );
});

describe("hostile text", () => {
  const controls = Array.from({ length: 32 }, (_, i) => String.fromCharCode(i)).join("") + "\u007f";
  const hostile = `${controls}|\u2028|\u2029|\ud800|\udc00x|a\ud83d\ude00b|"\\|\u001b[2J\u001b[6n`;

  test(
    "control characters, U+2028, lone surrogates and 1 MB in one call keep the file valid and playable",
    { skip: noPlayer },
    async () => {
      const reports = captureReports();
      try {
        const recording = SessionRecording.start(
          session({ name: `evil\u2028\ud800\n"name`, user: "\u0000root", peer: "\udfff" }),
          options("hostile"),
        );
        recording.shown(hostile);
        recording.sent(hostile);
        const big = "é✓ abc\n".repeat((1024 * 1024) / 8);
        const started = performance.now();
        recording.shown(big);
        const took = performance.now() - started;
        recording.shown(hostile);
        await recording.close(`bye\ud800`);
        assert.equal(recording.stopped, false);
        assert.ok(took < 1000, `shown(1 MB) took ${took.toFixed(1)} ms`);

        const { header, events, text } = await parse(recording.path);
        assert.equal(header.title, 'evil\u2028\ufffd\n"name (\u0000root@\ufffd)');
        assert.equal(/[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/.test(text), false);
        const shown = output(events);
        const expectedHostile = hostile
          .replace("\ud800", "\ufffd")
          .replace("\udc00", "\ufffd")
          .replaceAll("\n", "\r\n");
        assert.ok(shown.startsWith(expectedHostile + expectedHostile + "\r\n"), "the text and the typed line's echo");
        assert.ok(shown.includes(big.replaceAll("\n", "\r\n")), "the megabyte, whole");
        assert.ok(shown.endsWith("bye\ufffd\r\n"));
        assert.ok(shown.includes("a\ud83d\ude00b"), "a surrogate pair is kept");
        assert.equal(
          events.find(([, code]) => code === "i")?.[2],
          `${hostile.replace("\ud800", "\ufffd").replace("\udc00", "\ufffd")}\n`,
        );
        assert.equal(await asciinemaCat(recording.path), shown);
        assert.deepEqual(reports.reports, []);
      } finally {
        reports.restore();
      }
    },
  );
});

describe("recordingFileName", () => {
  // The first and last ms whose ISO 8601 form has a four-digit year (Date.UTC would take 0 for 1900).
  const FIRST_MS = Date.parse("0000-01-01T00:00:00.000Z");
  const LAST_MS = Date.parse("9999-12-31T23:59:59.999Z");
  // Characters a slug keeps, ones it replaces, any UTF-16 unit (lone surrogates too), any code point.
  const character = fc.oneof(
    fc.constantFrom("a", "Z", "0", "_", "-", ".", "/", ":", " ", "\u0000"),
    fc.integer({ min: 0, max: 0xffff }).map((unit) => String.fromCharCode(unit)),
    fc.string({ unit: "binary", minLength: 1, maxLength: 1 }),
  );
  const sessionArbitrary = fc.record({
    id: fc.nat(),
    name: fc.string({ unit: character, maxLength: 60 }),
    startedAt: fc.integer({ min: FIRST_MS, max: LAST_MS }),
  });

  test("an example", () => {
    assert.equal(
      recordingFileName({ id: 12, name: "listener for ops@10.0.0.7", startedAt: Date.UTC(2025, 0, 2, 3, 4, 5, 6) }),
      "2025-01-02T03-04-05.006Z-12-listener-for-ops-10-0-0-7.cast",
    );
    assert.equal(recordingFileName({ id: 1, name: "é😀", startedAt: 0 }), "1970-01-01T00-00-00.000Z-1---.cast");
  });

  test("names sort by start time, whatever the ids and names", () => {
    fc.assert(
      fc.property(sessionArbitrary, sessionArbitrary, (a, b) => {
        fc.pre(a.startedAt !== b.startedAt);
        const [x, y] = [recordingFileName(a), recordingFileName(b)];
        assert.equal(x < y, a.startedAt < b.startedAt, `${x} vs ${y}`);
      }),
      { numRuns: 500 },
    );
  });

  test("names hold only [A-Za-z0-9._-], and at most 40 of the name's characters", () => {
    fc.assert(
      fc.property(sessionArbitrary, (s) => {
        const name = recordingFileName(s);
        assert.match(name, /^[A-Za-z0-9._-]+\.cast$/);
        const prefix = `${new Date(s.startedAt).toISOString().replaceAll(":", "-")}-${s.id}-`;
        assert.ok(name.startsWith(prefix));
        assert.ok(name.length - prefix.length - ".cast".length <= 40);
      }),
      { numRuns: 500 },
    );
  });

  test("a start time without a four-digit year is refused", () => {
    for (const startedAt of [Number.NaN, LAST_MS + 1, FIRST_MS - 1, Number.POSITIVE_INFINITY]) {
      assert.throws(
        () => recordingFileName({ id: 1, name: "x", startedAt }),
        (error: unknown) => error instanceof ConfabError && error.code === ErrorCodes.INVALID_ARGUMENT,
      );
    }
  });
});
