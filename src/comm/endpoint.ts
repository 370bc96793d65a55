/**
 * Binding a server's listening socket: TCP, TLS over TCP, or a Unix domain socket (with or
 * without TLS).
 *
 * Services that name a Unix domain socket: `unix:PATH`, or any string containing a `/`
 * (`/run/app/confab.sock`, `./confab.sock`). No entry of a services database contains a
 * slash, so the two never collide. The path is made absolute against the working directory
 * when the server starts, so that the file can be removed later whatever the directory then.
 *
 * @module
 */
import { existsSync, lstatSync, chmodSync, unlinkSync } from "node:fs";
import net from "node:net";
import { dirname, resolve as resolvePath } from "node:path";
import tls from "node:tls";
import { ConfabError, ErrorCodes, systemCode, type ConfabErrorCode } from "../errors.js";
import { processContext } from "../mp/registry.js";
import { ReportLimiter, reportError } from "../report.js";
import { formatHostPort, peerOf } from "./address.js";
import { PROXY_HEADER_TIMEOUT_MS, readProxyHeader } from "./proxy-protocol.js";

/** Default ms a TLS client has to complete its handshake. */
export const DEFAULT_HANDSHAKE_TIMEOUT_MS = 10_000;

/** `family` of an endpoint that is a Unix domain socket. */
export const UNIX_FAMILY = "unix";

/**
 * TLS for a server (`startUpServer({ tls })`). With `ca`, only clients holding a certificate
 * signed by that CA get a connection at all: the others never reach the server's `function`.
 * PEM text or buffers, as `node:tls` takes them (read the files yourself: `readFileSync`).
 */
export interface ServerTlsOptions {
  /** The server's private key (PEM). */
  readonly key: string | Buffer;
  /** The server's certificate, followed by any intermediate certificates (PEM). */
  readonly cert: string | Buffer;
  /** Passphrase of an encrypted `key`. */
  readonly passphrase?: string;
  /** The CA certificate(s) client certificates must be signed by (PEM). */
  readonly ca?: string | Buffer | readonly (string | Buffer)[];
  /**
   * Require every client to present a certificate signed by `ca`; a client without one, or
   * with one signed by anyone else, is told so in one line and disconnected, and the failure
   * is reported. Default: `true` when `ca` is given. Needs `ca`: without it any certificate
   * from a public CA would do.
   */
  readonly requestCert?: boolean;
  /** Milliseconds a client has to complete the handshake before it is dropped (default 10000). */
  readonly handshakeTimeout?: number;
}

/** Where and how a server listens. */
export interface EndpointSpec {
  /** The port to bind (0: any free port). Ignored with `path`. */
  readonly port: number;
  /** The local address to bind. Ignored with `path`. */
  readonly host: string;
  /** A Unix domain socket to listen on instead of a TCP port (absolute path). */
  readonly path?: string | undefined;
  /** The kernel's accept queue length. */
  readonly backlog?: number | undefined;
  /** Bind with `SO_REUSEPORT` (see ServerOptions.reusePort). */
  readonly reusePort?: boolean | undefined;
  /** An inherited, already listening socket to serve instead of binding (systemd socket activation). */
  readonly fd?: number | undefined;
  /** Speak TLS: connections reach the server only once their handshake succeeded. */
  readonly tls?: ServerTlsOptions | undefined;
  /**
   * A PROXY-protocol header comes first on every connection. With TLS it precedes the
   * handshake (a TCP balancer sends it before relaying the client's bytes), so the endpoint
   * reads it; without TLS the server does.
   */
  readonly proxyProtocol?: boolean | undefined;
  /** Used in error messages: the process that wanted the endpoint. */
  readonly processName: string;
}

/** A bound, listening endpoint. */
export interface BoundEndpoint {
  readonly server: net.Server;
  /** The bound address, or the socket's path for a Unix domain socket. */
  readonly address: string;
  /** The bound port; 0 for a Unix domain socket, which has none. */
  readonly port: number;
  /** `IPv4`, `IPv6`, or `unix` ({@link UNIX_FAMILY}). */
  readonly family: string;
  /** `true` when the endpoint already read each connection's PROXY header (under TLS). */
  readonly proxyHandled?: boolean;
}

/**
 * The longest Unix socket path the OS takes, in bytes: `sun_path` holds 108 bytes on Linux
 * and 104 on macOS and the BSDs, the terminating NUL included. `undefined` where confab does
 * not know it (Windows names pipes, not files).
 */
export const MAX_UNIX_PATH_BYTES: number | undefined =
  process.platform === "linux"
    ? 107
    : process.platform === "darwin" ||
        process.platform === "freebsd" ||
        process.platform === "openbsd" ||
        process.platform === "netbsd"
      ? 103
      : undefined;

/**
 * The Unix domain socket a service names (`unix:PATH`, or a string containing `/`), as an
 * absolute path; `undefined` for a TCP service (a port or a service name). Servers and
 * clients share it so that the same service string works on both sides.
 *
 * Throws `ERR_SOCKET_PATH_TOO_LONG` when the absolute path is longer (in UTF-8 bytes) than
 * the OS takes ({@link MAX_UNIX_PATH_BYTES}): the OS would cut it short without a word,
 * binding a socket of another name (left behind, and a misleading `ENOENT`) or connecting to
 * one.
 */
export function unixSocketPath(service: number | string | undefined): string | undefined {
  if (typeof service !== "string") return undefined;
  const path = service.startsWith("unix:")
    ? service.slice("unix:".length)
    : service.includes("/")
      ? service
      : undefined;
  if (path === undefined) return undefined;
  if (path === "" || path.includes("\0")) {
    throw new ConfabError(ErrorCodes.INVALID_ARGUMENT, `${JSON.stringify(service)} is not a usable Unix socket path`);
  }
  const absolute = resolvePath(path);
  const bytes = Buffer.byteLength(absolute, "utf8");
  if (MAX_UNIX_PATH_BYTES !== undefined && bytes > MAX_UNIX_PATH_BYTES) {
    throw new ConfabError(
      ErrorCodes.SOCKET_PATH_TOO_LONG,
      `the Unix socket path ${absolute} is ${bytes} bytes; ${process.platform} takes at most ${MAX_UNIX_PATH_BYTES} (and would cut it short): choose a shorter path`,
    );
  }
  return absolute;
}

/**
 * @internal The directory of the Unix socket `path` when it does not exist (what an `ENOENT`,
 * or libuv's `EACCES` for a bind, then means), else `undefined`.
 */
export function missingSocketDirectory(path: string): string | undefined {
  const directory = dirname(path);
  return existsSync(directory) ? undefined : directory;
}

/** Whether a server with these TLS options admits only clients with a certificate signed by its CA. */
export function requiresClientCertificates(options: ServerTlsOptions | undefined): boolean {
  return options !== undefined && (options.requestCert ?? options.ca !== undefined) && options.ca !== undefined;
}

/** How an endpoint is named to people: `host:port`, or the socket's path. */
export function describeEndpoint(endpoint: Pick<BoundEndpoint, "address" | "port" | "family">): string {
  return endpoint.family === UNIX_FAMILY ? endpoint.address : formatHostPort(endpoint.address, endpoint.port);
}

/**
 * The line a server announces once it listens: `NAME: listening on WHERE`, with
 * ` (N workers)` for a service spread over workers. `confab serve` adds its hint to it.
 */
export function listeningLine(
  name: string,
  endpoint: Pick<BoundEndpoint, "address" | "port" | "family">,
  workers?: number,
): string {
  return `${name}: listening on ${describeEndpoint(endpoint)}${workers === undefined ? "" : ` (${workers} workers)`}`;
}

/**
 * Creates and binds a listening socket. The socket is made outside any process: the async
 * context it is created in is what its connection callbacks run in, and a server's `function`
 * must run outside any process. Rejects with a {@link ConfabError} that names the endpoint.
 *
 * A Unix domain socket is created with owner-only permissions (0600) from the start; a stale
 * socket file left by a crashed server is replaced, a live one is `EADDRINUSE`, and a path that
 * is not a socket is never deleted (`ERR_NOT_A_SOCKET`). Closing the server removes the file.
 */
export async function bindEndpoint(spec: EndpointSpec): Promise<BoundEndpoint> {
  const where =
    spec.fd !== undefined ? `inherited socket (fd ${spec.fd})` : (spec.path ?? formatHostPort(spec.host, spec.port));
  const server = processContext.exit(() => createServer(spec, where));
  try {
    if (spec.fd !== undefined) {
      const fd = spec.fd;
      await processContext.exit(() => listenFd(server, fd, spec.backlog));
    } else if (spec.path !== undefined) {
      await removeStaleSocket(spec.path, spec.processName);
      await processContext.exit(() => listenUnix(server, spec.path as string, spec.backlog));
    } else {
      const reuse = spec.reusePort === true ? { reusePort: true } : {};
      await processContext.exit(() =>
        listenOn(server, { port: spec.port, host: spec.host, backlog: spec.backlog, ...reuse }),
      );
    }
  } catch (error) {
    if (error instanceof ConfabError) throw error;
    throw bindError(error as NodeJS.ErrnoException, spec, where);
  }
  if (spec.path !== undefined) {
    unlinkAtExit(server, spec.path);
    return {
      server,
      address: spec.path,
      port: 0,
      family: UNIX_FAMILY,
      proxyHandled: server instanceof TlsEndpointServer && spec.proxyProtocol === true,
    };
  }
  const bound = server.address();
  if (bound === null || typeof bound === "string") {
    // An inherited Unix domain socket: its path, if any, is all there is to say.
    return {
      server,
      address: bound ?? where,
      port: 0,
      family: UNIX_FAMILY,
      proxyHandled: server instanceof TlsEndpointServer && spec.proxyProtocol === true,
    };
  }
  return {
    server,
    address: bound.address,
    port: bound.port,
    family: bound.family,
    proxyHandled: server instanceof TlsEndpointServer && spec.proxyProtocol === true,
  };
}

function createServer(spec: EndpointSpec, where: string): net.Server {
  if (spec.tls === undefined) return net.createServer({ allowHalfOpen: true, pauseOnConnect: true });
  return new TlsEndpointServer(spec.tls, spec.processName, where, spec.proxyProtocol === true);
}

/** Listens on an inherited socket: `server.listen({ fd })`, the handle form of `listen`. */
function listenFd(server: net.Server, fd: number, backlog: number | undefined): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen({ fd }, backlog, () => {
      server.off("error", reject);
      resolve();
    });
  });
}

/** @internal Settles once `server` (a `net` or an `http` server) has stopped listening: a server process's body. */
export function untilServerClosed(server: net.Server): Promise<void> {
  return new Promise((resolve) => {
    if (!server.listening) resolve();
    else server.once("close", () => resolve());
  });
}

/** @internal Listens `server` (a `net` or an `http` server); rejects with the OS's error. */
export function listenOn(server: net.Server, options: net.ListenOptions): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(options, () => {
      server.off("error", reject);
      resolve();
    });
  });
}

/**
 * Binds with a umask that leaves the owner alone with the socket: the file never exists with
 * wider permissions. (Node binds synchronously inside `listen`, so the umask is restored
 * before anything else runs.) Where the umask cannot be set (worker threads), the file gets
 * the process's umask until the `chmod` right after binding; connecting needs write
 * permission, which the usual umask 022 does not give others.
 */
async function listenUnix(server: net.Server, path: string, backlog: number | undefined): Promise<void> {
  let previous: number | undefined;
  try {
    previous = process.umask(0o177);
  } catch {
    previous = undefined;
  }
  let listening: Promise<void>;
  try {
    listening = listenOn(server, { path, backlog });
  } finally {
    if (previous !== undefined) process.umask(previous);
  }
  await listening;
  try {
    chmodSync(path, 0o600);
  } catch (error) {
    server.close();
    throw error;
  }
}

/**
 * Makes room for a Unix socket at `path`: nothing there is fine; a socket nobody answers on
 * is a leftover of a crashed run and is removed; a socket that answers belongs to a live
 * server (`EADDRINUSE`); anything else (a file, a directory, a link) is not ours to delete.
 */
async function removeStaleSocket(path: string, processName: string): Promise<void> {
  let stat;
  try {
    stat = lstatSync(path);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return;
    throw error;
  }
  if (!stat.isSocket()) {
    throw new ConfabError(
      ErrorCodes.NOT_A_SOCKET,
      `cannot start ${processName}: ${path} exists and is not a socket; refusing to replace it (remove it, or choose another path)`,
    );
  }
  const answer = await probeSocket(path);
  if (answer === "live") {
    throw new ConfabError(
      "EADDRINUSE",
      `cannot start ${processName}: ${path} is already in use (a server answers on it) (EADDRINUSE)`,
    );
  }
  if (answer !== "stale") {
    throw new ConfabError(
      answer,
      `cannot start ${processName}: cannot tell whether ${path} is in use (${answer}); not replacing it`,
    );
  }
  // The same file as the one probed, still: never unlink something swapped in meanwhile.
  const again = lstatSync(path, { throwIfNoEntry: false });
  if (again === undefined) return;
  if (!again.isSocket() || again.ino !== stat.ino || again.dev !== stat.dev) {
    throw new ConfabError(
      "EADDRINUSE",
      `cannot start ${processName}: ${path} changed while it was checked (EADDRINUSE)`,
    );
  }
  unlinkSync(path);
}

/** `live` if a server accepts a connection on the socket, `stale` if connecting is refused, else the error code. */
function probeSocket(path: string): Promise<"live" | "stale" | ConfabErrorCode> {
  return new Promise((resolve) => {
    const probe = net.connect({ path });
    const timer = setTimeout(() => finish("live"), 2000);
    function finish(answer: "live" | "stale" | ConfabErrorCode): void {
      clearTimeout(timer);
      probe.destroy();
      resolve(answer);
    }
    probe.once("connect", () => finish("live"));
    probe.once("error", (error: NodeJS.ErrnoException) => {
      const code = systemCode(error, ErrorCodes.CONNECT);
      // ENOENT: removed since it was looked at, which is as good as stale.
      finish(code === "ECONNREFUSED" || code === "ENOENT" ? "stale" : code);
    });
  });
}

// Socket files of servers still listening when the program exits without closing them: a
// later start would cope with them, but tidy programs leave none behind.
const unixSockets = new Map<net.Server, string>();
let exitHookInstalled = false;

function unlinkAtExit(server: net.Server, path: string): void {
  unixSockets.set(server, path);
  server.once("close", () => unixSockets.delete(server));
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.once("exit", () => {
    for (const [listening, socketPath] of unixSockets) {
      if (!listening.listening) continue;
      try {
        unlinkSync(socketPath);
      } catch {
        // already gone
      }
    }
  });
}

/**
 * @internal The error for a failed bind: what wanted the endpoint (`spec.processName`), where,
 * and why in words, with the OS's code as its `code`.
 */
export function bindError(
  error: NodeJS.ErrnoException,
  spec: Pick<EndpointSpec, "host" | "path" | "processName">,
  where: string,
): ConfabError {
  const { host } = spec;
  const unix = spec.path !== undefined;
  // libuv reports a Unix socket whose directory is missing as EACCES (as Windows would):
  // say what is wrong, with the code that says it.
  const missingDirectory =
    unix && (error.code === "EACCES" || error.code === "ENOENT") ? missingSocketDirectory(spec.path) : undefined;
  const code = missingDirectory !== undefined ? "ENOENT" : systemCode(error, ErrorCodes.LISTEN);
  const why =
    missingDirectory !== undefined
      ? `the directory ${missingDirectory} of the socket ${where} does not exist`
      : code === "EADDRINUSE"
        ? `${where} is already in use`
        : code === "EACCES"
          ? unix
            ? `permission denied to create the socket ${where}`
            : `permission denied to bind ${where} (ports below 1024 need privileges)`
          : code === "EADDRNOTAVAIL"
            ? `${host} is not an address of this machine`
            : code === "ENOTFOUND" || code === "EAI_AGAIN"
              ? `cannot resolve the address ${host}`
              : (code === "ENAMETOOLONG" || code === "EINVAL") && unix
                ? `the socket path ${where} is too long${MAX_UNIX_PATH_BYTES === undefined ? "" : ` (at most ${MAX_UNIX_PATH_BYTES} bytes)`}`
                : `cannot bind ${where}: ${error.message}`;
  return new ConfabError(code, `cannot start ${spec.processName}: ${why} (${code})`, { cause: error });
}

/**
 * A listening socket that speaks TLS and, to its users, looks like a plain `net.Server`
 * whose `connection` event carries sockets that have completed their handshake: raw
 * connections are handed to an internal `tls.Server` (which never listens itself), and only
 * its secure connections are emitted. Handshakes run concurrently and never hold up the
 * server's one-at-a-time `function`; a failed one is reported (a few per interval, so a scan
 * cannot flood the log) and affects nobody else.
 */
class TlsEndpointServer extends net.Server {
  readonly #tls: tls.Server;
  readonly #requireCert: boolean;
  readonly #name: string;
  readonly #reports = new ReportLimiter(5, 10_000);

  readonly #proxyProtocol: boolean;

  constructor(options: ServerTlsOptions, name: string, where: string, proxyProtocol = false) {
    super({ allowHalfOpen: true });
    this.#name = name;
    this.#proxyProtocol = proxyProtocol;
    const what = `${name} on ${where}`;
    this.#requireCert = requiresClientCertificates(options);
    if (options.requestCert === true && options.ca === undefined) {
      throw new ConfabError(
        ErrorCodes.INVALID_ARGUMENT,
        `cannot start ${what}: tls.requestCert needs tls.ca, the CA that signs the client certificates`,
      );
    }
    const handshakeTimeout = options.handshakeTimeout ?? DEFAULT_HANDSHAKE_TIMEOUT_MS;
    try {
      this.#tls = tls.createServer({
        key: options.key,
        cert: options.cert,
        ...(options.passphrase === undefined ? {} : { passphrase: options.passphrase }),
        ...(options.ca === undefined ? {} : { ca: options.ca as string | Buffer | (string | Buffer)[] }),
        requestCert: this.#requireCert,
        // Checked here, in #onSecure, so that a refused certificate is reported and told why.
        rejectUnauthorized: false,
        handshakeTimeout,
        allowHalfOpen: true,
      });
    } catch (error) {
      throw new ConfabError(
        ErrorCodes.INVALID_ARGUMENT,
        `cannot start ${what}: invalid TLS key or certificate: ${(error as Error).message}`,
        { cause: error },
      );
    }
    this.#tls.on("secureConnection", this.#onSecure);
    this.#tls.on("tlsClientError", this.#onHandshakeError);
  }

  /** Raw connections go to the TLS layer; the others (`listening`, `error`, `close`) as usual. */
  override emit(event: string | symbol, ...args: unknown[]): boolean {
    if (event === "connection") {
      const raw = args[0] as net.Socket;
      raw.on("error", ignoreError);
      if (!this.#proxyProtocol) {
        this.#tls.emit("connection", raw);
        return true;
      }
      raw.pause();
      readProxyHeader(raw, PROXY_HEADER_TIMEOUT_MS).then(
        () => {
          this.#tls.emit("connection", raw);
        },
        (error: unknown) => {
          raw.destroy();
          this.#report(`connection from ${peerOf(raw)} refused`, error as Error);
        },
      );
      return true;
    }
    return super.emit(event, ...args);
  }

  readonly #onSecure = (socket: tls.TLSSocket): void => {
    socket.on("error", ignoreError);
    if (!this.listening) {
      // Closed while this client was still shaking hands: it never reaches `function`.
      socket.destroy();
      return;
    }
    if (this.#requireCert && !socket.authorized) {
      // Node puts the verification error's code (a string) here, whatever the typings say.
      const reason: unknown = socket.authorizationError;
      const presented = Object.keys(socket.getPeerCertificate()).length > 0;
      const why = !presented
        ? "no client certificate"
        : typeof reason === "string"
          ? reason
          : reason instanceof Error
            ? reason.message
            : "not verified";
      this.#report(
        `TLS client ${peerOf(socket)} refused`,
        new ConfabError(ErrorCodes.TLS_CLIENT_REFUSED, `client certificate refused: ${why}`),
      );
      socket.end("Error: a client certificate signed by the server's CA is required\n");
      socket.resume(); // what the client sent is drained unread
      socket.setTimeout(1000, () => socket.destroy());
      return;
    }
    // The client a PROXY header named (on the raw socket) is the TLS socket's peer too.
    // (Node keeps the wrapped socket as `_parent`.)
    const raw = (socket as tls.TLSSocket & { _parent?: net.Socket })._parent;
    if (this.#proxyProtocol && raw !== undefined && Object.hasOwn(raw, "remoteAddress")) {
      Object.defineProperties(socket, {
        remoteAddress: { value: raw.remoteAddress, configurable: true },
        remotePort: { value: raw.remotePort, configurable: true },
        remoteFamily: { value: raw.remoteFamily, configurable: true },
      });
    }
    // As a plain server's handle: paused, so that no byte is lost before a stream is made.
    socket.pause();
    super.emit("connection", socket);
  };

  readonly #onHandshakeError = (error: Error, socket: tls.TLSSocket): void => {
    socket.destroy();
    if (this.listening) this.#report(`TLS handshake with ${peerOf(socket, "a local client")} failed`, error);
  };

  #report(what: string, error: Error): void {
    const suppressed = this.#reports.allow();
    if (suppressed === false) return;
    const bound = this.address();
    const where = typeof bound === "string" ? bound : bound === null ? "?" : formatHostPort(bound.address, bound.port);
    const more = suppressed > 0 ? ` (and ${suppressed} similar failures not reported)` : "";
    reportError(`${this.#name} on ${where}: ${what}${more}`, error);
  }
}

function ignoreError(): void {
  // Handshake failures arrive as tlsClientError; later ones go to whoever owns the socket.
}
