import { inspect } from "node:util";
import { ServerProcess } from "../comm/server-base.js";
import { printable, quoted } from "../comm/printable.js";
import { formatHostPort, peerOf } from "../comm/address.js";
import { SocketStream } from "../comm/socket-stream.js";
import { ConfabError, ErrorCodes } from "../errors.js";
import { processKill, type Process } from "../mp/process.js";
import { getCurrentProcess, liveProcesses, listAllProcesses } from "../mp/registry.js";

/** One row of {@link ps}. */
export interface ProcessRow {
  readonly id: number;
  readonly name: string;
  readonly state: string;
  /** Whose session it is (`properties.user`: a user's token or client certificate), if anyone's. */
  readonly user?: string;
  /** Milliseconds since the process started. */
  readonly age: number;
  /** `host:port` of the peer, for a process that owns a connection; for a server, where it listens and how many connections are open. */
  readonly peer?: string;
  readonly bytesIn?: number;
  readonly bytesOut?: number;
  /** What it waits for (`process.whostate`), when it waits in one of confab's waits. */
  readonly waiting?: string;
}

/**
 * Rows that print as a table in a listener and still work as an array in code. The rows hold
 * the real names; the table shows names and peers with control, bidi and zero-width characters
 * escaped (`evil\tname\u202e`, see `comm/printable.ts`), so a hostile name cannot hide a row,
 * forge one or reorder the columns.
 */
export class ProcessTable extends Array<ProcessRow> {
  /** Arrays made by `map`/`filter` on a table are plain arrays. */
  static override get [Symbol.species](): ArrayConstructor {
    return Array;
  }

  [inspect.custom](): string {
    const me = getCurrentProcess();
    const header = ["ID", "NAME", "USER", "STATE", "AGE", "PEER", "IN", "OUT", "WAITING"];
    const rows = this.map((r) => [
      `${r.id === me?.id ? "*" : " "}${r.id}`,
      printable(r.name),
      r.user === undefined ? "" : printable(r.user),
      r.state,
      formatAge(r.age),
      r.peer === undefined ? "" : printable(r.peer),
      r.bytesIn === undefined ? "" : formatBytes(r.bytesIn),
      r.bytesOut === undefined ? "" : formatBytes(r.bytesOut),
      r.waiting === undefined ? "" : printable(r.waiting),
    ]);
    const widths = header.map((h, i) => Math.max(h.length, ...rows.map((row) => (row[i] as string).length)));
    const line = (cells: string[]): string =>
      cells
        .map((c, i) => c.padEnd(widths[i] as number))
        .join("  ")
        .trimEnd();
    return [line(header), ...rows.map(line)].join("\n");
  }
}

function formatAge(ms: number): string {
  if (ms < 1000) return `${ms}ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(1)}s`;
  if (ms < 3_600_000) return `${Math.floor(ms / 60_000)}m${Math.floor((ms % 60_000) / 1000)}s`;
  return `${Math.floor(ms / 3_600_000)}h${Math.floor((ms % 3_600_000) / 60_000)}m`;
}

function formatBytes(n: number): string {
  return n < 10_000 ? String(n) : n < 10_000_000 ? `${Math.round(n / 1024)}K` : `${Math.round(n / 1048576)}M`;
}

/**
 * A table of every live process: id, name, user (a session's, when known), state, age, and for a
 * connection's process its peer and bytes in and out. The listener's own process is marked `*`.
 */
export function ps(): ProcessTable {
  const table = new ProcessTable();
  for (const p of listAllProcesses()) table.push(rowOf(p));
  return table;
}

function rowOf(p: Process): ProcessRow {
  const user = p.properties.user;
  const waiting = p.whostate;
  const base = {
    id: p.id,
    name: p.name,
    ...(typeof user === "string" ? { user } : {}),
    state: p.state,
    age: p.age,
    ...(waiting === null ? {} : { waiting }),
  };
  if (p instanceof ServerProcess) {
    // A server's row: where it listens, how many connections are open, and their traffic.
    const c = p.counters;
    return {
      ...base,
      peer: `${formatHostPort(p.address, p.port)} (${c.active} open)`,
      bytesIn: c.bytesIn,
      bytesOut: c.bytesOut,
    };
  }
  const stream = p.resources.find((r): r is SocketStream => r instanceof SocketStream);
  if (stream === undefined) return base;
  return {
    ...base,
    peer: peerOf(stream),
    bytesIn: stream.bytesRead,
    bytesOut: stream.bytesWritten,
  };
}

/**
 * Kills a live process given by id, by name, or the process itself; `true` if one was killed,
 * `false` if none is live by that id or name (or the process had already ended).
 *
 * Names need not be unique, as in LispWorks (`mp:process-run-function` takes any name, and a
 * session may name itself after another process, even the server). So a name that more than one
 * live process bears kills none of them: it throws a `ConfabError` with code
 * `ERR_AMBIGUOUS_NAME` whose message lists their ids, e.g.
 * `2 live processes are named "10243 server" (ids 1, 7): kill one by id`. Kill by id then.
 */
export function kill(which: number | string | Process): boolean {
  if (typeof which === "number") {
    const target = liveProcesses.get(which);
    return target === undefined ? false : processKill(target);
  }
  if (typeof which !== "string") return processKill(which);
  const named: Process[] = [];
  for (const p of liveProcesses.values()) if (p.name === which) named.push(p);
  if (named.length > 1) {
    throw new ConfabError(
      ErrorCodes.AMBIGUOUS_NAME,
      `${named.length} live processes are named ${quoted(which)} (ids ${named.map((p) => p.id).join(", ")}): kill one by id`,
    );
  }
  const target = named[0];
  return target === undefined ? false : processKill(target);
}

/** Text that a listener prints as is (no quotes). */
class Printed {
  readonly #text: string;
  constructor(text: string) {
    this.#text = text;
  }
  [inspect.custom](): string {
    return this.#text;
  }
  toString(): string {
    return this.#text;
  }
}

const helpText = `confab listener: TypeScript and JavaScript evaluated inside the running program.
  ps()              table of live processes (id, name, user, state, age, peer, bytes in/out,
                    what each waits for);
                    invisible characters in names are shown escaped (\\t, \\u202e)
  kill(idOrName)    kill a process (closes what it owns: its connection, its server socket);
                    names need not be unique: a name several live processes share kills
                    none and throws ERR_AMBIGUOUS_NAME with their ids, so kill by id
  mp, comm          confab's process and network namespaces (mp.listAllProcesses(), comm.startUpServer(...))
  _                 the last value
  help()            this text
Top-level await works; const/let/function/class persist between inputs; input spanning
several lines is read until complete. console.log prints here. Ctrl-C (a line holding just
ETX, U+0003) abandons an input that is still running. End of file (Ctrl-D) ends the session,
even while an input runs.`;

/** What `help()` prints in a listener. */
export function help(extraNames: readonly string[] = []): Printed {
  const extra = extraNames.length === 0 ? "" : `\n  Exposed by the program: ${extraNames.join(", ")}`;
  return new Printed(helpText + extra);
}
