/**
 * The command-line side of a listener client: the flags that say where a listener server is and
 * as whom ({@link LISTENER_FLAGS}), read into a `ListenerEndpoint` by {@link listenerEndpoint}
 * (credentials read from files), for `confab connect`, `confab eval` and `confab mcp`. The
 * client itself is `listener/listener-client.ts`.
 * @module
 */
import { hostname, userInfo } from "node:os";
import type { parseArgs } from "node:util";
import { ConfabError, ErrorCodes } from "../errors.js";
import { resolveService } from "../comm/services.js";
import { unixSocketPath } from "../comm/endpoint.js";
import { DEFAULT_CONNECT_TIMEOUT_MS, type ConnectTarget, type ListenerEndpoint } from "../listener/listener-client.js";
import { readPem, readToken } from "./credentials.js";

/**
 * The command-line flags that say where a listener server is and who is asking, for
 * `util.parseArgs`: `--host`, `--name`, `--tls`, `--ca`, `--cert`, `--key`, `--token-file`,
 * `--connect-timeout`.
 */
export const LISTENER_FLAGS = {
  name: { type: "string" },
  host: { type: "string" },
  tls: { type: "boolean", default: false },
  ca: { type: "string" },
  cert: { type: "string" },
  key: { type: "string" },
  "token-file": { type: "string" },
  "connect-timeout": { type: "string" },
} as const;

/** The values of {@link LISTENER_FLAGS} as `util.parseArgs` gives them (each may be left out). */
export type ListenerFlagValues = Partial<ReturnType<typeof parseArgs<{ options: typeof LISTENER_FLAGS }>>["values"]>;

/** `user@host`: a session's name when none is given, so that `ps()` on the server says whose it is. */
export function defaultSessionName(): string {
  let user = "user";
  try {
    user = userInfo().username;
  } catch {
    // no passwd entry (containers): keep the generic name
  }
  return `${user}@${hostname()}`;
}

/**
 * Reads the flags and positionals (`[HOST] SERVICE`) of a client command into an endpoint;
 * throws a `ConfabError` (`ERR_INVALID_ARGUMENT`) saying what is wrong. SERVICE may be a Unix
 * socket path (`unix:PATH`, or anything with a `/`); HOST defaults to `--host`, then 127.0.0.1.
 */
export function listenerEndpoint(
  values: ListenerFlagValues,
  positionals: readonly [string] | readonly [string, string],
): ListenerEndpoint {
  if ((values.cert === undefined) !== (values.key === undefined)) {
    throw new ConfabError(
      ErrorCodes.INVALID_ARGUMENT,
      "--cert and --key go together: a client certificate and its private key",
    );
  }
  const service = positionals[positionals.length - 1] as string;
  const host = positionals.length === 2 ? positionals[0] : (values.host ?? "127.0.0.1");
  const path = unixSocketPath(service);
  const target: ConnectTarget = path === undefined ? { host, port: resolveService(service) } : { host, path };
  const secure = values.tls === true || values.ca !== undefined || values.cert !== undefined;
  return {
    target,
    tls: secure
      ? {
          ...(values.ca === undefined ? {} : { ca: readPem(values.ca, "--ca") }),
          ...(values.cert === undefined ? {} : { cert: readPem(values.cert, "--cert") }),
          ...(values.key === undefined ? {} : { key: readPem(values.key, "--key") }),
        }
      : undefined,
    token: readToken(values["token-file"]),
    name: values.name ?? defaultSessionName(),
    connectTimeout: connectTimeout(values["connect-timeout"]),
  };
}

function connectTimeout(text: string | undefined): number {
  if (text === undefined) return DEFAULT_CONNECT_TIMEOUT_MS;
  const ms = Number(text);
  if (!Number.isInteger(ms) || ms <= 0) {
    throw new ConfabError(ErrorCodes.INVALID_ARGUMENT, `--connect-timeout: a number of ms > 0, not ${text}`);
  }
  return ms;
}
