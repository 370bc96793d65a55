/**
 * Session recordings as the monitor sees them: the asciicast v2 files (`*.cast`, one per
 * listener session) in the directory given as `startMonitor({ recordings })`, listed and read
 * for the page's replay button.
 *
 * A recording's file name says whose it is and when it began:
 * `<UTC ISO time, ':' as '-'>-<process id>-<name slug>.cast`, as in
 * `2026-12-02T14-40-00.123Z-17-my-listener.cast`. Files whose names do not read that way are
 * not listed.
 *
 * What a browser names is never trusted as a path: a file name must match
 * {@link RECORDING_FILE} (no separator, no `%`, so nothing to decode), is joined to the
 * directory and nothing else, and is opened without following a symbolic link and only if it
 * is a regular file. A name that fails is refused before anything is opened.
 *
 * @module
 */
import { constants, type Dirent } from "node:fs";
import { lstat, open, readdir, type FileHandle } from "node:fs/promises";
import { basename, dirname, join, resolve } from "node:path";
import { ConfabError, ErrorCodes, systemCode } from "../errors.js";

/** One recording, as `GET /api/recordings` lists it. */
export interface MonitorRecording {
  /** The file's name in the recordings directory: what `GET /api/recordings/FILE` takes. */
  readonly file: string;
  /** The id of the session's process (ids restart with the program: see `startedAt`). */
  readonly id: number;
  /** The session's name slug, as the file name has it (letters, digits, `.`, `_`, `-`). */
  readonly name: string;
  /** When the recording began, an ISO time (`2026-12-02T14:40:00.123Z`). */
  readonly startedAt: string;
  /** The file's size now (a live session's recording grows). */
  readonly bytes: number;
}

/** What a recording's file name may be at all: one plain name ending in `.cast`. */
export const RECORDING_FILE = /^[A-Za-z0-9._-]+\.cast$/;

/** Most recordings one listing returns (the newest); the page needs the recent ones. */
export const DEFAULT_MAX_RECORDINGS = 1000;

// `<date>T<hh>-<mm>-<ss>[.mmm]Z-<id>-<slug>.cast`: the time is toISOString()'s with ':' as '-'.
const RECORDING_NAME = /^(\d{4}-\d{2}-\d{2})T(\d{2})-(\d{2})-(\d{2})(\.\d{3})?Z-(\d{1,15})-([A-Za-z0-9._-]*)\.cast$/;

// Stats run a few at a time: enough to be quick, few enough not to fill libuv's thread pool.
const STAT_BATCH = 16;

/** The id, name and start time a recording's file name gives, or `undefined` if it does not read as one. */
export function parseRecordingName(file: string): Omit<MonitorRecording, "bytes" | "file"> | undefined {
  const m = RECORDING_NAME.exec(file);
  if (m === null) return undefined;
  const [, date = "", hh = "", mm = "", ss = "", fraction = ".000", id = "", name = ""] = m;
  const iso = `${date}T${hh}:${mm}:${ss}${fraction}Z`;
  const time = Date.parse(iso);
  // Date.parse takes 2026-02-31 for 2026-03-03: only a time that reads back the same is one.
  if (Number.isNaN(time) || new Date(time).toISOString() !== iso) return undefined;
  return { id: Number(id), name, startedAt: iso };
}

/**
 * The newest `max` recordings in `directory`, newest first (by the time in their names). A
 * directory that does not exist (yet: nothing was recorded) has none. Only regular files are
 * listed: not symbolic links, which could point anywhere.
 */
export async function listRecordings(
  directory: string,
  max: number = DEFAULT_MAX_RECORDINGS,
): Promise<MonitorRecording[]> {
  let entries: Dirent[];
  try {
    entries = await readdir(directory, { withFileTypes: true });
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return [];
    throw new ConfabError(
      systemCode(error as NodeJS.ErrnoException, ErrorCodes.INVALID_ARGUMENT),
      `cannot list the recordings in ${directory}: ${(error as Error).message}`,
      { cause: error },
    );
  }
  const candidates: Omit<MonitorRecording, "bytes">[] = [];
  for (const entry of entries) {
    // A file system that does not tell an entry's type passes here; lstat below has the last word.
    if (entry.isDirectory() || entry.isSymbolicLink()) continue;
    const parsed = parseRecordingName(entry.name);
    if (parsed !== undefined) candidates.push({ file: entry.name, ...parsed });
  }
  candidates.sort((a, b) =>
    a.startedAt === b.startedAt ? (a.file < b.file ? 1 : -1) : a.startedAt < b.startedAt ? 1 : -1,
  );
  const found: MonitorRecording[] = [];
  // Newest first, and only as many stats as it takes to find `max` files.
  for (let i = 0; i < candidates.length && found.length < max; i += STAT_BATCH) {
    const batch = candidates.slice(i, i + STAT_BATCH);
    const stats = await Promise.all(batch.map((c) => lstat(join(directory, c.file)).catch(() => undefined)));
    batch.forEach((c, j) => {
      const stat = stats[j];
      if (stat?.isFile() === true && found.length < max) found.push({ ...c, bytes: stat.size });
    });
  }
  return found;
}

/** An open recording: read it from `handle` (then close it), `size` bytes. */
export interface OpenRecording {
  /** The open file; the caller closes it. */
  readonly handle: FileHandle;
  /** Its size when it was opened: serve this much, however much it grows meanwhile. */
  readonly size: number;
}

/**
 * Opens recording `file` of `directory` for reading. Throws a {@link ConfabError}:
 * `ERR_INVALID_ARGUMENT` when `file` is no plain `*.cast` name (a path, `..`, an encoded
 * separator), `ENOENT` when there is no such regular file in the directory (a symbolic link,
 * a directory or a FIFO of that name is not one).
 */
export async function openRecording(directory: string, file: string): Promise<OpenRecording> {
  if (!RECORDING_FILE.test(file) || basename(file) !== file) {
    throw new ConfabError(
      ErrorCodes.INVALID_ARGUMENT,
      `${JSON.stringify(file)} is not a recording's file name (letters, digits, '.', '_', '-', ending in .cast)`,
    );
  }
  const root = resolve(directory);
  const path = resolve(root, file);
  // The name test leaves nothing that could climb out; this says so once more, in terms of paths.
  if (dirname(path) !== root) throw new ConfabError(ErrorCodes.INVALID_ARGUMENT, `${file} is not inside ${root}`);
  const missing = (cause?: unknown): ConfabError =>
    new ConfabError("ENOENT", `no recording ${file} in ${root}`, cause === undefined ? undefined : { cause });
  // Where the OS cannot refuse a link as it opens (Windows), it is refused before.
  const noFollow = constants.O_NOFOLLOW as number | undefined;
  if (noFollow === undefined) {
    const stat = await lstat(path).catch((error: unknown) => {
      throw missing(error);
    });
    if (!stat.isFile()) throw missing();
  }
  let handle: FileHandle;
  try {
    // O_NONBLOCK: a FIFO put there by someone opens at once (and is refused below) instead of
    // holding a thread of the pool until a writer comes.
    handle = await open(
      path,
      constants.O_RDONLY | (noFollow ?? 0) | ((constants.O_NONBLOCK as number | undefined) ?? 0),
    );
  } catch (error) {
    throw missing(error);
  }
  try {
    const stat = await handle.stat();
    if (!stat.isFile()) throw missing();
    return { handle, size: stat.size };
  } catch (error) {
    await handle.close().catch(() => undefined);
    throw error;
  }
}
