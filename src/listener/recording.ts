/**
 * Recording one listener session to one file in asciinema's asciicast v2 format, so that
 * `asciinema play FILE` replays it and `asciinema cat FILE` prints what the client saw.
 *
 * The file is newline-delimited JSON: a header object, then one `[seconds, code, data]` array a
 * line. What the client was shown is an `"o"` event; a line it sent is an `"i"` event, plus an
 * `"o"` echo of it, because the client's own terminal showed what was typed and the server never
 * wrote it. The header keeps the session's id, name, user and peer in `title` and in `env` (as
 * `CONFAB_SESSION_ID`, `CONFAB_SESSION_NAME`, `CONFAB_USER`, `CONFAB_PEER`): the v2 specification
 * lists the header's keys and says nothing of others, while `env` is its string-to-string map.
 *
 * A recording must never hold up or crash the session it records. Only {@link SessionRecording.start}
 * touches the disk synchronously (a mkdir, an open and the header's write), so that it can throw;
 * after it, events are queued and appended by asynchronous writes, one in flight at a time. Every
 * event is charged against `maxBytes` when it is queued, not when it is written, so what waits in
 * memory for a slow disk is bounded by the size limit too. A failed write stops the recording,
 * is reported once through {@link reportError}, and leaves later calls as no-ops.
 *
 * @module
 */
import { close, closeSync, fsync, ftruncate, mkdirSync, openSync, unlinkSync, write, writeSync } from "node:fs";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import { promisify } from "node:util";
import { ConfabError, ErrorCodes } from "../errors.js";
import { reportError } from "../report.js";

/** Options for recording listener sessions. */
export interface RecordingOptions {
  /** Directory the recordings go in (created if missing, mode 0700). */
  readonly dir: string;
  /** Most bytes one recording file may take (default 8 MiB). Past it the recording stops with a note at its end. */
  readonly maxBytes?: number;
}

/** Who and what is recorded: the session's process id and name, its user and peer if known, and when it started (ms since epoch). */
export interface RecordedSession {
  /** The session's process id: in the file name and the header's `env.CONFAB_SESSION_ID`. */
  readonly id: number;
  /** The session's process name: slugged in the file name, whole in the header's `title` and `env.CONFAB_SESSION_NAME`. */
  readonly name: string;
  /** Who logged in, when the listener knows (a token's user, say): in `title` and `env.CONFAB_USER`. */
  readonly user?: string | undefined;
  /** The client's address (`host:port`), when known: in `title` and `env.CONFAB_PEER`. */
  readonly peer?: string | undefined;
  /** When the session started, in ms since the epoch: the header's `timestamp`, the file name's time, and time 0 of the events. */
  readonly startedAt: number;
}

/** The size limit of a recording when {@link RecordingOptions.maxBytes} is not given: 8 MiB. */
export const DEFAULT_RECORDING_MAX_BYTES = 8 * 1024 * 1024;

// The terminal a listener client is assumed to have: the size nothing else tells us.
const WIDTH = 80;
const HEIGHT = 24;
const MAX_SLUG = 40;
// Names tried for one recording: the plain one, then `.2.cast` up to `.100.cast`.
const MAX_NAME_TRIES = 100;
// Event times are clamped below this (about 31,700 years), so that the time of the size-limit
// note has a known longest form and the room kept for the note always suffices.
const MAX_SECONDS = 1e12 - 1;
const SLUG_CHARACTER = /^[A-Za-z0-9_-]$/;
// A UTF-16 surrogate without its other half. JSON.stringify escapes one as `\ud800`, which is
// valid JSON, but asciinema's player cannot encode the string it decodes to and stops with a
// UnicodeEncodeError, so lone halves become U+FFFD, as a UTF-8 terminal would show them.
const LONE_SURROGATE = /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/g;
const ANY_SURROGATE = /[\ud800-\udfff]/;
const NEWLINE = 0x0a;

const writeAsync = promisify(write);
const fsyncAsync = promisify(fsync);
const ftruncateAsync = promisify(ftruncate);
const closeAsync = promisify(close);

/**
 * The file name a recording gets: `<UTC time, ISO 8601 with ':' replaced by '-'>-<id>-<name slug>.cast`, so that
 * names sort by time; the slug keeps [A-Za-z0-9_-] of the name (others become '-', at most 40 chars).
 *
 * Throws a ConfabError (`ERR_INVALID_ARGUMENT`) if `startedAt` is not a time in the years 0 to 9999, whose ISO
 * form has a four-digit year: only those names sort by time.
 *
 * @example
 * ```ts
 * recordingFileName({ id: 12, name: "listener for ops@10.0.0.7", startedAt: Date.UTC(2025, 0, 2, 3, 4, 5, 6) });
 * // => "2025-01-02T03-04-05.006Z-12-listener-for-ops-10-0-0-7.cast"
 * ```
 */
export function recordingFileName(session: RecordedSession): string {
  return `${fileTime(session.startedAt)}-${session.id}-${slug(session.name)}.cast`;
}

function fileTime(startedAt: number): string {
  const iso = Number.isFinite(startedAt) ? new Date(startedAt).toISOString() : "";
  if (!/^\d{4}-/.test(iso)) {
    throw new ConfabError(
      ErrorCodes.INVALID_ARGUMENT,
      `a recorded session's startedAt must be ms since the epoch in the years 0 to 9999, got ${String(startedAt)}`,
    );
  }
  return iso.replaceAll(":", "-");
}

function slug(name: string): string {
  // Array.from walks code points, so that one character outside the set is one '-', not two.
  return Array.from(name, (character) => (SLUG_CHARACTER.test(character) ? character : "-"))
    .slice(0, MAX_SLUG)
    .join("");
}

/** `text` with each lone surrogate replaced by U+FFFD (see LONE_SURROGATE). */
function wellFormed(text: string): string {
  // The plain test is several times faster than the lookaround, and most text has no surrogate at all.
  return ANY_SURROGATE.test(text) ? text.replace(LONE_SURROGATE, "\ufffd") : text;
}

/**
 * `text` as a terminal shows it: LF (or CRLF) becomes CRLF, since the terminal's driver adds the CR. Split and
 * join, because a global regular expression replace is about twice as slow on output of many short lines (a
 * megabyte of 8-byte lines: some 20 ms against 40), and this runs on the session's own turn of the event loop.
 */
function terminalText(text: string): string {
  const lines = wellFormed(text);
  return (lines.includes("\r\n") ? lines.replaceAll("\r\n", "\n") : lines).split("\n").join("\r\n");
}

function eventLine(seconds: string, code: "o" | "i", data: string): string {
  return `[${seconds},"${code}",${JSON.stringify(data)}]\n`;
}

function limitNote(maxBytes: number): string {
  return `\r\n[recording stopped: it reached its size limit of ${maxBytes} bytes]\r\n`;
}

/** The `title`: `name (user@peer)`, or `name (user)`, `name (peer)`, `name`, as far as they are known. */
function title(session: RecordedSession): string {
  const who = [session.user, session.peer].filter((part) => part !== undefined).join("@");
  return who === "" ? session.name : `${session.name} (${who})`;
}

function headerLine(session: RecordedSession): string {
  const env: Record<string, string> = {
    CONFAB_SESSION_ID: String(session.id),
    CONFAB_SESSION_NAME: wellFormed(session.name),
  };
  if (session.user !== undefined) env.CONFAB_USER = wellFormed(session.user);
  if (session.peer !== undefined) env.CONFAB_PEER = wellFormed(session.peer);
  const header = {
    version: 2,
    width: WIDTH,
    height: HEIGHT,
    timestamp: Math.floor(session.startedAt / 1000),
    title: wellFormed(title(session)),
    env,
  };
  return `${JSON.stringify(header)}\n`;
}

function checkedMaxBytes(maxBytes: number | undefined): number {
  if (maxBytes === undefined) return DEFAULT_RECORDING_MAX_BYTES;
  if (!Number.isSafeInteger(maxBytes) || maxBytes < 1) {
    throw new ConfabError(
      ErrorCodes.INVALID_ARGUMENT,
      `a recording's maxBytes must be a whole number of bytes, at least 1, got ${String(maxBytes)}`,
    );
  }
  return maxBytes;
}

function message(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

function makeDirectory(dir: string): void {
  try {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
  } catch (error) {
    throw new ConfabError(ErrorCodes.RECORDING, `cannot make the recordings directory ${dir}: ${message(error)}`, {
      cause: error,
    });
  }
}

/**
 * Creates the recording's file, exclusively (O_EXCL: an existing file, or a symbolic link put in its
 * place, is never written through). On a clash, `NAME.cast` is tried as `NAME.2.cast`, `NAME.3.cast`, ...
 */
function createFile(dir: string, name: string): { fd: number; path: string } {
  for (let n = 1; n <= MAX_NAME_TRIES; n++) {
    const path = join(dir, n === 1 ? name : name.replace(/\.cast$/, `.${n}.cast`));
    try {
      return { fd: openSync(path, "wx", 0o600), path };
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === "EEXIST") continue;
      throw new ConfabError(ErrorCodes.RECORDING, `cannot create the recording ${path}: ${message(error)}`, {
        cause: error,
      });
    }
  }
  throw new ConfabError(
    ErrorCodes.RECORDING,
    `cannot create a recording named ${join(dir, name)}: it and ${MAX_NAME_TRIES - 1} numbered alternatives exist`,
  );
}

function writeHeader(fd: number, path: string, header: Buffer): void {
  try {
    let done = 0;
    while (done < header.length) done += writeSync(fd, header, done);
  } catch (error) {
    // Best effort, each on its own: the error worth telling is the write's.
    try {
      closeSync(fd);
    } catch {
      // The descriptor is gone either way.
    }
    try {
      unlinkSync(path);
    } catch {
      // A header-less file left behind is not valid asciicast, but nothing more can be done.
    }
    throw new ConfabError(ErrorCodes.RECORDING, `cannot write the header of the recording ${path}: ${message(error)}`, {
      cause: error,
    });
  }
}

/**
 * One session's recording: see the module's comment.
 *
 * @example
 * ```ts
 * const recording = SessionRecording.start({ id: p.id, name: p.name, startedAt: Date.now() }, { dir: "/var/log/confab" });
 * recording.shown("CL-USER 1 > ");
 * recording.sent("1 + 1");
 * recording.shown("2\n");
 * await recording.close("session ended: end of file");
 * ```
 */
export class SessionRecording {
  readonly #path: string;
  readonly #maxBytes: number;
  // Bytes kept free for the size-limit note, at the longest its time can be.
  readonly #reserve: number;
  // performance.now() at startedAt: event times are monotonic even if the wall clock steps.
  readonly #origin: number;
  #fd: number | undefined;
  // Bytes of every line taken so far (header included), written or still queued.
  #taken: number;
  // Bytes known to be in the file.
  #written: number;
  #queue: string[] = [];
  #draining = false;
  #accepting = true;
  #closing = false;
  #stopped = false;
  #reported = false;
  #atLineStart = true;
  #finish: () => void = () => undefined;
  readonly #finished = new Promise<void>((resolve) => {
    this.#finish = resolve;
  });

  private constructor(
    path: string,
    fd: number,
    maxBytes: number,
    reserve: number,
    headerBytes: number,
    startedAt: number,
  ) {
    this.#path = path;
    this.#fd = fd;
    this.#maxBytes = maxBytes;
    this.#reserve = reserve;
    this.#taken = headerBytes;
    this.#written = headerBytes;
    this.#origin = performance.now() - Math.max(0, Date.now() - startedAt);
  }

  /**
   * Creates the file (mode 0600, exclusive: never overwrites) and writes the asciicast header. Throws a ConfabError
   * (code `ERR_RECORDING`) naming the path if it cannot.
   *
   * The file is `options.dir` joined with {@link recordingFileName}; if that name is taken, `.2.cast`, `.3.cast`, ...
   * up to `.100.cast` replace `.cast`, and past those start throws. A `maxBytes` too small for the header and the
   * size-limit note throws `ERR_RECORDING` too, before any file is made; one that is not a positive whole number
   * throws `ERR_INVALID_ARGUMENT`.
   */
  static start(session: RecordedSession, options: RecordingOptions): SessionRecording {
    const maxBytes = checkedMaxBytes(options.maxBytes);
    const name = recordingFileName(session);
    const header = Buffer.from(headerLine(session), "utf8");
    const reserve = Buffer.byteLength(eventLine(MAX_SECONDS.toFixed(6), "o", limitNote(maxBytes)));
    if (header.length + reserve > maxBytes) {
      throw new ConfabError(
        ErrorCodes.RECORDING,
        `cannot record in ${join(options.dir, name)}: maxBytes ${maxBytes} is less than the header (${header.length} ` +
          `bytes) and the size-limit note (${reserve} bytes) take`,
      );
    }
    makeDirectory(options.dir);
    const { fd, path } = createFile(options.dir, name);
    writeHeader(fd, path, header);
    return new SessionRecording(path, fd, maxBytes, reserve, header.length, session.startedAt);
  }

  /** The file's path. */
  get path(): string {
    return this.#path;
  }

  /** Whether the recording stopped early (size limit or a write error). */
  get stopped(): boolean {
    return this.#stopped;
  }

  /** Text the client was shown (an "o" event). LF becomes CRLF, as a terminal shows it. */
  shown(text: string): void {
    if (!this.#accepting || text === "") return;
    this.#output(terminalText(text));
  }

  /** A line the client sent (an "i" event with the line and "\n"); also shown as typed, since the client's own terminal echoed it: an "o" event with the line and CRLF. */
  sent(line: string): void {
    if (!this.#accepting) return;
    const typed = wellFormed(line);
    if (this.#take("i", `${typed}\n`)) this.#output(`${terminalText(typed)}\r\n`);
  }

  /**
   * Ends the recording; `note` (e.g. "session ended: end of file") is shown as a last line. Idempotent. Resolves
   * once everything is on disk (written and fsync'd, the file closed); it never rejects, since a failure is
   * reported instead. A note that does not fit in the size limit is replaced by the size-limit note.
   */
  close(note?: string): Promise<void> {
    if (this.#closing) return this.#finished;
    this.#closing = true;
    if (this.#accepting) {
      this.#accepting = false;
      if (note !== undefined && note !== "") this.#closingNote(note);
    }
    void this.#drain();
    return this.#finished;
  }

  #output(data: string): void {
    if (this.#take("o", data)) this.#atLineStart = data.endsWith("\n");
  }

  #closingNote(note: string): void {
    const line = eventLine(this.#seconds(), "o", `${this.#atLineStart ? "" : "\r\n"}${terminalText(note)}\r\n`);
    const bytes = Buffer.byteLength(line);
    // The room kept for the size-limit note is free now that nothing can follow.
    if (this.#taken + bytes <= this.#maxBytes) this.#enqueue(line, bytes);
    else this.#stop();
  }

  /** Queues an event if it fits beside the room kept for the size-limit note; otherwise stops the recording. */
  #take(code: "o" | "i", data: string): boolean {
    const room = this.#maxBytes - this.#reserve - this.#taken;
    // Each UTF-16 unit takes at least a byte of JSON, so a text this long cannot fit: no need to encode it.
    if (data.length > room) {
      this.#stop();
      return false;
    }
    const line = eventLine(this.#seconds(), code, data);
    const bytes = Buffer.byteLength(line);
    if (bytes > room) {
      this.#stop();
      return false;
    }
    this.#enqueue(line, bytes);
    return true;
  }

  /** Stops at the size limit: the note goes in the room kept for it, and nothing more is taken. */
  #stop(): void {
    this.#accepting = false;
    this.#stopped = true;
    const line = eventLine(this.#seconds(), "o", limitNote(this.#maxBytes));
    this.#enqueue(line, Buffer.byteLength(line));
  }

  #seconds(): string {
    return Math.min(MAX_SECONDS, (performance.now() - this.#origin) / 1000).toFixed(6);
  }

  #enqueue(line: string, bytes: number): void {
    this.#taken += bytes;
    this.#queue.push(line);
    void this.#drain();
  }

  /**
   * Writes what is queued, one write at a time, until the queue is empty; then, once nothing more can come (closed
   * or stopped), syncs and closes the file. Only one drain runs at a time: the rest return at once.
   */
  async #drain(): Promise<void> {
    const fd = this.#fd;
    if (this.#draining || fd === undefined) return;
    this.#draining = true;
    try {
      while (this.#queue.length > 0) {
        const chunk = Buffer.from(this.#queue.join(""), "utf8");
        this.#queue = [];
        if (!(await this.#writeChunk(fd, chunk))) return;
      }
      if (!this.#accepting) await this.#closeFile(fd, true);
    } finally {
      this.#draining = false;
    }
  }

  /** Writes all of `chunk` (short writes are continued); `false` if a write failed, and then the file is closed. */
  async #writeChunk(fd: number, chunk: Buffer): Promise<boolean> {
    let done = 0;
    try {
      while (done < chunk.length) {
        const { bytesWritten } = await writeAsync(fd, chunk, done, chunk.length - done, null);
        done += bytesWritten;
      }
    } catch (error) {
      // Cut what got in back to its last whole line, so that every line of the file stays JSON.
      await this.#fail(fd, error, this.#written + chunk.subarray(0, done).lastIndexOf(NEWLINE) + 1);
      return false;
    }
    this.#written += chunk.length;
    return true;
  }

  async #fail(fd: number, error: unknown, keep: number): Promise<void> {
    this.#accepting = false;
    this.#stopped = true;
    this.#queue = [];
    this.#report("a write failed", error);
    try {
      await ftruncateAsync(fd, keep);
    } catch {
      // Best effort: the file may end in part of a line, which players skip or stop at.
    }
    await this.#closeFile(fd, false);
  }

  async #closeFile(fd: number, sync: boolean): Promise<void> {
    this.#fd = undefined;
    if (sync) {
      try {
        await fsyncAsync(fd);
      } catch (error) {
        this.#stopped = true;
        this.#report("syncing it to disk failed", error);
      }
    }
    try {
      await closeAsync(fd);
    } catch (error) {
      this.#stopped = true;
      this.#report("closing it failed", error);
    }
    this.#finish();
  }

  #report(what: string, error: unknown): void {
    if (this.#reported) return;
    this.#reported = true;
    reportError(`session recording ${this.#path}: ${what}; the recording stopped (the session carries on)`, error);
  }
}
