/**
 * What the monitor shows: the program's servers, processes and connections at one instant, as
 * plain JSON-ready data. The page, the JSON endpoint and the event stream all send this one
 * shape, so a script can read `/api/snapshot` and see exactly what a person sees.
 *
 * Names, addresses and peers are shown text: their control, bidi and zero-width characters (a
 * listener's name comes from its client) are escaped as `ps()` and the text log escape them
 * (`evil\tname\u202e`, see `comm/printable.ts`), so a hostile name can neither hide a row nor
 * reorder what the page shows. A session's `user` (a listener session's login name, from its
process's `properties.user`) is escaped the same way. To act on a process, use its `id`.
 *
 * @module
 */
import { ServerProcess, type ServerCounters } from "../comm/server-base.js";
import { printable } from "../comm/printable.js";
import { formatHostPort, peerOf } from "../comm/address.js";
import { SocketStream } from "../comm/socket-stream.js";
import type { Process, ProcessState } from "../mp/process.js";
import { listAllProcesses } from "../mp/registry.js";

/** What a process is, as far as the monitor can tell. */
export type MonitorProcessKind = "server" | "monitor" | "connection" | "process";

/** One live server. */
export interface MonitorServerRow {
  /** The server's process id (the same id as its row in `processes`). */
  readonly id: number;
  /** The server's process name, shown escaped. */
  readonly name: string;
  /** Where it listens, `host:port` (IPv6 in brackets), or the socket path. */
  readonly listening: string;
  /** The server's counters at this instant. */
  readonly counters: ServerCounters;
}

/** One live process. */
export interface MonitorProcessRow {
  /** The process's id. */
  readonly id: number;
  /** The process's name, shown escaped (see the module's note). */
  readonly name: string;
  /**
   * Who the process works for, shown escaped: a listener session's user, from the string
   * `properties.user` of its process; `null` when the process carries none.
   */
  readonly user: string | null;
  /** What the process waits for (its `whostate`: a read's peer, a `processWait` reason), shown escaped; `null` when not waiting. */
  readonly waiting: string | null;
  /** The process's state. */
  readonly state: ProcessState;
  /** What the process is: a server, the monitor, a connection's process, or another process. */
  readonly kind: MonitorProcessKind;
  /** Milliseconds since it started. */
  readonly age: number;
  /** The id of the process (or server) that started it, if any. */
  readonly parent: number | null;
  /** The parent's name, so a row reads on its own. */
  readonly parentName: string | null;
  /** For a connection's process, its peer `host:port`; for a server, where it listens. */
  readonly peer: string | null;
  /** Bytes received: the connection's, or the server's total. */
  readonly bytesIn: number | null;
  /** Bytes sent: the connection's, or the server's total. */
  readonly bytesOut: number | null;
}

/** One open connection: a process that owns a socket stream. */
export interface MonitorConnectionRow {
  /** The id of the process that owns the stream. */
  readonly process: number;
  /** That process's name, shown escaped. */
  readonly processName: string;
  /** The server that accepted it, when its process was started by a server's `function`. */
  readonly server: string | null;
  /** The connection's local end. */
  readonly local: string;
  /** The connection's peer. */
  readonly peer: string;
  /** Bytes received on the connection so far. */
  readonly bytesIn: number;
  /** Bytes sent on the connection so far. */
  readonly bytesOut: number;
  /** Milliseconds since its process started. */
  readonly age: number;
}

/** One point of the sparklines. */
export interface MonitorSample {
  /** Milliseconds since the epoch. */
  readonly time: number;
  /** Connections open: servers' active connections plus connection processes no server started. */
  readonly connections: number;
  /** Bytes per second in and out, over the time since the previous sample. */
  readonly bytesPerSecond: number;
}

/** Everything the monitor sends at one instant. */
export interface MonitorSnapshot {
  /** Milliseconds since the epoch. */
  readonly time: number;
  /** The id of the monitor's own process, so the page can mark it. */
  readonly monitor: number | null;
  /** Every live server. */
  readonly servers: readonly MonitorServerRow[];
  /** Live processes, oldest first, up to the row limit. */
  readonly processes: readonly MonitorProcessRow[];
  /** The connections of the processes listed in `processes`. */
  readonly connections: readonly MonitorConnectionRow[];
  /** Live processes left out of `processes` (and their connections) because of the row limit. */
  readonly omitted: number;
  /** The recent samples, oldest first. */
  readonly history: readonly MonitorSample[];
}

/** How many processes one snapshot lists at most: a program with many thousands stays cheap to watch. */
export const DEFAULT_MAX_ROWS = 500;

/** The stream a process owns, if it is a connection's process (as the listener's `ps()` finds it). */
export function connectionOf(p: Process): SocketStream | undefined {
  return p.resources.find((r): r is SocketStream => r instanceof SocketStream);
}

function streamPeer(stream: SocketStream): string {
  return printable(peerOf(stream));
}

function streamLocal(stream: SocketStream): string {
  return stream.localAddress === undefined
    ? "?"
    : printable(formatHostPort(stream.localAddress, stream.localPort ?? "?"));
}

/** What a process waits for, shown escaped, or `null`. */
function waitingOf(p: Process): string | null {
  const waiting = p.whostate;
  return waiting === null ? null : printable(waiting);
}

/** A process's user, shown escaped, or `null` when its `properties.user` is not a string. */
export function userOf(p: Process): string | null {
  const user = p.properties.user;
  return typeof user === "string" ? printable(user) : null;
}

/** Where a server listens, for people (escaped as {@link printable} does). */
export function listeningOn(server: ServerProcess): string {
  return printable(server.family === "unix" ? server.address : formatHostPort(server.address, server.port));
}

/**
 * Reads the live processes into a snapshot. `isMonitor` tells the monitor's own process (and
 * other monitors) apart; `maxRows` bounds the size of what is sent.
 */
export function takeSnapshot(options: {
  readonly monitor?: Process | undefined;
  readonly isMonitor?: (p: Process) => boolean;
  readonly maxRows?: number;
  readonly history?: readonly MonitorSample[];
}): MonitorSnapshot {
  const maxRows = options.maxRows ?? DEFAULT_MAX_ROWS;
  const isMonitor = options.isMonitor ?? ((p: Process) => p === options.monitor);
  const live = listAllProcesses();
  const servers: MonitorServerRow[] = [];
  const processes: MonitorProcessRow[] = [];
  const connections: MonitorConnectionRow[] = [];
  for (const p of live) {
    // Servers are listed whatever the row limit: there are few, and they carry the totals.
    if (p instanceof ServerProcess)
      servers.push({ id: p.id, name: printable(p.name), listening: listeningOn(p), counters: p.counters });
  }
  for (const p of live.length > maxRows ? live.slice(0, maxRows) : live) {
    const parent = p.parent;
    const base = {
      id: p.id,
      name: printable(p.name),
      user: userOf(p),
      waiting: waitingOf(p),
      state: p.state,
      age: p.age,
      parent: parent?.id ?? null,
      parentName: parent === undefined ? null : printable(parent.name),
    };
    if (p instanceof ServerProcess) {
      const c = p.counters;
      processes.push({ ...base, kind: "server", peer: listeningOn(p), bytesIn: c.bytesIn, bytesOut: c.bytesOut });
      continue;
    }
    if (isMonitor(p)) {
      processes.push({ ...base, kind: "monitor", peer: null, bytesIn: null, bytesOut: null });
      continue;
    }
    const stream = connectionOf(p);
    if (stream === undefined) {
      processes.push({ ...base, kind: "process", peer: null, bytesIn: null, bytesOut: null });
      continue;
    }
    const peer = streamPeer(stream);
    const bytesIn = stream.bytesRead;
    const bytesOut = stream.bytesWritten;
    processes.push({ ...base, kind: "connection", peer, bytesIn, bytesOut });
    connections.push({
      process: p.id,
      processName: base.name,
      server: parent instanceof ServerProcess ? printable(parent.name) : null,
      local: streamLocal(stream),
      peer,
      bytesIn,
      bytesOut,
      age: p.age,
    });
  }
  return {
    time: Date.now(),
    monitor: options.monitor?.id ?? null,
    servers,
    processes,
    connections,
    omitted: Math.max(0, live.length - maxRows),
    history: options.history ?? [],
  };
}
