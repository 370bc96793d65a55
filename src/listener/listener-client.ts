/**
 * A client of the listener server: the one home of what a program does before a session's first
 * input, and of the structured mode's client side. The connection (TCP or a Unix socket, TLS,
 * bounded by a connect timeout: {@link openListenerSocket}), the opening lines (token, name,
 * hello frame), reading the listener's greeting ({@link ListenerReader}), and, for programs,
 * {@link openStructuredSession}: a session in the structured mode
 * (`docs/guides/structured-mode.md`) behind a small API, whose `evaluate(code)` resolves to the
 * input's printed value or error, its console output and how long it took. `confab connect`,
 * `confab eval` and `confab mcp` are built on it; the package exports `openStructuredSession`.
 *
 * @example
 * ```ts
 * import { openStructuredSession } from "confab";
 *
 * const session = await openStructuredSession({ target: { host: "127.0.0.1", port: 10243 }, name: "build-bot" });
 * const result = await session.evaluate("app.users.length");
 * // { input: 1, value: "3", threw: false, status: "value", output: "", ms: 0 }
 * await session.close();
 * ```
 * @module
 */
import net from "node:net";
import tls from "node:tls";
import { ConfabError, ErrorCodes, systemCode } from "../errors.js";
import { formatHostPort } from "../comm/address.js";
import { lispString } from "../comm/lisp-string.js";
import { missingSocketDirectory } from "../comm/endpoint.js";
import { tokenLine } from "../comm/token-line.js";
import { encodeClientFrame, FRAME_MARK, parseListenerFrame, type ClientFrame, type ListenerFrame } from "./protocol.js";
import { encodeStructuredRequest, parseStructuredReply, type InputId, type RetStatus } from "./structured-protocol.js";
import { INTERRUPT_LINE } from "./session-input.js";

/** Most a server may send before its listener greeting: past it, it is not a listener (or a hostile one). */
const MAX_GREETING = 64 * 1024;
/** Most program output held while waiting for the end of its line: past it, it is shown as it is. */
const MAX_PENDING_OUTPUT = 1024 * 1024;
/** Longest answer line a structured session takes (a value printed at great length): past it, the session fails. */
const MAX_STRUCTURED_LINE = 64 * 1024 * 1024;
/** Default {@link ListenerEndpoint.connectTimeout}, in ms. */
export const DEFAULT_CONNECT_TIMEOUT_MS = 5000;

/** The endpoint's connect timeout, or the default. */
function timeoutOf(endpoint: ListenerEndpoint): number {
  return endpoint.connectTimeout ?? DEFAULT_CONNECT_TIMEOUT_MS;
}

/** A TCP host and port, or a Unix socket's path (`host` then names the server for TLS). */
export type ConnectTarget =
  | {
      /** The server's host name or address. */
      readonly host: string;
      /** Its TCP port. */
      readonly port: number;
    }
  | {
      /** The name the server's TLS certificate is checked against. */
      readonly host: string;
      /** The Unix socket's path. */
      readonly path: string;
    };

/** Where a listener server is, how to speak to it, and who is asking. */
export interface ListenerEndpoint {
  /** The server: a host (name or address) and port, or a Unix socket's path. */
  readonly target: ConnectTarget;
  /** TLS options (a CA, a client certificate) when the server speaks TLS; left out for plain TCP. */
  readonly tls?: tls.ConnectionOptions | undefined;
  /** The token the server wants (sent as the first line), if any. Never put in a message. */
  readonly token?: string | undefined;
  /** The session's name: its process's name on the server, what `ps()` and the audit show. */
  readonly name: string;
  /** Most ms from connecting until the session is had (connection, TLS, the listener's greeting); default 5000. */
  readonly connectTimeout?: number | undefined;
}

/** Where an endpoint (or one address of its host) is, for messages: `host:port`, or the socket's path. */
export function describeTarget(target: ConnectTarget, address?: string): string {
  return "path" in target ? target.path : formatHostPort(address ?? target.host, target.port);
}

/** How `openListenerSocket` and {@link openStructuredSession} connect. */
export interface ListenerConnectOptions {
  /**
   * Connect to this address rather than the endpoint's host (one address of a name that has
   * several: `confab eval --each-address`); the host still names the server for TLS.
   */
  readonly address?: string;
}

/**
 * Connects to the listener server and sends the opening lines: the token line if there is a
 * token, the name line, then `hello`. Resolves once connected (TLS: once the handshake is done),
 * with the socket not half-open (the listener's end of the session ends ours). Rejects with a
 * `ConfabError`: the system's code (`ECONNREFUSED`, `ENOENT`, a TLS one) or `ERR_CONNECT`, or
 * `ERR_CONNECT_TIMEOUT` when nothing happened within the endpoint's connect timeout.
 */
export function openListenerSocket(
  endpoint: ListenerEndpoint,
  hello: ClientFrame,
  options: ListenerConnectOptions = {},
): Promise<net.Socket> {
  const { target, tls: secure } = endpoint;
  const where = describeTarget(target, options.address);
  const address =
    "path" in target ? { path: target.path } : { host: options.address ?? target.host, port: target.port };
  return new Promise((resolve, reject) => {
    const socket =
      secure === undefined
        ? net.connect(address)
        : tls.connect({
            ...secure,
            ...address,
            // The certificate names the host, whichever of its addresses is reached.
            ...(net.isIP(target.host) === 0 ? { servername: target.host } : {}),
            host: "path" in address ? target.host : address.host,
          });
    const timer = setTimeout(() => {
      socket.destroy();
      reject(
        new ConfabError(
          ErrorCodes.CONNECT_TIMEOUT,
          `cannot connect to ${where}: no connection within ${timeoutOf(endpoint)} ms (the connect timeout)`,
        ),
      );
    }, timeoutOf(endpoint));
    socket.once("error", (error: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      const what = secure !== undefined && error.code !== "ECONNREFUSED" && error.code !== "ENOENT" ? "TLS: " : "";
      const directory = "path" in target && error.code === "ENOENT" ? missingSocketDirectory(target.path) : undefined;
      const why =
        directory === undefined ? `${what}${error.message}` : `the directory ${directory} does not exist (ENOENT)`;
      reject(new ConfabError(systemCode(error, ErrorCodes.CONNECT), `cannot connect to ${where}: ${why}`));
    });
    socket.once(secure === undefined ? "connect" : "secureConnect", () => {
      clearTimeout(timer);
      socket.removeAllListeners("error");
      const authentication = endpoint.token === undefined ? "" : `${tokenLine(endpoint.token)}\n`;
      socket.write(`${authentication}${lispString(endpoint.name)}\n${encodeClientFrame(hello)}`);
      resolve(socket);
    });
  });
}

/**
 * Splits what the listener sends into program output and frames. Text before the listener's
 * hello frame is the plain-mode greeting and is dropped, unless the connection ends without
 * a hello: then it is the server's refusal, and is shown. What is held is bounded: a greeting
 * past 64 KiB is refused ({@link push} returns `false`), and output without a
 * newline past `maxPending` (default 1 MiB) is passed on as it is.
 */
export class ListenerReader {
  #pending = "";
  #framed = false;
  readonly #onOutput: (text: string) => void;
  readonly #onFrame: (frame: ListenerFrame) => void;
  readonly #maxPending: number;

  /** `onOutput` is given program output (whole lines, each with its newline), `onFrame` each frame. */
  constructor(
    onOutput: (text: string) => void,
    onFrame: (frame: ListenerFrame) => void,
    maxPending = MAX_PENDING_OUTPUT,
  ) {
    this.#onOutput = onOutput;
    this.#onFrame = onFrame;
    this.#maxPending = maxPending;
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
    if (this.#pending.length > this.#maxPending) {
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

/** What a user is told when a server says too much before greeting (see {@link ListenerReader}). */
export const NO_GREETING = `the server sent over ${MAX_GREETING} bytes without a listener's greeting; is it a confab listener?`;

/**
 * Feeds what the server sends to `reader` and calls `closed` when the connection is gone,
 * `refused` if it was cut off for sending too much without a listener's greeting
 * ({@link NO_GREETING}).
 */
export function hearServer(socket: net.Socket, reader: ListenerReader, closed: (refused: boolean) => void): void {
  let refused = false;
  socket.setEncoding("utf8");
  socket.on("data", (text: string) => {
    if (reader.push(text)) return;
    refused = true;
    socket.destroy();
  });
  socket.on("error", () => undefined);
  socket.on("close", () => {
    closed(refused);
  });
}

/** What {@link StructuredSession.evaluate} resolves to: how one input ended. */
export interface EvaluationResult {
  /** The input's number in the session (the audit's `input`); `null` when it was not evaluated (see `status`). */
  readonly input: number | null;
  /** The value as the REPL prints it, or the error as printed (or, for `"invalid"`, why it was not evaluated). */
  readonly value: string;
  /** `true` unless the input gave a value. */
  readonly threw: boolean;
  /** How it ended (see `RetStatus`); `"invalid"`: the listener did not evaluate it (an incomplete input, one too long). */
  readonly status: RetStatus | "invalid";
  /** What the input wrote (`console.log` and the like) while it ran, in order. */
  readonly output: string;
  /** Milliseconds it ran, as the listener measured it. */
  readonly ms: number;
}

/** A listener session in the structured mode, from {@link openStructuredSession}. */
export interface StructuredSession {
  /** Where the session is: `host:port` (the address reached), or the socket's path. */
  readonly address: string;
  /**
   * Evaluates one whole input (several lines included) after those sent before it. Resolves to
   * how it ended, a thrown error included; rejects with a `ConfabError` (`ERR_SESSION_ENDED`)
   * only when the session ended before answering (killed, a connection limit, closed).
   *
   * When `signal` aborts before the answer, this input (and no other) is interrupted, whether it
   * runs or still waits its turn: it resolves with status `"interrupted"`.
   */
  evaluate(code: string, options?: { readonly signal?: AbortSignal }): Promise<EvaluationResult>;
  /** Interrupts the input running now, if any: its result has status `"interrupted"`. */
  interrupt(): void;
  /** Resolves, once the session has ended, with why: the listener's last word, or `the connection closed`. */
  readonly ended: Promise<string>;
  /** Ends the session once every input sent has been answered; resolves when the connection is closed. */
  close(): Promise<void>;
}

/** How {@link openStructuredSession} connects, and where output that belongs to no input goes. */
export interface StructuredSessionOptions extends ListenerConnectOptions {
  /** Output written while no input of this session ran (a timer's, an uncaught error's); dropped if not given. */
  readonly onStrayOutput?: (text: string) => void;
}

interface Pending {
  readonly resolve: (result: EvaluationResult) => void;
  readonly reject: (error: Error) => void;
  output: string;
  // Characters of output past MAX_OUTPUT_KEPT, counted and dropped.
  dropped: number;
}

/**
 * Most output kept for one input, in characters: an input that prints without end (an async
 * loop that logs) must not fill the client's memory while it waits for the value. Past it the
 * output is counted, and the result says how much was left out.
 */
const MAX_OUTPUT_KEPT = 8 * 1024 * 1024;

/** An input's output as its result carries it: what was kept, and a note of what was not. */
function outputOf(pending: Pending): string {
  return pending.dropped === 0
    ? pending.output
    : `${pending.output}\n… (${pending.dropped} more characters of output left out)\n`;
}

/**
 * Opens a listener session in the structured mode. Resolves once the listener has greeted it;
 * rejects with a `ConfabError` when no session could be had: the connection failed (the
 * system's code, `ERR_CONNECT`), nothing within the connect timeout (`ERR_CONNECT_TIMEOUT`), the
 * server refused (`ERR_LISTENER_REFUSED`, with its words: a wrong token, say), or it is no
 * listener with a structured mode (`ERR_LISTENER_PROTOCOL`).
 */
export async function openStructuredSession(
  endpoint: ListenerEndpoint,
  options: StructuredSessionOptions = {},
): Promise<StructuredSession> {
  const where = describeTarget(endpoint.target, options.address);
  const socket = await openListenerSocket(endpoint, { kind: "hello", colors: false, structured: true }, options);
  const pending = new Map<InputId, Pending>();
  // The answers not yet in, for close().
  const outstanding = new Set<Promise<EvaluationResult>>();
  let nextId = 1;
  let endedHow: string | undefined;
  let lastWord: string | undefined;
  let settleEnded!: (how: string) => void;
  const ended = new Promise<string>((resolve) => {
    settleEnded = resolve;
  });

  const finish = (how: string): void => {
    if (endedHow !== undefined) return;
    endedHow = how;
    for (const { reject } of pending.values()) {
      reject(new ConfabError(ErrorCodes.SESSION_ENDED, `the session on ${where} ended before answering: ${how}`));
    }
    pending.clear();
    settleEnded(how);
  };

  const onAnswer = (line: string): void => {
    const reply = parseStructuredReply(line);
    if (reply === undefined) {
      // Not JSON: the connection's last word (`Error: ...`: idle, over its output limit).
      lastWord = line;
      return;
    }
    if (reply.tag === "out") {
      const owner = reply.id === null ? undefined : pending.get(reply.id);
      if (owner === undefined) options.onStrayOutput?.(reply.text);
      else if (owner.output.length + reply.text.length <= MAX_OUTPUT_KEPT) owner.output += reply.text;
      else owner.dropped += reply.text.length;
      return;
    }
    if (reply.tag === "completions") return;
    const owner = reply.id === null ? undefined : pending.get(reply.id);
    if (owner === undefined) {
      if (reply.tag === "err") lastWord = reply.message;
      return;
    }
    pending.delete(reply.id as InputId);
    owner.resolve(
      reply.tag === "ret"
        ? {
            input: reply.input,
            value: reply.val,
            threw: reply.exception,
            status: reply.status,
            output: outputOf(owner),
            ms: reply.ms,
          }
        : {
            input: null,
            value: `Error: ${reply.message}`,
            threw: true,
            status: "invalid",
            output: outputOf(owner),
            ms: 0,
          },
    );
  };

  await new Promise<void>((resolve, reject) => {
    let greeted = false;
    const timer = setTimeout(() => {
      socket.destroy();
      reject(
        new ConfabError(
          ErrorCodes.CONNECT_TIMEOUT,
          `${where}: no listener greeting within ${timeoutOf(endpoint)} ms (the connect timeout)`,
        ),
      );
    }, timeoutOf(endpoint));
    const reader = new ListenerReader(
      (text) => {
        const line = text.endsWith("\n") ? text.slice(0, -1) : text;
        if (greeted) onAnswer(line);
      },
      (frame) => {
        if (greeted || frame.kind !== "hello") return;
        clearTimeout(timer);
        if (frame.structured !== true) {
          socket.destroy();
          reject(
            new ConfabError(
              ErrorCodes.LISTENER_PROTOCOL,
              `${where}: the listener has no structured mode (protocol version ${frame.version}; it needs 2)`,
            ),
          );
          return;
        }
        greeted = true;
        resolve();
      },
      MAX_STRUCTURED_LINE,
    );
    hearServer(socket, reader, (refused) => {
      clearTimeout(timer);
      const { rest } = reader.end();
      if (!greeted) {
        const said = rest.trim().replace(/^Error: /, "");
        reject(
          new ConfabError(
            ErrorCodes.LISTENER_REFUSED,
            `${where} refused the session: ${refused ? NO_GREETING : said === "" ? "it closed the connection" : said}`,
          ),
        );
        return;
      }
      if (rest !== "") onAnswer(rest);
      finish(lastWord?.replace(/^Error: /, "") ?? "the connection closed");
    });
  });

  return {
    address: where,
    ended,
    evaluate(code: string, options?: { readonly signal?: AbortSignal }): Promise<EvaluationResult> {
      if (endedHow !== undefined) {
        return Promise.reject(
          new ConfabError(ErrorCodes.SESSION_ENDED, `the session on ${where} has ended: ${endedHow}`),
        );
      }
      const id = nextId++;
      const answer = new Promise<EvaluationResult>((resolve, reject) => {
        pending.set(id, { resolve, reject, output: "", dropped: 0 });
        socket.write(encodeStructuredRequest({ op: "eval", id, code }));
      });
      outstanding.add(answer);
      const signal = options?.signal;
      // The interrupt names this input, so that it stops this one even behind others.
      const interrupt = (): void => {
        if (endedHow === undefined && pending.has(id)) socket.write(encodeStructuredRequest({ op: "interrupt", id }));
      };
      if (signal?.aborted === true) interrupt();
      else signal?.addEventListener("abort", interrupt, { once: true });
      const forget = (): void => {
        outstanding.delete(answer);
        signal?.removeEventListener("abort", interrupt);
      };
      answer.then(forget, forget);
      return answer;
    },
    interrupt(): void {
      if (endedHow === undefined) socket.write(`${INTERRUPT_LINE}\n`);
    },
    async close(): Promise<void> {
      // The listener drops an input still running at end of file: end only once all are answered.
      await Promise.allSettled(outstanding);
      if (endedHow === undefined) socket.end();
      await ended;
    },
  };
}
