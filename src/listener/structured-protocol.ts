/**
 * The listener's structured mode, on the wire: tagged JSON lines in the spirit of Clojure's
 * prepl, for editors, scripts and agents. A session enters it by its hello frame
 * (`DLE hello {"structured":true}`, see `protocol.ts`); from then on every line is one JSON
 * object. The whole protocol, with a transcript typed into netcat, is in
 * `docs/guides/structured-mode.md`.
 *
 * Client to listener: `{"op":"eval","id":ID,"code":"..."}` (one whole input, several lines
 * included), `{"op":"complete","id":ID,"code":"..."}` and `{"op":"interrupt"}` (or the ETX
 * line). Listener to client: `out` (program output, with the id of the input that was running,
 * or `null`), `ret` (how an input ended: its printed value or error), `completions`, and `err`
 * (a message that could not be taken; the session goes on).
 * @module
 */

/** An input's id as the client chose it (a string or a number): every answer about that input carries it. */
export type InputId = string | number;

/** What a client in structured mode asks. */
export type StructuredRequest =
  | { readonly op: "eval"; readonly id: InputId; readonly code: string }
  | { readonly op: "complete"; readonly id: InputId; readonly code: string }
  | {
      readonly op: "interrupt";
      /** The input meant: running, or still waiting to run. Without it, whichever input is running. */
      readonly id?: InputId;
    };

/**
 * How an input ended, in a `ret` answer: its value, an error it threw, the evaluation time limit,
 * or the client's interrupt (the input was abandoned). The audit's words for the same outcomes.
 */
export type RetStatus = "value" | "error" | "timeout" | "interrupted";

/** What the listener sends a client in structured mode. */
export type StructuredReply =
  | {
      /** Program output (`console.log` and the like, uncaught errors), as it was written. */
      readonly tag: "out";
      /** The input that was running when it was written; `null` when none was (a stray timer's output). */
      readonly id: InputId | null;
      readonly text: string;
    }
  | {
      /** An input has ended: exactly one `ret` (or one `err`) answers each `eval`. */
      readonly tag: "ret";
      readonly id: InputId;
      /** Its number in the session (the plain prompt's `CL-USER n`, the audit's `input`). */
      readonly input: number;
      /** The value as the REPL prints it (`util.inspect`, no colours), or the error as printed. */
      readonly val: string;
      /** `true` unless the input gave a value. */
      readonly exception: boolean;
      readonly status: RetStatus;
      /** Milliseconds from its start to its end. */
      readonly ms: number;
    }
  | {
      /** The answer to `complete`: as Tab completion in `confab connect` offers. */
      readonly tag: "completions";
      readonly id: InputId;
      readonly completions: readonly string[];
      /** The part of the code the completions would replace. */
      readonly prefix: string;
    }
  | {
      /**
       * A message that could not be taken (not JSON, an unknown op, an incomplete input, one too
       * long), or the session's last word before it ends (`id` `null`). The session goes on
       * unless the connection closes behind it.
       */
      readonly tag: "err";
      /** The message's id when it had a readable one, else `null`. */
      readonly id: InputId | null;
      readonly message: string;
    };

/** A request that could not be taken: what to answer, with the message's id if it had one. */
export interface RequestError {
  /** What was wrong, to be sent back as an `err` answer's message. */
  readonly error: string;
  /** The message's id, if it had a readable one: the `err` answer carries it. */
  readonly id: InputId | null;
}

function isId(value: unknown): value is InputId {
  return typeof value === "string" || (typeof value === "number" && Number.isFinite(value));
}

/** Parses one line from the client: the request, or a {@link RequestError} saying what was wrong. */
export function parseStructuredRequest(line: string): StructuredRequest | RequestError {
  let message: unknown;
  try {
    message = JSON.parse(line);
  } catch (error) {
    const why = error instanceof Error ? error.message : String(error);
    return { error: `not a JSON object (${why}); every line in structured mode is one`, id: null };
  }
  if (typeof message !== "object" || message === null || Array.isArray(message)) {
    return { error: "not a JSON object; every line in structured mode is one", id: null };
  }
  const fields = message as { op?: unknown; id?: unknown; code?: unknown };
  const id = isId(fields.id) ? fields.id : null;
  switch (fields.op) {
    case "interrupt":
      return id === null ? { op: "interrupt" } : { op: "interrupt", id };
    case "eval":
    case "complete": {
      if (id === null) return { error: `"${fields.op}" needs an "id" (a string or a number)`, id };
      if (typeof fields.code !== "string") return { error: `"${fields.op}" needs "code" (a string)`, id };
      return { op: fields.op, id, code: fields.code };
    }
    default: {
      const what = fields.op === undefined ? 'no "op"' : `unknown "op" ${JSON.stringify(fields.op)}`;
      return { error: `${what}; one of "eval", "complete", "interrupt"`, id };
    }
  }
}

/**
 * Whether a line is the interrupt request. Asked of every line that arrives while an input runs,
 * so it parses only lines that could be one.
 */
export function isInterruptRequest(line: string): boolean {
  if (!line.includes('"interrupt"')) return false;
  const request = parseStructuredRequest(line);
  return "op" in request && request.op === "interrupt";
}

/** One request as a line (with its newline). */
export function encodeStructuredRequest(request: StructuredRequest): string {
  return `${JSON.stringify(request)}\n`;
}

/** One answer as a line (with its newline). */
export function encodeStructuredReply(reply: StructuredReply): string {
  return `${JSON.stringify(reply)}\n`;
}

/** Parses one line from the listener (without its newline); `undefined` if it is not a well-formed answer. */
export function parseStructuredReply(line: string): StructuredReply | undefined {
  let value: unknown;
  try {
    value = JSON.parse(line);
  } catch {
    return undefined;
  }
  if (typeof value !== "object" || value === null) return undefined;
  const reply = value as Record<string, unknown>;
  const id = reply.id;
  switch (reply.tag) {
    case "out":
      return typeof reply.text === "string" && (id === null || isId(id))
        ? { tag: "out", id, text: reply.text }
        : undefined;
    case "ret":
      return isId(id) &&
        typeof reply.val === "string" &&
        typeof reply.exception === "boolean" &&
        typeof reply.input === "number" &&
        typeof reply.ms === "number" &&
        (reply.status === "value" ||
          reply.status === "error" ||
          reply.status === "timeout" ||
          reply.status === "interrupted")
        ? {
            tag: "ret",
            id,
            input: reply.input,
            val: reply.val,
            exception: reply.exception,
            status: reply.status,
            ms: reply.ms,
          }
        : undefined;
    case "completions":
      return isId(id) && Array.isArray(reply.completions) && typeof reply.prefix === "string"
        ? { tag: "completions", id, completions: reply.completions.map(String), prefix: reply.prefix }
        : undefined;
    case "err":
      return typeof reply.message === "string" && (id === null || isId(id))
        ? { tag: "err", id, message: reply.message }
        : undefined;
    default:
      return undefined;
  }
}
