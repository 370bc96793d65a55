import { readFileSync, appendFileSync, writeFileSync } from "node:fs";
import type net from "node:net";
import { homedir } from "node:os";
import { join } from "node:path";
import readline from "node:readline";
import { parseArgs } from "node:util";
import { ConfabError, ErrorCodes } from "../errors.js";
import { encodeClientFrame } from "../listener/protocol.js";
import { INTERRUPT_LINE } from "../listener/session-input.js";
import { hearServer, ListenerReader, NO_GREETING, openListenerSocket } from "../listener/listener-client.js";
import { LISTENER_FLAGS, listenerEndpoint } from "./listener-session.js";

const HISTORY_SIZE = 1000;

/** The history file: `$CONFAB_HISTORY`, or `~/.confab_history`. */
function historyFile(): string {
  return process.env.CONFAB_HISTORY ?? join(homedir(), ".confab_history");
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
 * or `$CONFAB_TOKEN`. The session is opened as every client command opens one (see
 * `listener-session.ts`).
 */
export async function connect(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    options: LISTENER_FLAGS,
    allowPositionals: true,
    strict: true,
  });
  if (positionals.length === 0 || positionals.length > 2) {
    throw new ConfabError(ErrorCodes.INVALID_ARGUMENT, "usage: confab connect [HOST] SERVICE [--name NAME]");
  }
  const endpoint = listenerEndpoint(values, positionals as [string] | [string, string]);
  const interactive = process.stdin.isTTY && process.stdout.isTTY;
  const socket = await openListenerSocket(endpoint, {
    kind: "hello",
    colors: interactive && process.stdout.hasColors(),
  });
  return interactive ? terminalSession(socket) : pipeSession(socket);
}

/** What the user is told when a server says too much before greeting. */
function refuseGreeting(): void {
  process.stderr.write(`confab: ${NO_GREETING}\n`);
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
        refuseGreeting();
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
        refuseGreeting();
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
