import { existsSync } from "node:fs";
import { isAbsolute, resolve } from "node:path";
import { pathToFileURL } from "node:url";
import { parseArgs } from "node:util";
import { ConfabError, ErrorCodes } from "../errors.js";
import { startUpServer, serverTerminate, type ConnectionFunction } from "../comm/server.js";
import type { Socket } from "node:net";
import { listAllProcesses } from "../mp/registry.js";
import { formatHostPort } from "../comm/socket-stream.js";
import { processJoin, processKill } from "../mp/process.js";

/** How long `confab serve` lets connection processes finish after SIGINT/SIGTERM before killing them (`--drain-timeout`). */
const DRAIN_MS = 5000;

function numberOption(text: string | undefined, name: string): number | undefined {
  if (text === undefined) return undefined;
  const value = Number(text);
  if (!Number.isFinite(value) || value < 0) throw new ConfabError(ErrorCodes.INVALID_ARGUMENT, `${name} must be a non-negative number, got "${text}"`);
  return value;
}

/**
 * `confab serve`: starts the listener server, or a server calling a user's exported function,
 * and stops cleanly on SIGINT/SIGTERM: the port is closed at once (no new connections),
 * running processes get `--drain-timeout` ms (default 5000) to finish, then are killed, and
 * the command exits 0. Set the drain below your orchestrator's stop grace period.
 */
export async function serve(argv: string[]): Promise<never> {
  const { values } = parseArgs({
    args: argv,
    options: {
      service: { type: "string" },
      host: { type: "string" },
      function: { type: "string" },
      announce: { type: "boolean", default: false },
      "eval-timeout": { type: "string" },
      "max-connections": { type: "string" },
      "idle-timeout": { type: "string" },
      "drain-timeout": { type: "string" },
    },
    strict: true,
  });
  // Listen for the signals before anything is announced: a signal that arrives while no
  // handler is installed kills the process outright.
  const stopRequested = new Promise<void>((done) => {
    const stop = (): void => {
      process.off("SIGINT", stop);
      process.off("SIGTERM", stop);
      done();
    };
    process.on("SIGINT", stop);
    process.on("SIGTERM", stop);
  });
  const fn = values.function === undefined ? undefined : await loadFunction(values.function);
  const evalTimeout = numberOption(values["eval-timeout"], "--eval-timeout");
  const maxConnections = numberOption(values["max-connections"], "--max-connections");
  const idleTimeout = numberOption(values["idle-timeout"], "--idle-timeout");
  const drainTimeout = numberOption(values["drain-timeout"], "--drain-timeout") ?? DRAIN_MS;
  // A numeric service given on the command line is a port, named as a number (`10243 server`).
  const service = values.service === undefined ? undefined : /^\d+$/.test(values.service) ? Number(values.service) : values.service;
  const server = await startUpServer({
    ...(fn === undefined ? {} : { function: fn }),
    ...(service === undefined ? {} : { service }),
    ...(values.host === undefined ? {} : { address: values.host }),
    ...(evalTimeout === undefined ? {} : { evalTimeout }),
    ...(maxConnections === undefined ? {} : { maxConnections }),
    ...(idleTimeout === undefined ? {} : { idleTimeout }),
  });
  if (values.announce) {
    const where = formatHostPort(server.address, server.port);
    const hint = fn === undefined ? `; connect with: npx confab connect ${server.address === "127.0.0.1" ? "" : `${server.address} `}${server.port}` : "";
    process.stdout.write(`${server.name}: listening on ${where}${hint}\n`);
  }

  await stopRequested;
  serverTerminate(server);
  const others = listAllProcesses();
  await Promise.all(others.map((p) => processJoin(p, { timeout: drainTimeout })));
  for (const p of listAllProcesses()) processKill(p);
  // Connections a user's function kept without a process are not ours to wait for.
  process.exit(0);
}

/** Imports `MODULE#EXPORT` (default export without `#`); MODULE is a path or a package name. */
async function loadFunction(spec: string): Promise<ConnectionFunction<Socket>> {
  const hash = spec.lastIndexOf("#");
  const modulePart = hash === -1 ? spec : spec.slice(0, hash);
  const exportName = hash === -1 ? "default" : spec.slice(hash + 1);
  // A file that exists relative to the working directory wins over a package of that name.
  const looksLikePath = modulePart.startsWith(".") || isAbsolute(modulePart) || existsSync(modulePart);
  const specifier = looksLikePath ? pathToFileURL(resolve(modulePart)).href : modulePart;
  let loaded: Record<string, unknown>;
  try {
    loaded = (await import(specifier)) as Record<string, unknown>;
  } catch (error) {
    throw new ConfabError(ErrorCodes.INVALID_ARGUMENT, `--function: cannot import ${modulePart}: ${(error as Error).message}`, { cause: error });
  }
  const fn = loaded[exportName];
  if (typeof fn !== "function") {
    throw new ConfabError(ErrorCodes.INVALID_ARGUMENT, `--function: ${modulePart} has no exported function "${exportName}"`);
  }
  return fn as ConnectionFunction<Socket>;
}
