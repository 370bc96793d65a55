import type { Socket } from "node:net";
import { ConfabError, ErrorCodes } from "../errors.js";
import type { StartUpServerOptions } from "../comm/server.js";
import { SocketStream } from "../comm/socket-stream.js";
import { processRunFunction } from "../mp/process.js";
import { readListenerName } from "./lisp-reader.js";
import { runListener, type ListenerOptions } from "./listener.js";
import { parseTokenLine, REFUSAL_LINE, TokenAuthenticator } from "./auth.js";
import { requiresClientCertificates, unixSocketPath } from "../comm/endpoint.js";

/** Default ms a client has to send its name line. */
export const DEFAULT_NAME_TIMEOUT_MS = 10_000;
// The name line is short: a client gets a small buffer until it has named its listener.
const NAME_LINE_LIMIT = 4096;

/** Addresses a listener server may bind without an authentication mode. */
export function isLoopback(address: string): boolean {
  return address === "localhost" || address === "::1" || /^127\.\d+\.\d+\.\d+$/.test(address) || /^::ffff:127\./i.test(address);
}

/**
 * The listener server's exposure rule: on anything but loopback or a Unix socket (or behind a
 * PROXY-protocol balancer), a listener needs an authentication mode. Throws
 * `ERR_INSECURE_LISTENER`, saying how to enable one.
 * @internal
 */
export function assertListenerExposure(options: StartUpServerOptions, address: string): void {
  // Behind a PROXY-protocol balancer, a loopback bind is reachable from wherever the balancer is.
  const local = options.proxyProtocol !== true && (unixSocketPath(options.service) !== undefined || isLoopback(address));
  if (!local && options.token === undefined && !requiresClientCertificates(options.tls)) {
    throw new ConfabError(
      ErrorCodes.INSECURE_LISTENER,
      `refusing to serve listeners on ${address}${options.proxyProtocol === true ? " behind a PROXY-protocol balancer" : ""} without authentication: a listener runs any code it is sent. ` +
        "Bind a loopback address (the default 127.0.0.1) or a Unix socket path (service unix:PATH), or enable an authentication mode: " +
        "a shared token (option token; for confab serve, CONFAB_TOKEN or --token-file FILE), " +
        "or TLS with client certificates (option tls: { key, cert, ca }; for confab serve, --tls-cert FILE --tls-key FILE --tls-ca FILE)",
    );
  }
}

/**
 * The built-in listener server's `function`, as in the seed: each client names a new process
 * on its first line (a Lisp string such as `"my listener"`), and that process runs a
 * listener on the connection. The name line is read without holding up the server; a first
 * line that is not a string gets a one-line error and the connection is closed, so that
 * nothing a stray HTTP request carries is ever evaluated. With a `token`, the client must
 * first send `token SECRET` (see `auth.ts`); until it has, nothing it sends is evaluated or
 * echoed.
 * @internal
 */
export function listenerServer(options: StartUpServerOptions): (handle: Socket) => void {
  assertListenerExposure(options, options.address ?? "127.0.0.1");
  const auth = options.token === undefined ? undefined : new TokenAuthenticator(options.token);
  const nameTimeout = options.nameTimeout ?? DEFAULT_NAME_TIMEOUT_MS;
  const listenerOptions: ListenerOptions = {
    ...(options.context === undefined ? {} : { context: options.context }),
    ...(options.evalTimeout === undefined ? {} : { evalTimeout: options.evalTimeout }),
  };
  const streamOptions = options.streamOptions ?? {};
  return (handle) => {
    const stream = new SocketStream({ ...streamOptions, socket: handle });
    void greet(stream, nameTimeout, listenerOptions, auth);
  };
}

async function greet(stream: SocketStream, nameTimeout: number, options: ListenerOptions, auth: TokenAuthenticator | undefined): Promise<void> {
  let authenticated = auth === undefined;
  const timer = setTimeout(() => {
    // Before authentication, a timeout is one more reason for the one generic refusal.
    stream.writeLine(authenticated ? `Error: no name line within ${nameTimeout} ms; send a string such as "my listener" first` : REFUSAL_LINE);
    stream.close();
  }, nameTimeout);
  let name: string;
  try {
    let line = await readFirstLine(stream, auth !== undefined);
    if (line === null) {
      stream.close();
      return;
    }
    // A token line is never echoed, evaluated or kept; without a token configured it is ignored.
    const presented = parseTokenLine(line);
    if (auth !== undefined) {
      const ok = await auth.verify(stream.remoteAddress, presented);
      if (stream.closed) return;
      if (!ok) {
        stream.writeLine(REFUSAL_LINE);
        stream.close();
        return;
      }
      authenticated = true;
    }
    if (presented !== undefined) {
      line = await readNameLine(stream);
      if (line === null) {
        stream.close();
        return;
      }
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
  // Closed meanwhile (the name timer fired, or the peer went away mid-line): no listener.
  if (stream.closed) return;
  processRunFunction(name, { properties: { kind: "listener" } }, runListener, stream, options);
}

/** The first line; with a token, an overlong one is no token (the empty line), not an error that could say more. */
async function readFirstLine(stream: SocketStream, tokenExpected: boolean): Promise<string | null> {
  try {
    return await readNameLine(stream);
  } catch (error) {
    if (!tokenExpected || !(error instanceof ConfabError) || error.code !== ErrorCodes.BAD_NAME_LINE) throw error;
    return "";
  }
}

/** Reads the first line with a small limit of its own: the stream's limit is for inputs. */
async function readNameLine(stream: SocketStream): Promise<string | null> {
  let line = "";
  for (;;) {
    const ch = await stream.readChar();
    if (ch === null) return null; // a line cut short by end of file names nothing
    if (ch === "\n") return line.endsWith("\r") ? line.slice(0, -1) : line;
    line += ch;
    if (line.length > NAME_LINE_LIMIT) {
      throw new ConfabError(ErrorCodes.BAD_NAME_LINE, `the name line is longer than ${NAME_LINE_LIMIT} characters`);
    }
  }
}
