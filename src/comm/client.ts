import net from "node:net";
import { ConfabError, ErrorCodes } from "../errors.js";
import { resolveService } from "./services.js";
import { formatHostPort, SocketStream, type SocketStreamOptions } from "./socket-stream.js";

/** Options of {@link openTcpStream}. */
export interface OpenTcpStreamOptions extends Omit<SocketStreamOptions, "socket"> {
  /** Milliseconds to wait for the connection before rejecting with `ERR_CONNECT_TIMEOUT`. Default: the OS's. */
  readonly connectTimeout?: number;
  /** `false`: resolve `null` instead of rejecting when the connection fails, as Lisp's `:errorp nil`. */
  readonly errorp?: boolean;
  /** Local address to connect from. */
  readonly localAddress?: string;
}

/**
 * Connects to `host` on `service` (a port, numeric string or service name) and resolves to a
 * {@link SocketStream}, as LispWorks' `comm:open-tcp-stream`. A refused, unreachable or
 * timed-out connection rejects with a {@link ConfabError} naming host and port, or resolves
 * `null` with `errorp: false`. A stream opened inside a process belongs to it.
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
export function openTcpStream(host: string, service: number | string, options: OpenTcpStreamOptions & { errorp: false }): Promise<SocketStream | null>;
export function openTcpStream(host: string, service: number | string, options?: OpenTcpStreamOptions): Promise<SocketStream>;
export async function openTcpStream(host: string, service: number | string, options: OpenTcpStreamOptions = {}): Promise<SocketStream | null> {
  const { connectTimeout, errorp, localAddress, ...streamOptions } = options;
  try {
    const port = resolveService(service);
    const socket = await connect(host, port, connectTimeout, localAddress);
    return new SocketStream({ ...streamOptions, socket });
  } catch (error) {
    if (errorp === false) return null;
    throw error;
  }
}

function connect(host: string, port: number, timeout: number | undefined, localAddress: string | undefined): Promise<net.Socket> {
  const where = formatHostPort(host, port);
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host, port, allowHalfOpen: true, ...(localAddress === undefined ? {} : { localAddress }) });
    let timer: NodeJS.Timeout | undefined;
    const onError = (error: NodeJS.ErrnoException): void => {
      clearTimeout(timer);
      const code = error.code ?? firstCode(error) ?? "ERR_CONNECT";
      reject(new ConfabError(code, `cannot connect to ${where}: ${describe(code, error)}`, { cause: error }));
    };
    socket.once("error", onError);
    socket.once("connect", () => {
      clearTimeout(timer);
      socket.off("error", onError);
      resolve(socket);
    });
    if (timeout !== undefined && timeout > 0) {
      timer = setTimeout(() => {
        socket.off("error", onError);
        socket.on("error", () => undefined);
        socket.destroy();
        reject(new ConfabError(ErrorCodes.CONNECT_TIMEOUT, `cannot connect to ${where}: no answer within ${timeout} ms (connectTimeout)`));
      }, timeout);
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

function describe(code: string, error: Error): string {
  switch (code) {
    case "ECONNREFUSED":
      return "connection refused (nothing is listening there)";
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
