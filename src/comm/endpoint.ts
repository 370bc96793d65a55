import net from "node:net";
import { ConfabError } from "../errors.js";
import { processContext } from "../mp/registry.js";
import { formatHostPort } from "./socket-stream.js";

/** Where and how a server listens. */
export interface EndpointSpec {
  /** The port to bind (0: any free port). */
  readonly port: number;
  /** The local address to bind. */
  readonly host: string;
  /** The kernel's accept queue length. */
  readonly backlog?: number | undefined;
  /** Used in error messages: the process that wanted the endpoint. */
  readonly processName: string;
}

/** A bound, listening endpoint. */
export interface BoundEndpoint {
  readonly server: net.Server;
  readonly address: string;
  readonly port: number;
  readonly family: string;
}

/**
 * Creates and binds a listening socket. The socket is made outside any process: the async
 * context it is created in is what its connection callbacks run in, and a server's `function`
 * must run outside any process. Rejects with a {@link ConfabError} that names the endpoint.
 */
export async function bindEndpoint(spec: EndpointSpec): Promise<BoundEndpoint> {
  const server = processContext.exit(() => net.createServer({ allowHalfOpen: true, pauseOnConnect: true }));
  try {
    await processContext.exit(() => listen(server, spec));
  } catch (error) {
    throw bindError(error as NodeJS.ErrnoException, spec);
  }
  const bound = server.address() as net.AddressInfo;
  return { server, address: bound.address, port: bound.port, family: bound.family };
}

function listen(server: net.Server, spec: EndpointSpec): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen({ port: spec.port, host: spec.host, backlog: spec.backlog }, () => {
      server.off("error", reject);
      resolve();
    });
  });
}

function bindError(error: NodeJS.ErrnoException, spec: EndpointSpec): ConfabError {
  const { host, port } = spec;
  const where = formatHostPort(host, port);
  const code = error.code ?? "ERR_LISTEN";
  const why =
    code === "EADDRINUSE"
      ? `${where} is already in use`
      : code === "EACCES"
        ? `permission denied to bind ${where} (ports below 1024 need privileges)`
        : code === "EADDRNOTAVAIL"
          ? `${host} is not an address of this machine`
          : code === "ENOTFOUND" || code === "EAI_AGAIN"
            ? `cannot resolve the address ${host}`
            : `cannot bind ${where}: ${error.message}`;
  return new ConfabError(code, `cannot start ${spec.processName}: ${why} (${code})`, { cause: error });
}
