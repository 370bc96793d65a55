/**
 * What a server tells its logger: one event per line of a server's life (started, a connection
 * accepted or refused, a connection's process ended, an error, stopped). confab forces no
 * logging library on you: pass a function and route the events wherever your program logs.
 *
 * @example
 * ```ts
 * await startUpServer({ function: handle, service: 0, logger: (e) => pino.info(e) });
 * await startUpServer({ service: 10243, announce: true, logger: "json" }); // JSON lines on stdout
 * ```
 * @module
 */
import { formatHostPort } from "./address.js";
import { printable, printableJson, quoted } from "./printable.js";

/** One thing that happened to a server, with the server's process name. */
export type ServerEvent =
  | {
      /** The server is listening. */
      readonly event: "started";
      /** The server's process name. */
      readonly server: string;
      /** The bound local address, or a Unix socket server's path. */
      readonly address: string;
      /** The bound port (0 for a Unix socket server). */
      readonly port: number;
    }
  | {
      /** The server was killed: its listening socket is closed. */
      readonly event: "stopped";
      /** The server's process name. */
      readonly server: string;
      /** Connections accepted over the server's life (refused ones included). */
      readonly accepted: number;
      /** Connections refused over the server's life (`maxConnections`). */
      readonly refused: number;
    }
  | {
      /** A connection was accepted and will reach the server's `function`. */
      readonly event: "accepted";
      /** The server's process name. */
      readonly server: string;
      /** The client's `host:port` (IPv6 in brackets), or `?` when the OS no longer knows it. */
      readonly peer: string;
    }
  | {
      /** A connection was accepted and closed at once with a one-line message. */
      readonly event: "refused";
      /** The server's process name. */
      readonly server: string;
      /** The client's `host:port` (IPv6 in brackets), or `?`. */
      readonly peer: string;
      /** Why, such as `maxConnections 100`. */
      readonly reason: string;
    }
  | {
      /** A connection was served, then ended by the server to keep within a limit (`maxBufferedInput`), with a one-line message. */
      readonly event: "dropped";
      /** The server's process name. */
      readonly server: string;
      /** The client's `host:port` (IPv6 in brackets), or `?`. */
      readonly peer: string;
      /** Why, such as `maxBufferedInput 67108864: held 1048000 of the 67109000 bytes of unread input, the most of any connection`. */
      readonly reason: string;
    }
  | {
      /** A process started by the server's `function` ended. */
      readonly event: "process-ended";
      /** The server's process name. */
      readonly server: string;
      /** The ended process's name. */
      readonly process: string;
      /** The ended process's id. */
      readonly id: number;
      /** How it ended. */
      readonly state: "finished" | "killed" | "failed";
      /** For a failed process: its error, as `Name: message`. */
      readonly reason?: string;
    }
  | {
      /** A listener session started (the listener server's): its client authenticated and named it. */
      readonly event: "session-started";
      /** The server's process name. */
      readonly server: string;
      /** The session's process name. */
      readonly session: string;
      /** The session's process id. */
      readonly id: number;
      /** The session's user, when known. */
      readonly user?: string;
      /** The client's `host:port`, or `?`. */
      readonly peer: string;
    }
  | {
      /** A listener session ended. */
      readonly event: "session-ended";
      /** The server's process name. */
      readonly server: string;
      /** The session's process name. */
      readonly session: string;
      /** The session's process id. */
      readonly id: number;
      /** The session's user, when known. */
      readonly user?: string;
      /** How it ended: `end of file`, `killed`, ... */
      readonly how: string;
      /** Inputs it evaluated. */
      readonly inputs: number;
    }
  | {
      /** The server's `function` threw or rejected, or accepting a connection failed. */
      readonly event: "error";
      /** The server's process name. */
      readonly server: string;
      /** What went wrong. */
      readonly message: string;
    };

/** Receives a server's events. It must not throw (what it throws is reported and dropped). */
export type Logger = (event: ServerEvent) => void;

/**
 * A server's `logger` option: a {@link Logger}, `"text"` for human-readable lines, `"json"` for
 * JSON lines, or `false` for none. Text and JSON go to the `announce` stream (standard output
 * when `announce` is `true` or a function). The default is `"text"` when `announce` is a stream
 * or `true`, and no logging otherwise.
 */
export type LoggerOption = Logger | "text" | "json" | false;

// Every text in an event may come from outside (a session's name, a PROXY header's address, an
// error's message): the text logger shows it escaped (see printable.ts), on one line.
function describe(e: ServerEvent): string {
  switch (e.event) {
    case "started":
      return `listening on ${printable(formatHostPort(e.address, e.port))}`;
    case "stopped":
      return `stopped after ${e.accepted} connections (${e.refused} refused)`;
    case "accepted":
      return `accepted ${printable(e.peer)}`;
    case "refused":
      return `refused ${printable(e.peer)}: ${printable(e.reason)}`;
    case "dropped":
      return `dropped ${printable(e.peer)}: ${printable(e.reason)}`;
    case "process-ended":
      return `process ${e.id} ${quoted(e.process)} ${e.state}${e.reason === undefined ? "" : `: ${printable(e.reason)}`}`;
    case "session-started":
      return `session ${e.id} ${quoted(e.session)}${e.user === undefined ? "" : ` of ${quoted(e.user)}`} started from ${printable(e.peer)}`;
    case "session-ended":
      return `session ${e.id} ${quoted(e.session)}${e.user === undefined ? "" : ` of ${quoted(e.user)}`} ended (${printable(e.how)}) after ${e.inputs} inputs`;
    case "error":
      return `error: ${printable(e.message)}`;
  }
}

// The current second as toISOString() writes it, up to its fraction ("2026-11-29T10:00:00."):
// formatting a Date costs a microsecond (V8 prints it with snprintf), and a busy server logs
// two events per connection, so the text is made once a second and the milliseconds appended.
let loggedSecond = NaN;
let loggedSecondText = "";

/** `new Date().toISOString()`, made from the text of the current second. */
function logTime(): string {
  const now = Date.now();
  const ms = now % 1000;
  const second = now - ms;
  if (second !== loggedSecond) {
    const iso = new Date(now).toISOString();
    // Only a four-digit year after 1970 has the fixed layout the text is cut from.
    if (ms < 0 || iso.length !== 24) return iso;
    loggedSecond = second;
    loggedSecondText = iso.slice(0, 20);
    return iso;
  }
  return `${loggedSecondText}${ms < 10 ? "00" : ms < 100 ? "0" : ""}${ms}Z`;
}

/**
 * Human-readable lines: `2026-11-29T10:00:00.000Z 10243 server: accepted 127.0.0.1:51234`.
 * Names, addresses and messages are shown with control, bidi and zero-width characters
 * escaped (`process 7 "evil\tname\u202e" killed`), so one event is one line and a hostile
 * name cannot hide or reorder what is logged.
 */
export function textLogger(out: NodeJS.WritableStream): Logger {
  return (e) => {
    out.write(`${logTime()} ${printable(e.server)}: ${describe(e)}\n`);
  };
}

/**
 * One JSON object per line, with a `time` field first. The values are the real ones; the
 * characters JSON would leave raw and a terminal would act on (C1 controls, bidi and zero-width
 * characters, U+2028/U+2029) are written as `\uXXXX` escapes, which parse back to them.
 */
export function jsonLogger(out: NodeJS.WritableStream): Logger {
  return (e) => {
    out.write(`${printableJson({ time: logTime(), ...e })}\n`);
  };
}

/** @internal The logger a server uses, from its `logger` and `announce` options. */
export function serverLogger(option: LoggerOption | undefined, announce: unknown): Logger | undefined {
  if (typeof option === "function") return option;
  if (option === false) return undefined;
  const stream = isWritable(announce)
    ? announce
    : announce === true || option !== undefined
      ? process.stdout
      : undefined;
  if (stream === undefined) return undefined;
  return option === "json" ? jsonLogger(stream) : textLogger(stream);
}

function isWritable(value: unknown): value is NodeJS.WritableStream {
  return typeof value === "object" && value !== null && typeof (value as { write?: unknown }).write === "function";
}
