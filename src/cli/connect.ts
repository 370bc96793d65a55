import { readFileSync, appendFileSync, writeFileSync } from "node:fs";
import net from "node:net";
import tls from "node:tls";
import { homedir, hostname, userInfo } from "node:os";
import { join } from "node:path";
import readline from "node:readline";
import { parseArgs } from "node:util";
import { ConfabError, ErrorCodes, systemCode } from "../errors.js";
import { resolveService } from "../comm/services.js";
import { formatHostPort } from "../comm/address.js";
import { lispString } from "../comm/lisp-string.js";
import { encodeClientFrame, FRAME_MARK, parseListenerFrame, type ListenerFrame } from "../listener/protocol.js";
import { missingSocketDirectory, unixSocketPath } from "../comm/endpoint.js";
import { tokenLine } from "../comm/token-line.js";
import { INTERRUPT_LINE } from "../listener/session-input.js";
import { readPem, readToken } from "./credentials.js";

const HISTORY_SIZE = 1000;
/** Most a server may send before its listener greeting: past it, it is not a listener (or a hostile one). */
const MAX_GREETING = 64 * 1024;
/** Most program output held while waiting for the end of its line: past it, it is shown as it is. */
const MAX_PENDING_OUTPUT = 1024 * 1024;

/** The history file: `$CONFAB_HISTORY`, or `~/.confab_history`. */
function historyFile(): string {
  return process.env.CONFAB_HISTORY ?? join(homedir(), ".confab_history");
}

function defaultName(): string {
  let user = "user";
  try {
    user = userInfo().username;
  } catch {
    // no passwd entry (containers): keep the generic name
  }
  return `${user}@${hostname()}`;
}

/**
 * `confab connect [HOST] SERVICE [--name NAME]`: a client for a listener server. On a terminal
 * it offers line editing, history kept across sessions, Tab completion answered by the
 * listener, Ctrl-C to cancel the current input and Ctrl-D to end. From a pipe it sends its
 * input, prints the values (no prompts) and exits at end of input.
 *
 * SERVICE may be a Unix socket path (`unix:PATH`, or anything with a `/`). `--tls` speaks TLS
 * (`--ca FILE` for a private CA, `--cert FILE --key FILE` for a client certificate; each of
 * them implies `--tls`). A token for a server that wants one comes from `--token-file FILE`
 * or `$CONFAB_TOKEN`.
 */
export async function connect(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    options: {
      name: { type: "string" },
      host: { type: "string" },
      tls: { type: "boolean", default: false },
      ca: { type: "string" },
      cert: { type: "string" },
      key: { type: "string" },
      "token-file": { type: "string" },
    },
    allowPositionals: true,
    strict: true,
  });
  if (positionals.length === 0 || positionals.length > 2) {
    throw new ConfabError(ErrorCodes.INVALID_ARGUMENT, "usage: confab connect [HOST] SERVICE [--name NAME]");
  }
  if ((values.cert === undefined) !== (values.key === undefined)) {
    throw new ConfabError(
      ErrorCodes.INVALID_ARGUMENT,
      "--cert and --key go together: a client certificate and its private key",
    );
  }
  const service = positionals[positionals.length - 1] as string;
  const host = positionals.length === 2 ? (positionals[0] as string) : (values.host ?? "127.0.0.1");
  const path = unixSocketPath(service);
  const target: ConnectTarget = path === undefined ? { host, port: resolveService(service) } : { host, path };
  const secure = values.tls || values.ca !== undefined || values.cert !== undefined;
  const tlsOptions: tls.ConnectionOptions | undefined = secure
    ? {
        ...(values.ca === undefined ? {} : { ca: readPem(values.ca, "--ca") }),
        ...(values.cert === undefined ? {} : { cert: readPem(values.cert, "--cert") }),
        ...(values.key === undefined ? {} : { key: readPem(values.key, "--key") }),
      }
    : undefined;
  const token = readToken(values["token-file"]);
  const socket = await open(target, tlsOptions);
  const interactive = process.stdin.isTTY && process.stdout.isTTY;
  const authentication = token === undefined ? "" : `${tokenLine(token)}\n`;
  socket.write(
    `${authentication}${lispString(values.name ?? defaultName())}\n${encodeClientFrame({ kind: "hello", colors: interactive && process.stdout.hasColors() })}`,
  );
  return interactive ? terminalSession(socket) : pipeSession(socket);
}

/** A TCP host and port, or a Unix socket's path (`host` then names the server for TLS). */
type ConnectTarget =
  { readonly host: string; readonly port: number } | { readonly host: string; readonly path: string };

function open(target: ConnectTarget, secure: tls.ConnectionOptions | undefined): Promise<net.Socket> {
  const where = "path" in target ? target.path : formatHostPort(target.host, target.port);
  const address = "path" in target ? { path: target.path } : { host: target.host, port: target.port };
  return new Promise((resolve, reject) => {
    // Not half-open: when the listener ends the session (end of its input, or its process
    // killed), our side ends too, so the session ends without waiting for more input.
    const socket =
      secure === undefined ? net.connect(address) : tls.connect({ ...secure, ...address, host: target.host });
    socket.once("error", (error: NodeJS.ErrnoException) => {
      const what = secure !== undefined && error.code !== "ECONNREFUSED" && error.code !== "ENOENT" ? "TLS: " : "";
      const directory = "path" in target && error.code === "ENOENT" ? missingSocketDirectory(target.path) : undefined;
      const why =
        directory === undefined ? `${what}${error.message}` : `the directory ${directory} does not exist (ENOENT)`;
      reject(new ConfabError(systemCode(error, ErrorCodes.CONNECT), `cannot connect to ${where}: ${why}`));
    });
    socket.once(secure === undefined ? "connect" : "secureConnect", () => {
      socket.removeAllListeners("error");
      resolve(socket);
    });
  });
}

/**
 * Splits what the listener sends into program output and frames. Text before the listener's
 * hello frame is the plain-mode greeting and is dropped, unless the connection ends without
 * a hello: then it is the server's refusal, and is shown. What is held is bounded: a greeting
 * past {@link MAX_GREETING} is refused ({@link push} returns `false`), and output without a
 * newline past {@link MAX_PENDING_OUTPUT} is shown as it is.
 */
class ListenerReader {
  #pending = "";
  #framed = false;
  readonly #onOutput: (text: string) => void;
  readonly #onFrame: (frame: ListenerFrame) => void;

  constructor(onOutput: (text: string) => void, onFrame: (frame: ListenerFrame) => void) {
    this.#onOutput = onOutput;
    this.#onFrame = onFrame;
  }

  /** Takes what arrived; `false` when the server has sent too much without greeting. */
  push(text: string): boolean {
    this.#pending += text;
    if (!this.#framed) {
      const hello = this.#pending.indexOf(`${FRAME_MARK}hello `);
      if (hello === -1) return this.#pending.length <= MAX_GREETING;
      this.#framed = true;
      this.#pending = this.#pending.slice(hello);
    }
    let nl;
    while ((nl = this.#pending.indexOf("\n")) !== -1) {
      const line = this.#pending.slice(0, nl);
      this.#pending = this.#pending.slice(nl + 1);
      const frame = line.startsWith(FRAME_MARK) ? parseListenerFrame(line) : undefined;
      if (frame !== undefined) this.#onFrame(frame);
      else this.#onOutput(`${line}\n`);
    }
    if (this.#pending.length > MAX_PENDING_OUTPUT) {
      // Output is shown as it is; a "frame" that long is none, and is dropped.
      if (!this.#pending.startsWith(FRAME_MARK)) this.#onOutput(this.#pending);
      this.#pending = "";
    }
    return true;
  }

  /** At end of connection: what is left (the refusal, if the listener never said hello). */
  end(): { framed: boolean; rest: string } {
    const rest = this.#pending;
    this.#pending = "";
    return { framed: this.#framed, rest };
  }
}

/** What the user is told when a server says too much before greeting. */
function refuseGreeting(socket: net.Socket): void {
  process.stderr.write(
    `confab: the server sent over ${MAX_GREETING} bytes without a listener's greeting; is it a confab listener?\n`,
  );
  socket.destroy();
}

/**
 * Feeds what the server sends to `reader` and calls `closed` when the connection is gone,
 * `refused` if it was cut off for never sending a listener's greeting (see refuseGreeting).
 */
function hearServer(socket: net.Socket, reader: ListenerReader, closed: (refused: boolean) => void): void {
  let refused = false;
  socket.setEncoding("utf8");
  socket.on("data", (text: string) => {
    if (reader.push(text)) return;
    refused = true;
    refuseGreeting(socket);
  });
  socket.on("error", () => undefined);
  socket.on("close", () => {
    closed(refused);
  });
}

/**
 * From a pipe: sends the input's lines and prints what comes back. The connection is ended only
 * once every line has been answered (each line the listener reads gets a prompt or a "more"
 * frame), since a listener ends a session, dropping what is still running, at end of file.
 */
function pipeSession(socket: net.Socket): Promise<number> {
  return new Promise((resolve) => {
    // The hello line sent on connecting is answered by the first prompt frame.
    let sent = 1;
    let answered = 0;
    let inputEnded = false;
    const endWhenAnswered = (): void => {
      if (inputEnded && answered >= sent) socket.end();
    };
    const reader = new ListenerReader(
      (text) => process.stdout.write(text),
      (frame) => {
        if (frame.kind !== "prompt" && frame.kind !== "more") return;
        answered++;
        endWhenAnswered();
      },
    );
    hearServer(socket, reader, (refused) => {
      // The session is over: stop reading input that can no longer be sent, so the process can exit.
      process.stdin.destroy();
      const { framed, rest } = reader.end();
      if (refused) {
        resolve(2);
        return;
      }
      if (!framed) {
        process.stderr.write(
          rest.endsWith("\n") || rest === "" ? rest || "confab: the server closed the connection\n" : `${rest}\n`,
        );
        resolve(1);
        return;
      }
      if (rest !== "") process.stdout.write(rest);
      resolve(0);
    });
    let partial = "";
    const send = (lines: string): void => {
      for (let at = lines.indexOf("\n"); at !== -1; at = lines.indexOf("\n", at + 1)) sent++;
      if (!socket.write(lines)) {
        process.stdin.pause();
        socket.once("drain", () => process.stdin.resume());
      }
    };
    process.stdin.setEncoding("utf8");
    process.stdin.on("data", (chunk: string) => {
      const text = partial + chunk;
      const last = text.lastIndexOf("\n");
      partial = text.slice(last + 1);
      if (last !== -1) send(text.slice(0, last + 1));
    });
    process.stdin.on("end", () => {
      if (partial !== "") send(`${partial}\n`);
      partial = "";
      inputEnded = true;
      endWhenAnswered();
    });
  });
}

function loadHistory(): string[] {
  try {
    return readFileSync(historyFile(), "utf8")
      .split("\n")
      .filter((l) => l !== "")
      .reverse()
      .slice(0, HISTORY_SIZE);
  } catch {
    return [];
  }
}

function saveHistoryLine(line: string, all: readonly string[]): void {
  try {
    if (all.length >= HISTORY_SIZE) writeFileSync(historyFile(), [...all].reverse().join("\n") + "\n", { mode: 0o600 });
    else appendFileSync(historyFile(), `${line}\n`, { mode: 0o600 });
  } catch {
    // history is a convenience: an unwritable file must not end the session
  }
}

function terminalSession(socket: net.Socket): Promise<number> {
  return new Promise((resolve) => {
    let completing: ((error: Error | null, result: [string[], string]) => void) | undefined;
    let idle = false;
    // Once closed (Ctrl-D, or the session ended), readline must not be prompted again: a
    // prompt resumes the terminal's input, and the client would not exit.
    let closed = false;
    const rl = readline.createInterface({
      input: process.stdin,
      output: process.stdout,
      terminal: true,
      history: loadHistory(),
      historySize: HISTORY_SIZE,
      removeHistoryDuplicates: true,
      completer: (line: string, callback: (error: Error | null, result: [string[], string]) => void) => {
        completing = callback;
        socket.write(encodeClientFrame({ kind: "complete", line }));
      },
    });
    rl.setPrompt("");
    rl.on("history", (history: string[]) => {
      const latest = history[0];
      if (latest !== undefined) saveHistoryLine(latest, history);
    });

    const reader = new ListenerReader(
      (text) => {
        if (idle && !closed) {
          // Output that arrives while the user is typing goes above the input line.
          readline.clearLine(process.stdout, 0);
          readline.cursorTo(process.stdout, 0);
          process.stdout.write(text);
          rl.prompt(true);
        } else {
          process.stdout.write(text);
        }
      },
      (frame) => {
        if (closed) return;
        if (frame.kind === "prompt" || frame.kind === "more") {
          rl.setPrompt(frame.kind === "prompt" ? frame.prompt : "... ");
          idle = true;
          rl.prompt(true);
        } else if (frame.kind === "completions") {
          const done = completing;
          completing = undefined;
          done?.(null, [[...frame.completions], frame.prefix]);
        }
      },
    );

    rl.on("line", (line) => {
      idle = false;
      socket.write(`${line}\n`);
    });
    rl.on("SIGINT", () => {
      // Ctrl-C never exits. While an input runs, it abandons it (the listener answers with a
      // prompt); else it drops the line being typed and any unfinished multi-line input.
      // Ctrl-E first: Ctrl-U deletes only what is left of the cursor.
      rl.write(null, { ctrl: true, name: "e" });
      rl.write(null, { ctrl: true, name: "u" });
      process.stdout.write("^C\n");
      socket.write(idle ? encodeClientFrame({ kind: "cancel" }) : `${INTERRUPT_LINE}\n`);
    });
    rl.on("close", () => {
      closed = true;
      socket.end();
    });

    hearServer(socket, reader, (refused) => {
      const { framed, rest } = reader.end();
      if (refused) {
        rl.close();
        resolve(2);
        return;
      }
      if (!framed)
        process.stderr.write(
          rest === "" ? "confab: the server closed the connection\n" : rest.endsWith("\n") ? rest : `${rest}\n`,
        );
      else if (rest !== "") process.stdout.write(rest);
      process.stdout.write("\n");
      rl.close();
      resolve(framed ? 0 : 1);
    });
  });
}
