/**
 * The listener server's line protocol, and its small extension for capable clients such as
 * `confab connect`.
 *
 * ## Opening a session
 *
 * The server speaks first only to refuse. A client sends, one line each (LF or CRLF):
 *
 * 1. only if the server was started with a token: `token SECRET` (the word `token`, one
 *    space, the secret up to the end of the line). Nothing else is read until it has been
 *    checked, and nothing of it is echoed: a wrong, missing or malformed token line gets,
 *    after a delay, the one line `Error: not authorized (the first line must be: token SECRET)`
 *    and the connection is closed. A right one gets no answer: the next line is read. A
 *    server without a token skips a token line, so a client may always send one;
 * 2. the name line: a Common Lisp string naming the listener's process (`"my listener"`);
 *    anything else gets one `Error: ...` line and the connection is closed;
 * 3. then source text, answered by values and prompts (`CL-USER 1 > `).
 *
 * Typed into netcat against a server with a token:
 *
 * ```
 * $ nc 127.0.0.1 10243
 * token 6f1c9e0e8a2b4d7c9f3a1e5b
 * "my listener"
 * CL-USER 1 > 1 + 2
 * 3
 * ```
 *
 * With TLS (`openssl s_client`, `socat - OPENSSL:...`) or a Unix socket (`nc -U PATH`) the
 * lines are the same: those modes authenticate at the transport, before the first line.
 *
 * ## Frames
 *
 * A plain client (netcat, socat) sends its name line and then source text, and reads values
 * and prompts as plain text. A capable client sends, after its name line, the line
 * `DLE hello {json}`; from then on the listener marks what is not program output with
 * frames, one line each, starting with the DLE control character (U+0010):
 *
 * | from     | frame                          | meaning                                   |
 * |----------|--------------------------------|-------------------------------------------|
 * | client   | `DLE hello {"colors":true}`    | switch to framed mode (colours optional)  |
 * | client   | `DLE hello {"structured":true}` | switch to structured mode (version 2)    |
 * | client   | `DLE complete "JSON string"`   | ask for completions of a partial line     |
 * | client   | `DLE cancel`                   | drop a multi-line input in progress       |
 * | listener | `DLE hello {"version":2}`      | framed mode is on (text before it is noise) |
 * | listener | `DLE prompt CL-USER 2 > `      | ready for input; the text is the prompt   |
 * | listener | `DLE more`                     | input incomplete: send its next line      |
 * | listener | `DLE completions {json}`       | `{ completions, prefix }`                 |
 *
 * Everything else the listener sends is program output, to be shown as is.
 *
 * ## Structured mode (protocol version 2)
 *
 * Version 2 adds the structured mode, for programs rather than people (editors, scripts,
 * agents): a client whose hello frame says `{"structured":true}` is answered
 * `DLE hello {"version":2,"structured":true}`, and from then on every line either side sends
 * is one JSON object: `{"op":"eval","id":1,"code":"1 + 2"}` in, `{"tag":"ret","id":1,...}`
 * and `{"tag":"out",...}` back (see `structured-protocol.ts`, and its document,
 * `docs/guides/structured-mode.md`). A version 1 listener answers such a hello with
 * `{"version":1}`: it has no structured mode.
 *
 * ## Interrupt
 *
 * In either mode, a line holding only the ETX control character (U+0003, what Ctrl-C types;
 * `printf '\003\n'`) is an interrupt. While an input is being evaluated it abandons that
 * input: the listener prints `Interrupted: input N abandoned ...` and a new prompt, drops the
 * lines that arrived behind it, and keeps the session's declarations; what the input settles to
 * later is dropped. With nothing running it drops an unfinished multi-line input, as
 * `DLE cancel` does. A synchronous input cannot be interrupted (nothing else runs meanwhile):
 * the evaluation time limit stops it.
 *
 * ## End of the connection
 *
 * End of file (or a reset) ends the session at once, even while an input is being evaluated:
 * an input that awaits anything is abandoned. A client that pipes inputs should therefore end
 * its side only after the last answer (its prompt, or in framed mode one `prompt` or `more`
 * frame per line sent), as `confab connect` does.
 * @module
 */

/** The frame marker, DLE ("data link escape"): never typed by people, rare in program output. */
export const FRAME_MARK = "\u0010";

/**
 * Protocol version the listener announces in its hello frame: 2 since the structured mode
 * (version 1 had the framed mode only).
 */
export const PROTOCOL_VERSION = 2;

/** What a capable client can ask for. */
export type ClientFrame =
  | { readonly kind: "hello"; readonly colors: boolean; readonly structured?: boolean }
  | { readonly kind: "complete"; readonly line: string }
  | { readonly kind: "cancel" };

/** What the listener tells a capable client. */
export type ListenerFrame =
  | { readonly kind: "hello"; readonly version: number; readonly structured?: boolean }
  | { readonly kind: "prompt"; readonly prompt: string }
  | { readonly kind: "more" }
  | { readonly kind: "completions"; readonly completions: readonly string[]; readonly prefix: string };

/** A frame line's word and the text after it; `undefined` for a line that is not a frame. */
function splitFrame(line: string): { word: string; rest: string } | undefined {
  if (!line.startsWith(FRAME_MARK)) return undefined;
  const space = line.indexOf(" ");
  return space === -1 ? { word: line.slice(1), rest: "" } : { word: line.slice(1, space), rest: line.slice(space + 1) };
}

/** Parses a line from the client; `undefined` if it is not a frame (or not a well-formed one). */
export function parseClientFrame(line: string): ClientFrame | undefined {
  const frame = splitFrame(line);
  if (frame === undefined) return undefined;
  const { word, rest } = frame;
  try {
    switch (word) {
      case "hello": {
        const options = (rest === "" ? {} : JSON.parse(rest)) as { colors?: unknown; structured?: unknown } | null;
        if (options?.structured === true) return { kind: "hello", colors: false, structured: true };
        return { kind: "hello", colors: options?.colors === true };
      }
      case "complete": {
        const text: unknown = JSON.parse(rest);
        return typeof text === "string" ? { kind: "complete", line: text } : undefined;
      }
      case "cancel":
        return { kind: "cancel" };
      default:
        return undefined;
    }
  } catch {
    return undefined;
  }
}

/** One client frame as a line (with its newline). */
export function encodeClientFrame(frame: ClientFrame): string {
  switch (frame.kind) {
    case "hello":
      return `${FRAME_MARK}hello ${JSON.stringify(frame.structured === true ? { structured: true } : { colors: frame.colors })}\n`;
    case "complete":
      return `${FRAME_MARK}complete ${JSON.stringify(frame.line)}\n`;
    case "cancel":
      return `${FRAME_MARK}cancel\n`;
  }
}

/** One listener frame as a line (with its newline). */
export function encodeListenerFrame(frame: ListenerFrame): string {
  switch (frame.kind) {
    case "hello":
      return `${FRAME_MARK}hello ${JSON.stringify(frame.structured === true ? { version: frame.version, structured: true } : { version: frame.version })}\n`;
    case "prompt":
      return `${FRAME_MARK}prompt ${frame.prompt}\n`;
    case "more":
      return `${FRAME_MARK}more\n`;
    case "completions":
      return `${FRAME_MARK}completions ${JSON.stringify({ completions: frame.completions, prefix: frame.prefix })}\n`;
  }
}

/** Parses a frame line from the listener (without its newline); `undefined` if malformed. */
export function parseListenerFrame(line: string): ListenerFrame | undefined {
  const frame = splitFrame(line);
  if (frame === undefined) return undefined;
  const { word, rest } = frame;
  try {
    switch (word) {
      case "hello": {
        const body = JSON.parse(rest) as { version?: unknown; structured?: unknown } | null;
        const version = Number(body?.version);
        return body?.structured === true ? { kind: "hello", version, structured: true } : { kind: "hello", version };
      }
      case "prompt":
        return { kind: "prompt", prompt: rest };
      case "more":
        return { kind: "more" };
      case "completions": {
        const body = JSON.parse(rest) as { completions?: unknown; prefix?: unknown };
        if (!Array.isArray(body.completions) || typeof body.prefix !== "string") return undefined;
        return { kind: "completions", completions: body.completions.map(String), prefix: body.prefix };
      }
      default:
        return undefined;
    }
  } catch {
    return undefined;
  }
}
