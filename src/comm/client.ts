import net from "node:net";
import tls from "node:tls";
import { ConfabError, ErrorCodes, systemCode } from "../errors.js";
import { tokenLine, validateToken } from "./token-line.js";
import { DEFAULT_HANDSHAKE_TIMEOUT_MS, missingSocketDirectory, unixSocketPath } from "./endpoint.js";
import { resolveService } from "./services.js";
import { formatHostPort } from "./address.js";
import { SocketStream, type SocketStreamOptions } from "./socket-stream.js";

/**
 * TLS for a client (`openTcpStream(host, service, { tls })`). The server's certificate is
 * always verified, against `ca` when given (a private CA) or else the system's CAs, and must
 * name `host` (or `servername`).
 */
export interface ClientTlsOptions {
  /** The CA certificate(s) that signed the server's certificate (PEM). Default: the system's CAs. */
  readonly ca?: string | Buffer | readonly (string | Buffer)[];
  /** This client's certificate (PEM), for a server that requires one. */
  readonly cert?: string | Buffer;
  /** The private key of `cert` (PEM). */
  readonly key?: string | Buffer;
  /** Passphrase of an encrypted `key`. */
  readonly passphrase?: string;
  /** The name the server's certificate must carry, when it is not `host`. */
  readonly servername?: string;
}

/** Options of {@link openTcpStream}. */
export interface OpenTcpStreamOptions extends Omit<SocketStreamOptions, "socket"> {
  /** Milliseconds to wait for the connection before rejecting with `ERR_CONNECT_TIMEOUT`. Default: the OS's. */
  readonly connectTimeout?: number;
  /** `false`: resolve `null` instead of rejecting when the connection fails, as Lisp's `:errorp nil`. */
  readonly errorp?: boolean;
  /** Local address to connect from. */
  readonly localAddress?: string;
  /** Local port to connect from (LispWorks' `:local-port`); default: one the OS picks. */
  readonly localPort?: number;
  /** Send each write at once, without waiting to fill a segment (`TCP_NODELAY`): for request/response talk. */
  readonly nodelay?: boolean;
  /** Probe an idle connection so that a peer that vanished is noticed (`SO_KEEPALIVE`): `true`, or the idle ms before the first probe. */
  readonly keepalive?: boolean | number;
  /** With `tls`: the name sent for SNI (`tlsext-host-name`) and checked against the certificate; default `host`. */
  readonly servername?: string;
  /**
   * With `tls`: most ms the handshake may take once connected (default 10000), then the
   * connection is dropped with `ERR_CONNECT_TIMEOUT`: a server that accepts and never answers
   * does not hold the caller for ever.
   */
  readonly handshakeTimeout?: number;
  /** Speak TLS: `true` to verify the server against the system's CAs, or {@link ClientTlsOptions}. */
  readonly tls?: boolean | ClientTlsOptions;
  /**
   * For a listener server started with a token: sent at once as the first line
   * (`token SECRET`), before anything the caller writes.
   */
  readonly token?: string;
}

/**
 * Connects to `host` on `service` (a port, numeric string or service name) and resolves to a
 * {@link SocketStream}, as LispWorks' `comm:open-tcp-stream`. A refused, unreachable or
 * timed-out connection rejects with a {@link ConfabError} naming host and port, or resolves
 * `null` with `errorp: false`. A stream opened inside a process belongs to it.
 *
 * A service that is a path (`unix:PATH`, or a string containing `/`) connects to that Unix
 * domain socket; `host` is then only the name a TLS certificate is checked against. With
 * `tls`, the stream resolves once the handshake has succeeded and the server's certificate
 * has been verified; a failed handshake rejects with the TLS error's code.
 *
 * @example
 * ```ts
 * const talk = await openTcpStream("localhost", 10244, { connectTimeout: 2000 });
 * talk.writeLine("Hello self.");
 * talk.forceOutput();
 * console.log(await talk.readLine());
 * talk.close();
 * ```
 */
export function openTcpStream(
  host: string,
  service: number | string,
  options: OpenTcpStreamOptions & { errorp: false },
): Promise<SocketStream | null>;
export function openTcpStream(
  host: string,
  service: number | string,
  options?: OpenTcpStreamOptions,
): Promise<SocketStream>;
export async function openTcpStream(
  host: string,
  service: number | string,
  options: OpenTcpStreamOptions = {},
): Promise<SocketStream | null> {
  const {
    connectTimeout,
    errorp,
    localAddress,
    localPort,
    nodelay,
    keepalive,
    servername,
    handshakeTimeout,
    tls: tlsOptions,
    token,
    ...streamOptions
  } = options;
  try {
    if (token !== undefined) validateToken(token);
    const path = unixSocketPath(service);
    const target: Target = path === undefined ? { host, port: resolveService(service) } : { host, path };
    const secure = tlsOptions === true ? {} : tlsOptions === false ? undefined : tlsOptions;
    const socket = await connect(
      target,
      connectTimeout,
      { localAddress, localPort },
      secure === undefined ? undefined : { ...secure, ...(servername === undefined ? {} : { servername }) },
      handshakeTimeout ?? DEFAULT_HANDSHAKE_TIMEOUT_MS,
    );
    if (nodelay === true) socket.setNoDelay(true);
    if (keepalive !== undefined && keepalive !== false) socket.setKeepAlive(true, keepalive === true ? 0 : keepalive);
    const stream = new SocketStream({ ...streamOptions, socket });
    if (token !== undefined) {
      stream.writeLine(tokenLine(token));
      stream.forceOutput();
    }
    return stream;
  } catch (error) {
    if (errorp === false) return null;
    throw error;
  }
}

/** Where to connect: a TCP host and port, or a Unix socket's path (`host` then names the peer for TLS). */
type Target = { readonly host: string; readonly port: number } | { readonly host: string; readonly path: string };

/** Where a connection starts from. */
interface LocalEndOptions {
  readonly localAddress: string | undefined;
  readonly localPort: number | undefined;
}

function connect(
  target: Target,
  timeout: number | undefined,
  local: LocalEndOptions,
  secure: ClientTlsOptions | undefined,
  handshakeTimeout: number,
): Promise<net.Socket> {
  const localOptions = {
    ...(local.localAddress === undefined ? {} : { localAddress: local.localAddress }),
    ...(local.localPort === undefined ? {} : { localPort: local.localPort }),
  };
  const where = "path" in target ? target.path : formatHostPort(target.host, target.port);
  const address = "path" in target ? { path: target.path } : { host: target.host, port: target.port };
  return new Promise((resolve, reject) => {
    const socket =
      secure === undefined
        ? net.connect({ ...address, allowHalfOpen: true, ...localOptions })
        : tls.connect(tlsConnectOptions(target, { ...address, ...localOptions }, secure));
    let timer: NodeJS.Timeout | undefined;
    let handshakeTimer: NodeJS.Timeout | undefined;
    // A limit passed: the socket is dropped (its late errors ignored) and the caller told why.
    const giveUp = (why: string): void => {
      clearTimeout(timer);
      clearTimeout(handshakeTimer);
      socket.off("error", onError);
      socket.on("error", () => undefined);
      socket.destroy();
      reject(new ConfabError(ErrorCodes.CONNECT_TIMEOUT, `cannot connect to ${where}: ${why}`));
    };
    const onError = (error: NodeJS.ErrnoException): void => {
      clearTimeout(timer);
      clearTimeout(handshakeTimer);
      const code = systemCode({ code: error.code ?? firstCode(error) }, ErrorCodes.CONNECT);
      const why =
        secure !== undefined && !CONNECT_CODES.has(code)
          ? `TLS handshake failed: ${error.message} (${code})`
          : describe(code, error, "path" in target ? target.path : undefined);
      reject(new ConfabError(code, `cannot connect to ${where}: ${why}`, { cause: error }));
    };
    socket.once("error", onError);
    socket.once(secure === undefined ? "connect" : "secureConnect", () => {
      clearTimeout(timer);
      clearTimeout(handshakeTimer);
      socket.off("error", onError);
      resolve(socket);
    });
    if (timeout !== undefined && timeout > 0) {
      timer = setTimeout(() => {
        giveUp(`no answer within ${timeout} ms (connectTimeout)`);
      }, timeout);
    }
    if (secure !== undefined && handshakeTimeout > 0) {
      // The clock starts once the TCP connection is up: connectTimeout covers reaching the server.
      socket.once("connect", () => {
        handshakeTimer = setTimeout(() => {
          giveUp(`the TLS handshake did not finish within ${handshakeTimeout} ms (handshakeTimeout)`);
        }, handshakeTimeout);
      });
    }
  });
}

// Node tries every address of a name (happy eyeballs) and reports an AggregateError.
function firstCode(error: Error): string | undefined {
  if (error instanceof AggregateError) {
    for (const inner of error.errors) {
      const code = (inner as NodeJS.ErrnoException).code;
      if (code !== undefined) return code;
    }
  }
  return undefined;
}

function tlsConnectOptions(target: Target, address: object, secure: ClientTlsOptions): tls.ConnectionOptions {
  // `allowHalfOpen` is honoured by tls.connect, though the typings leave it out.
  const options: tls.ConnectionOptions & { allowHalfOpen: boolean } = {
    ...address,
    host: target.host,
    allowHalfOpen: true,
    ...(secure.ca === undefined ? {} : { ca: secure.ca as string | Buffer | (string | Buffer)[] }),
    ...(secure.cert === undefined ? {} : { cert: secure.cert }),
    ...(secure.key === undefined ? {} : { key: secure.key }),
    ...(secure.passphrase === undefined ? {} : { passphrase: secure.passphrase }),
    ...(secure.servername === undefined ? {} : { servername: secure.servername }),
  };
  return options;
}

// Failures to reach the server at all, as opposed to a TLS handshake that went wrong.
const CONNECT_CODES = new Set([
  "ECONNREFUSED",
  "ENOTFOUND",
  "ETIMEDOUT",
  "EHOSTUNREACH",
  "ENETUNREACH",
  "ENOENT",
  "EACCES",
  "EAI_AGAIN",
]);

function describe(code: string, error: Error, path: string | undefined): string {
  const unix = path !== undefined;
  switch (code) {
    case "ECONNREFUSED":
      return unix
        ? "connection refused (nothing is listening on this socket)"
        : "connection refused (nothing is listening there)";
    case "ENOENT": {
      if (!unix) return `${error.message} (${code})`;
      const directory = missingSocketDirectory(path);
      return directory === undefined
        ? "no such socket (nothing is listening there)"
        : `no such socket: the directory ${directory} does not exist`;
    }
    case "EACCES":
      return unix ? "permission denied (the socket is another user's)" : `${error.message} (${code})`;
    case "ENOTFOUND":
      return "unknown host";
    case "ETIMEDOUT":
      return "timed out";
    case "EHOSTUNREACH":
    case "ENETUNREACH":
      return "host unreachable";
    default:
      return `${error.message} (${code})`;
  }
}
