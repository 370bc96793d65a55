import * as comm from "../comm/index.js";
import type { SocketStream } from "../comm/socket-stream.js";
import * as mp from "../mp/index.js";
import { ConfabError } from "../errors.js";
import { Evaluator } from "./evaluator.js";
import { help, kill, ps } from "./helpers.js";
import { encodeListenerFrame, parseClientFrame, PROTOCOL_VERSION } from "./protocol.js";

/** How a listener evaluates; see `startUpServer`'s listener options. */
export interface ListenerOptions {
  /** Objects every listener sees as variables. */
  readonly context?: Readonly<Record<string, unknown>>;
  /** Time limit in ms for the synchronous part of one input (default 5000; 0 disables). */
  readonly evalTimeout?: number;
  /** Longest input (all its lines together) in characters; default 1 MiB. */
  readonly maxInputLength?: number;
}

const DEFAULT_EVAL_TIMEOUT_MS = 5000;

/** The next input line; a line past the stream's limit ends the session with a message, not a failure. */
async function readInput(stream: SocketStream, write: (text: string) => void): Promise<string | null> {
  try {
    return await stream.readLine();
  } catch (error) {
    if (!(error instanceof ConfabError)) throw error;
    write(`Error: ${error.message}\n`);
    return null;
  }
}
const DEFAULT_MAX_INPUT = 1024 * 1024;

/**
 * Runs a listener on `stream` until end of file, as a Lisp listener on its terminal: shows a
 * numbered prompt (`CL-USER 1 > `), reads an input (several lines if it is incomplete),
 * evaluates it in the running program, prints the value or the error, and goes on. Inputs
 * are evaluated strictly in the order they arrive. Run it in its own process (the listener
 * server does) so `ps()` shows it and `kill()` ends it.
 */
export async function runListener(stream: SocketStream, options: ListenerOptions = {}): Promise<void> {
  let framed = false;
  const write = (text: string): void => {
    if (stream.closed) return;
    stream.writeString(text);
    stream.forceOutput();
  };
  const context: Record<string, unknown> = { ...options.context };
  const exposed = Object.keys(context);
  Object.assign(context, { mp, comm, ps, kill, help: () => help(exposed) });
  let colors = false;
  const evaluator = new Evaluator({
    context,
    timeout: options.evalTimeout ?? DEFAULT_EVAL_TIMEOUT_MS,
    writeOutput: write,
    // Its value or its rejection is what a user typing a promise wants to see, not `Promise { <pending> }`.
    awaitPromiseValues: true,
    inspectOptions: { get colors() { return colors; } },
  });
  const maxInput = options.maxInputLength ?? DEFAULT_MAX_INPUT;

  let count = 1;
  const prompt = (): void => {
    const text = `CL-USER ${count} > `;
    write(framed ? encodeListenerFrame({ kind: "prompt", prompt: text }) : text);
  };

  try {
    prompt();
    let input = "";
    for (let line; (line = await readInput(stream, write)) !== null; ) {
      const frame = parseClientFrame(line);
      if (frame !== undefined) {
        if (frame.kind === "hello") {
          framed = true;
          colors = frame.colors;
          write(encodeListenerFrame({ kind: "hello", version: PROTOCOL_VERSION }));
          prompt();
        } else if (frame.kind === "complete") {
          const { completions, prefix } = evaluator.complete(frame.line);
          write(encodeListenerFrame({ kind: "completions", completions, prefix }));
        } else {
          input = "";
          prompt();
        }
        continue;
      }
      input = input === "" ? line : `${input}\n${line}`;
      if (input.trim() === "") {
        input = "";
        prompt();
        continue;
      }
      if (input.length > maxInput) {
        write(`Error: input longer than ${maxInput} characters; discarded\n`);
        input = "";
        prompt();
        continue;
      }
      if (evaluator.status(input) === "incomplete") {
        if (framed) write(encodeListenerFrame({ kind: "more" }));
        continue;
      }
      const outcome = await evaluator.evaluate(input);
      input = "";
      write(`${evaluator.format(outcome)}\n`);
      count++;
      prompt();
    }
  } finally {
    stream.close();
  }
}
