import type { Socket } from "node:net";
import { ConfabError, ErrorCodes } from "../errors.js";
import type { StartUpServerOptions } from "../comm/server.js";
import { SocketStream } from "../comm/socket-stream.js";
import { processRunFunction } from "../mp/process.js";
import { readListenerName } from "./lisp-reader.js";
import { runListener, type ListenerOptions } from "./listener.js";

/** Default ms a client has to send its name line. */
export const DEFAULT_NAME_TIMEOUT_MS = 10_000;
// The name line is short: a client gets a small buffer until it has named its listener.
const NAME_LINE_LIMIT = 4096;

/** Addresses a listener server may bind without an authentication mode. */
export function isLoopback(address: string): boolean {
  return address === "localhost" || address === "::1" || /^127\.\d+\.\d+\.\d+$/.test(address) || /^::ffff:127\./i.test(address);
}

/**
 * The built-in listener server's `function`, as in the seed: each client names a new process
 * on its first line (a Lisp string such as `"my listener"`), and that process runs a
 * listener on the connection. The name line is read without holding up the server; a first
 * line that is not a string gets a one-line error and the connection is closed, so that
 * nothing a stray HTTP request carries is ever evaluated.
 * @internal
 */
export function listenerServer(options: StartUpServerOptions): (handle: Socket) => void {
  const address = options.address ?? "127.0.0.1";
  if (!isLoopback(address)) {
    throw new ConfabError(
      ErrorCodes.INSECURE_LISTENER,
      `refusing to serve listeners on ${address}: a listener runs any code it is sent. Bind a loopback address (the default 127.0.0.1), or expose it only behind an authentication mode`,
    );
  }
  const nameTimeout = options.nameTimeout ?? DEFAULT_NAME_TIMEOUT_MS;
  const listenerOptions: ListenerOptions = {
    ...(options.context === undefined ? {} : { context: options.context }),
    ...(options.evalTimeout === undefined ? {} : { evalTimeout: options.evalTimeout }),
  };
  const streamOptions = options.streamOptions ?? {};
  return (handle) => {
    const stream = new SocketStream({ ...streamOptions, socket: handle });
    void greet(stream, nameTimeout, listenerOptions);
  };
}

async function greet(stream: SocketStream, nameTimeout: number, options: ListenerOptions): Promise<void> {
  const timer = setTimeout(() => {
    stream.writeLine(`Error: no name line within ${nameTimeout} ms; send a string such as "my listener" first`);
    stream.close();
  }, nameTimeout);
  let name: string;
  try {
    const line = await readNameLine(stream);
    if (line === null) {
      stream.close();
      return;
    }
    name = readListenerName(line);
  } catch (error) {
    if (!stream.closed) {
      stream.writeLine(`Error: ${error instanceof Error ? error.message : String(error)}`);
      stream.close();
    }
    return;
  } finally {
    clearTimeout(timer);
  }
  processRunFunction(name, { properties: { kind: "listener" } }, runListener, stream, options);
}

/** Reads the first line with a small limit of its own: the stream's limit is for inputs. */
async function readNameLine(stream: SocketStream): Promise<string | null> {
  let line = "";
  for (;;) {
    const ch = await stream.readChar();
    if (ch === null) return line === "" ? null : line;
    if (ch === "\n") return line.endsWith("\r") ? line.slice(0, -1) : line;
    line += ch;
    if (line.length > NAME_LINE_LIMIT) {
      throw new ConfabError(ErrorCodes.BAD_NAME_LINE, `the name line is longer than ${NAME_LINE_LIMIT} characters`);
    }
  }
}
