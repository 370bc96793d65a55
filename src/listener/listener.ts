import * as comm from "../comm/index.js";
import type { SocketStream } from "../comm/socket-stream.js";
import * as mp from "../mp/index.js";
import { ConfabError, ErrorCodes } from "../errors.js";
import { Evaluator, type EvalOutcome } from "./evaluator.js";
import { help, kill, ps } from "./helpers.js";
import { encodeListenerFrame, parseClientFrame, PROTOCOL_VERSION } from "./protocol.js";
import { InputScanner } from "./input-scanner.js";
import { INTERRUPT_LINE, SessionInput } from "./session-input.js";
import {
  encodeStructuredReply,
  parseStructuredRequest,
  type InputId,
  type StructuredReply,
} from "./structured-protocol.js";
import { catchStrayErrors } from "./stray-errors.js";
import type { InputOutcome } from "./audit.js";
import type { Process } from "../mp/process.js";
import { beginWait, endWait, kWaitText } from "../mp/wait-state.js";

/** How a listener evaluates; see `startUpServer`'s listener options. */
export interface ListenerOptions {
  /** Objects every listener sees as variables. */
  readonly context?: Readonly<Record<string, unknown>>;
  /** Time limit in ms for the synchronous part of one input (default 5000; 0 disables). */
  readonly evalTimeout?: number;
  /** Longest input (all its lines together) in characters; default 1 MiB. */
  readonly maxInputLength?: number;
  /**
   * @internal The `comm` namespace a session sees. Default: comm's own, whose core
   * `startUpServer` needs a `function`; the package's `startUpServer` passes the package's
   * `comm`, whose `startUpServer` serves listeners without one (a layer below cannot import it).
   */
  readonly comm?: object;
  /**
   * @internal Called as the session starts, with its process and stream: what it returns is
   * told what happens in the session (the listener server's audit and recording).
   */
  readonly observe?: (session: Process | undefined, stream: SocketStream) => SessionObserver | undefined;
}

/**
 * @internal What a session tells those who keep its record (the audit, the recording), as it
 * happens. Every method is optional; none may throw (what they do with a failure is theirs).
 */
export interface SessionObserver {
  /** Text the client is shown: prompts, answers, program output (never protocol frames). */
  shown?(text: string): void;
  /** A line the client sent (not a protocol frame; the token line never reaches a session). */
  sent?(line: string): void;
  /** An input is whole and about to run: told before it runs. */
  inputStarted?(input: number, text: string): void;
  /** How that input ended, after how long; for an error or a timeout, its first line. */
  inputEnded?(input: number, outcome: InputOutcome, ms: number, error?: string): void;
  /** The session ended: how, and how many inputs it evaluated. */
  ended?(how: string, inputs: number): void;
}

const DEFAULT_EVAL_TIMEOUT_MS = 5000;
const DEFAULT_MAX_INPUT = 1024 * 1024;

/** How an evaluation ended when it did not settle: interrupted by the client, or its connection ended. */
type Abandoned = "interrupted" | "ended";

/**
 * Runs a listener on `stream` until end of file, as a Lisp listener on its terminal: shows a
 * numbered prompt (`CL-USER 1 > `), reads an input (several lines if it is incomplete),
 * evaluates it in the running program, prints the value or the error, and goes on. Inputs
 * are evaluated strictly in the order they arrive. Run it in its own process (the listener
 * server does) so `ps()` shows it and `kill()` ends it.
 *
 * The session ends as soon as its connection does, even while an input is still running: what
 * that input settles to later is dropped. An interrupt line ({@link INTERRUPT_LINE}) abandons
 * the running input and brings the prompt back. Errors that the session's code leaves behind
 * (a rejected promise nobody handles, a timer that throws) are shown in the session as
 * `Uncaught ...` and do not take the program down (see `stray-errors.ts`).
 *
 * A client whose hello frame asks for it gets the structured mode instead (see
 * `structured-protocol.ts`): one JSON object a line each way, every input whole in one
 * message and answered by one `ret` (or `err`) with its id. Inputs, outcomes, the audit and the
 * recording are the same in both modes; the recording shows a structured session as the plain
 * session it stands for (the code typed, the output and values shown, the prompts).
 */
export async function runListener(stream: SocketStream, options: ListenerOptions = {}): Promise<void> {
  let framed = false;
  const write = (text: string): void => {
    if (stream.closed) return;
    try {
      stream.writeString(text);
    } catch (error) {
      // Past its output limit the stream ends the connection, saying why: what follows is dropped.
      if (error instanceof ConfabError && error.code === ErrorCodes.OUTPUT_BUFFER_FULL) return;
      throw error;
    }
    stream.forceOutput();
  };
  const session = mp.getCurrentProcess();
  const observer = options.observe?.(session, stream);
  // In structured mode (see structuredSession below), the id of the input running, if any.
  let structured = false;
  let runningId: InputId | null = null;
  const reply = (message: StructuredReply): void => {
    write(encodeStructuredReply(message));
  };
  // Plain text the client is shown (not a frame): the observer sees it too. In structured mode
  // it is program output, told as such.
  const say = (text: string): void => {
    observer?.shown?.(text);
    if (structured) reply({ tag: "out", id: runningId, text });
    else write(text);
  };
  const context: Record<string, unknown> = { ...options.context };
  const exposed = Object.keys(context);
  Object.assign(context, { mp, comm: options.comm ?? comm, ps, kill, help: () => help(exposed) });
  let colors = false;
  const evaluator = new Evaluator({
    context,
    timeout: options.evalTimeout ?? DEFAULT_EVAL_TIMEOUT_MS,
    writeOutput: say,
    // Its value or its rejection is what a user typing a promise wants to see, not `Promise { <pending> }`.
    awaitPromiseValues: true,
    inspectOptions: {
      get colors() {
        return colors;
      },
    },
  });
  const maxInput = options.maxInputLength ?? DEFAULT_MAX_INPUT;

  if (session !== undefined) {
    // Killed (from another session, or the monitor): the client is told so before the end.
    // The abort comes before the process closes what it owns, so the stream is still open.
    const signal = session.signal;
    signal.addEventListener(
      "abort",
      () => {
        const why: unknown = signal.reason;
        const reason = `session killed (${why instanceof Error ? why.message : `process ${session.id} was killed`})`;
        if (!structured) {
          stream.close({ reason });
          return;
        }
        // Every line a structured client reads is JSON: the reason is the session's last word.
        reply({ tag: "err", id: null, message: reason });
        stream.close();
      },
      { once: true },
    );
    catchStrayErrors(session, (error) => {
      if (stream.closed) return false;
      const shown = evaluator.format({ ok: false, error });
      say(`${shown.startsWith("Uncaught ") ? shown : `Uncaught ${shown}`}\n`);
      return true;
    });
  }

  // Set while an input is evaluated: settles the wait for it early.
  let abandon: ((why: Abandoned) => void) | undefined;
  const input = new SessionInput(stream, maxInput, {
    interrupt: (line) => {
      if (abandon === undefined) return false;
      // In structured mode an interrupt may name another input (one still waiting): it waits its turn.
      if (structured && !interruptMeant(line, runningId, true)) return false;
      abandon("interrupted");
      return true;
    },
    ended: () => {
      abandon?.("ended");
    },
  });

  let count = 1;
  const prompt = (): void => {
    const text = `CL-USER ${count} > `;
    observer?.shown?.(text);
    write(framed ? encodeListenerFrame({ kind: "prompt", prompt: text }) : text);
  };

  const scanner = new InputScanner();
  // Lines of the input not yet given to the scanner: it is consulted only during a paste, so a
  // line typed and answered at once never costs its scan.
  let unscanned: string[] = [];
  let text = "";
  // While lines are pasted faster than they are read, an input the parser found incomplete is
  // parsed again only once it has doubled: a paste costs time linear in its size.
  let incompleteAt = 0;
  const discard = (): void => {
    text = "";
    incompleteAt = 0;
    unscanned = [];
    scanner.reset();
  };

  // While an input runs, the session's whostate says which one, and for how long (the text is
  // made only when asked); a wait of the input's own (processWait) shows instead. One object,
  // reused: a line costs two field writes.
  const evaluating = {
    input: 0,
    since: 0,
    [kWaitText](): string {
      return `Evaluating input ${this.input} for ${((Date.now() - this.since) / 1000).toFixed(1)} s`;
    },
  };
  // When the running input started, and how the session ends (for the observer).
  let started = 0;
  let how = "end of file";
  const tellEnded = (outcome: EvalOutcome | Abandoned): void => {
    if (observer?.inputEnded === undefined) return;
    const ms = Math.round(performance.now() - started);
    if (outcome === "interrupted" || outcome === "ended") {
      observer.inputEnded(count, outcome === "ended" ? "abandoned" : "interrupted", ms);
    } else if (outcome.ok) {
      observer.inputEnded(count, "value", ms);
    } else {
      observer.inputEnded(
        count,
        isTimeout(outcome.error) ? "timeout" : "error",
        ms,
        firstLine(evaluator.format(outcome)),
      );
    }
  };

  // Waits for an input that did not answer at once: its outcome, or why it was abandoned.
  // Not an async function: a plain promise, so the wait costs no extra turn.
  const settle = (now: Promise<EvalOutcome>): Promise<EvalOutcome | Abandoned> => {
    const settled = new Promise<EvalOutcome | Abandoned>((resolve) => {
      abandon = resolve;
      void now.then(resolve);
    });
    // An interrupt that came in behind this input: in structured mode, one meant for it was
    // taken before it ran (nothing has been read since), so only the plain mode looks here.
    if (!structured && input.takeInterrupt()) abandon?.("interrupted");
    else if (input.ended) {
      // The connection ended with this input in it: it is answered if it settles at once.
      const stop = abandon;
      setImmediate(() => {
        stop?.("ended");
      });
    }
    return settled;
  };
  const interrupted = (): string => `Interrupted: input ${count} abandoned (what it settles to will be dropped)`;

  // The structured mode's loop, once the client has asked for it: one request a line, each
  // eval answered by one ret (or err) carrying its id. Not on the plain mode's path at all.
  const structuredSession = async (): Promise<void> => {
    for (let line; (line = await input.next()) !== null;) {
      const request = parseStructuredRequest(line);
      if ("error" in request) {
        reply({ tag: "err", id: request.id, message: request.error });
        continue;
      }
      // With nothing running there is nothing to interrupt (one that came in time was taken by SessionInput).
      if (request.op === "interrupt") continue;
      const { id, code } = request;
      if (request.op === "complete") {
        reply({ tag: "completions", id, ...evaluator.complete(code) });
        continue;
      }
      if (code.length > maxInput) {
        reply({ tag: "err", id, message: `input longer than ${maxInput} characters; not evaluated` });
        continue;
      }
      if (evaluator.status(code) === "incomplete") {
        reply({ tag: "err", id, message: "incomplete input (an unclosed bracket, string or comment?); not evaluated" });
        continue;
      }
      if (observer?.sent !== undefined) for (const typed of code.split("\n")) observer.sent(typed);
      observer?.inputStarted?.(count, code);
      started = performance.now();
      evaluating.input = count;
      evaluating.since = Date.now();
      const waitedBefore = session === undefined ? undefined : beginWait(session, evaluating);
      runningId = id;
      // An interrupt meant for this input came before it could start (it waited behind another):
      // it is not run at all, which for a synchronous input is the only way to stop it.
      const stoppedFirst = input.takeInterrupt((line, first) => interruptMeant(line, id, first));
      const now = stoppedFirst ? "interrupted" : evaluator.evaluateIfComplete(code);
      // status() said it is whole, so "incomplete" cannot come back; were it to, it is a syntax error.
      const outcome: EvalOutcome | Abandoned =
        now === "incomplete"
          ? { ok: false, error: new SyntaxError("Unexpected end of input") }
          : now instanceof Promise
            ? await settle(now)
            : now;
      abandon = undefined;
      if (session !== undefined) endWait(session, evaluating, waitedBefore);
      const ms = Math.round(performance.now() - started);
      tellEnded(outcome);
      runningId = null;
      if (outcome === "ended") {
        how = `end of file while input ${count} ran (abandoned)`;
        return;
      }
      let val: string;
      let status: "value" | "error" | "timeout" | "interrupted";
      if (outcome === "interrupted") {
        evaluator.abandon();
        val = stoppedFirst ? `Interrupted: input ${count} not run` : interrupted();
        status = "interrupted";
      } else {
        val = evaluator.format(outcome);
        status = outcome.ok ? "value" : isTimeout(outcome.error) ? "timeout" : "error";
      }
      observer?.shown?.(`${val}\n`);
      reply({ tag: "ret", id, input: count, val, exception: status !== "value", status, ms });
      count++;
      observer?.shown?.(`CL-USER ${count} > `);
    }
  };

  try {
    prompt();
    for (let line; (line = await input.next()) !== null;) {
      const frame = parseClientFrame(line);
      if (frame !== undefined) {
        if (frame.kind === "hello" && frame.structured === true) {
          structured = true;
          colors = false;
          discard();
          input.structure();
          write(encodeListenerFrame({ kind: "hello", version: PROTOCOL_VERSION, structured: true }));
          await structuredSession();
          break;
        }
        if (frame.kind === "hello") {
          framed = true;
          colors = frame.colors;
          write(encodeListenerFrame({ kind: "hello", version: PROTOCOL_VERSION }));
          prompt();
        } else if (frame.kind === "complete") {
          const { completions, prefix } = evaluator.complete(frame.line);
          write(encodeListenerFrame({ kind: "completions", completions, prefix }));
        } else {
          discard();
          prompt();
        }
        continue;
      }
      observer?.sent?.(line);
      if (line === INTERRUPT_LINE) {
        // Nothing is running: an interrupt drops what has been typed so far.
        discard();
        prompt();
        continue;
      }
      text = text === "" ? line : `${text}\n${line}`;
      if (text.trim() === "") {
        discard();
        prompt();
        continue;
      }
      if (text.length > maxInput) {
        say(`Error: input longer than ${maxInput} characters; discarded\n`);
        discard();
        prompt();
        continue;
      }
      unscanned.push(line);
      const pasting = input.more;
      if (pasting) {
        for (const scanned of unscanned) scanner.push(scanned);
        unscanned = [];
      }
      // The exact parse costs time in the whole input's size: while a paste is still coming in,
      // it is skipped where the scanner knows the input cannot be whole yet.
      const parse = !pasting || (scanner.mayBeComplete && text.length >= 2 * incompleteAt);
      evaluating.input = count;
      evaluating.since = Date.now();
      const waitedBefore = session === undefined ? undefined : beginWait(session, evaluating);
      let now: ReturnType<Evaluator["evaluateIfComplete"]> = "incomplete";
      if (parse && observer?.inputStarted !== undefined) {
        // On record before it runs: completeness is asked first, then the input is told, then run.
        if (evaluator.status(text) !== "incomplete") {
          observer.inputStarted(count, text);
          started = performance.now();
          now = evaluator.evaluateIfComplete(text);
        }
      } else if (parse) {
        started = observer === undefined ? 0 : performance.now();
        now = evaluator.evaluateIfComplete(text);
      }
      if (session !== undefined && !(now instanceof Promise)) endWait(session, evaluating, waitedBefore);
      if (now === "incomplete") {
        if (parse && pasting) incompleteAt = text.length;
        if (framed) write(encodeListenerFrame({ kind: "more" }));
        continue;
      }
      discard();
      if (!(now instanceof Promise)) {
        // Answered at once: the common case, with no promise between the line and its answer.
        say(`${evaluator.format(now)}\n`);
        tellEnded(now);
        count++;
        prompt();
        continue;
      }
      const outcome = await settle(now);
      if (session !== undefined) endWait(session, evaluating, waitedBefore);
      abandon = undefined;
      tellEnded(outcome);
      if (outcome === "ended") {
        how = `end of file while input ${count} ran (abandoned)`;
        break;
      }
      if (outcome === "interrupted") {
        evaluator.abandon();
        say(`${interrupted()}\n`);
      } else {
        say(`${evaluator.format(outcome)}\n`);
      }
      count++;
      prompt();
    }
    // A line past the stream's limit ends the session with a message, not a failure.
    const failure = input.failure;
    if (failure instanceof ConfabError) {
      if (structured) reply({ tag: "err", id: null, message: failure.message });
      else say(`Error: ${failure.message}\n`);
    }
    if (failure !== undefined && how === "end of file") how = failure.message;
  } finally {
    evaluator.abandon();
    stream.close();
    if (session?.signal.aborted === true) how = "killed";
    observer?.ended?.(how, count - 1);
  }
}

/** The first line of a text, at most 500 characters: what the audit keeps of an error. */
function firstLine(text: string): string {
  const line = text.split("\n", 1)[0] ?? "";
  return line.length > 500 ? `${line.slice(0, 500)}…` : line;
}

/**
 * Whether an interrupt line (ETX, or the structured request) is meant for the input `running`:
 * one that names it is; one that names no input is meant for whichever runs when it is read, or,
 * if it was waiting, for the input it came right behind (`first`).
 */
function interruptMeant(line: string, running: InputId | null, first: boolean): boolean {
  const request = line === INTERRUPT_LINE ? undefined : parseStructuredRequest(line);
  const id = request !== undefined && "op" in request && request.op === "interrupt" ? request.id : undefined;
  return id === undefined ? first : id === running;
}

/** Whether an input's error is the evaluation time limit's. */
function isTimeout(error: unknown): boolean {
  return error instanceof ConfabError && error.code === ErrorCodes.EVAL_TIMEOUT;
}
