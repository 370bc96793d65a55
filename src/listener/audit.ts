/**
 * The listener server's audit: who connected, every input before it runs and how it ended, and
 * every connection refused, one JSON object per line (JSON Lines), so that a REPL into a
 * production program leaves a record that `jq`, a log shipper or a person can read.
 *
 * Records are written as they happen. To a file, each is handed to the OS (`write(2)` on a
 * descriptor opened for appending) before the listener goes on, so an input that hangs or takes
 * the program down is on record before it runs. A file is created readable and writable by its
 * owner only (0600) and appended to, never truncated. A write that fails is reported (once a
 * minute at most) and does not stop the server. No token, key or certificate is ever written:
 * the token line never reaches a session, and no record has a field for one.
 *
 * @example
 * ```ts
 * await startUpServer({ service: 0, token, audit: "/var/log/app/confab-audit.jsonl" });
 * // {"time":"2026-12-02T14:40:00.123Z","event":"input","session":"ops","id":7,"user":"alice","input":1,"text":"db.users.count()"}
 * ```
 * @module
 */
import { closeSync, openSync, writeSync } from "node:fs";
import { ConfabError, ErrorCodes } from "../errors.js";
import { ReportLimiter, reportError } from "../report.js";

/** Where the audit goes: a file path (created 0600, appended to), a writable stream, or a function called with each record. */
export type AuditOption = string | NodeJS.WritableStream | ((record: AuditRecord) => void);

/** How an input ended: its value, an error it threw, the time limit, the client's interrupt, or the end of its connection while it ran. */
export type InputOutcome = "value" | "error" | "timeout" | "interrupted" | "abandoned";

/** What every record about a session carries: which session, and whose. */
interface SessionFields {
  /** When, as an ISO 8601 UTC time. */
  readonly time: string;
  /** The session's process name (from its name line). */
  readonly session: string;
  /** The session's process id. */
  readonly id: number;
  /** The session's user, when known (a user's token, or a TLS client certificate's common name). */
  readonly user?: string;
}

/** One line of the audit. */
export type AuditRecord =
  | (SessionFields & {
      readonly event: "session-start";
      /** The listener server's process name. */
      readonly server: string;
      /** The client's `host:port`, or `?`. */
      readonly peer: string;
    })
  | (SessionFields & {
      /** An input about to run: written before it runs. */
      readonly event: "input";
      /** Its number in the session (the prompt's `CL-USER n`). */
      readonly input: number;
      /** What was typed, every line of it. */
      readonly text: string;
    })
  | (SessionFields & {
      /** How an input ended. */
      readonly event: "outcome";
      readonly input: number;
      readonly outcome: InputOutcome;
      /** Milliseconds from its start to its end (to the interrupt, or the connection's end, for those). */
      readonly ms: number;
      /** For an error or a timeout: its first line (`TypeError: x is not a function`). */
      readonly error?: string;
    })
  | (SessionFields & {
      readonly event: "session-end";
      /** How the session ended: `end of file`, `killed`, `line too long`, ... */
      readonly how: string;
      /** Inputs evaluated in the session. */
      readonly inputs: number;
    })
  | {
      /** A connection that never became a session, and why (`wrong token`, `no name line within 10000 ms`, ...). */
      readonly event: "refused";
      readonly time: string;
      /** The listener server's process name. */
      readonly server: string;
      readonly peer: string;
      readonly reason: string;
    };

/** A record as the listener makes it: the audit stamps the time. */
export type AuditEntry = AuditRecord extends infer R ? (R extends AuditRecord ? Omit<R, "time"> : never) : never;

/** An audit's sink, opened: see {@link AuditOption}. */
export class AuditLog {
  readonly #write: (line: string, record: AuditRecord) => void;
  readonly #close: () => void;
  readonly #where: string;
  readonly #reports = new ReportLimiter(1, 60_000);

  /**
   * Opens the sink. A file that cannot be opened throws a `ConfabError` (`ERR_AUDIT`) naming it:
   * a server asked to keep an audit does not start without one.
   */
  constructor(option: AuditOption) {
    if (typeof option === "string") {
      let fd: number;
      try {
        // "a": O_APPEND | O_CREAT, never truncated; the mode applies to a file this creates.
        fd = openSync(option, "a", 0o600);
      } catch (error) {
        throw new ConfabError(ErrorCodes.AUDIT, `cannot open the audit file ${option}: ${(error as Error).message}`, {
          cause: error,
        });
      }
      this.#where = `the audit file ${option}`;
      this.#write = (line) => {
        writeSync(fd, line);
      };
      this.#close = () => {
        closeSync(fd);
      };
    } else if (typeof option === "function") {
      this.#where = "the audit function";
      this.#write = (_line, record) => {
        option(record);
      };
      this.#close = () => undefined;
    } else {
      this.#where = "the audit stream";
      this.#write = (line) => {
        option.write(line);
      };
      this.#close = () => undefined;
    }
  }

  /** Writes one record, stamped with the time now. A failure is reported, never thrown. */
  record(entry: AuditEntry): void {
    const record = { time: new Date().toISOString(), ...entry } as AuditRecord;
    try {
      this.#write(`${JSON.stringify(record)}\n`, record);
    } catch (error) {
      if (this.#reports.allow() !== false) reportError(`${this.#where}: a record was lost`, error);
    }
  }

  /** Closes a file the audit opened (a stream or a function is the caller's). */
  close(): void {
    try {
      this.#close();
    } catch {
      // Already closed.
    }
  }
}
