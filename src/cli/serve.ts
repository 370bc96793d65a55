import { existsSync } from "node:fs";
import { isAbsolute, resolve } from "node:path";
import { pathToFileURL } from "node:url";
import { parseArgs } from "node:util";
import { ConfabError, ErrorCodes } from "../errors.js";
import { startUpServer, serverTerminate, ClusterServerProcess, type ConnectionFunction } from "../index.js";
import type { Socket } from "node:net";
import { listAllProcesses } from "../mp/registry.js";
import { jsonLogger, textLogger, type Logger } from "../comm/server-log.js";
import { processKill, processTerminate } from "../mp/process.js";
import { listeningLine, type ServerTlsOptions } from "../comm/endpoint.js";
import { readCredentials, readPem } from "./credentials.js";
import { parseMonitorFlag } from "./monitor-flag.js";
import { monitorOf } from "../monitor/attach.js";

/** How long `confab serve` lets connection processes finish after SIGINT/SIGTERM before killing them (`--drain-timeout`). */
const DRAIN_MS = 5000;
/** With `--workers`: how much longer than the drain the primary waits for a worker to exit. */
const WORKER_EXIT_MARGIN_MS = 2000;

function cliLogger(kind: string, announce: boolean): Logger | false {
  if (kind === "none") return false;
  if (kind !== "text" && kind !== "json")
    throw new ConfabError(ErrorCodes.INVALID_ARGUMENT, `--log must be text, json or none, got "${kind}"`);
  const log = kind === "json" ? jsonLogger(process.stdout) : textLogger(process.stdout);
  return (event) => {
    // With --announce the announce line already says the server started.
    if (announce && event.event === "started") return;
    holdOutput();
    log(event);
  };
}

// How long the log's lines may wait to leave together (see holdOutput).
const LOG_HOLD_MS = 10;
let outputHeld = false;
let outputReleasedOnExit = false;

/**
 * Holds standard output for {@link LOG_HOLD_MS}, so that the lines logged meanwhile leave in
 * one write: a busy server logs two lines per connection, and each write to a pipe is a system
 * call that also wakes its reader, which on a loaded machine cost a tenth of a connection's
 * CPU time. What is held is written when the process exits (process.exit, the signals this
 * command handles, an uncaught exception): only a kill that Node cannot see loses it.
 */
function holdOutput(): void {
  if (outputHeld) return;
  if (!outputReleasedOnExit) {
    outputReleasedOnExit = true;
    process.on("exit", releaseOutput);
  }
  outputHeld = true;
  process.stdout.cork();
  setTimeout(releaseOutput, LOG_HOLD_MS).unref();
}

function releaseOutput(): void {
  if (!outputHeld) return;
  outputHeld = false;
  process.stdout.uncork();
}

/**
 * The listening socket systemd (or `systemd-socket-activate`) passed us, if any: with
 * `LISTEN_PID` naming this process and `LISTEN_FDS` >= 1, the first is fd 3. The variables
 * are removed, as sd_listen_fds(3) does, so that processes we start do not take it for theirs.
 */
function inheritedSocket(): number | undefined {
  const pid = process.env.LISTEN_PID;
  const count = Number(process.env.LISTEN_FDS);
  delete process.env.LISTEN_PID;
  delete process.env.LISTEN_FDS;
  delete process.env.LISTEN_FDNAMES;
  if (pid === undefined || Number(pid) !== process.pid || !Number.isInteger(count) || count < 1) return undefined;
  return 3;
}

function numberOption(text: string | undefined, name: string): number | undefined {
  if (text === undefined) return undefined;
  const value = Number(text);
  if (!Number.isFinite(value) || value < 0)
    throw new ConfabError(ErrorCodes.INVALID_ARGUMENT, `${name} must be a non-negative number, got "${text}"`);
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
      "max-startups": { type: "string" },
      "idle-timeout": { type: "string" },
      "max-buffered-input": { type: "string" },
      "proxy-protocol": { type: "boolean", default: false },
      log: { type: "string", default: "text" },
      "drain-timeout": { type: "string" },
      workers: { type: "string" },
      "tls-cert": { type: "string" },
      "tls-key": { type: "string" },
      "tls-ca": { type: "string" },
      "token-file": { type: "string" },
      audit: { type: "string" },
      record: { type: "string" },
      monitor: { type: "string" },
    },
    strict: true,
  });
  // Listen for the signals before anything is announced: a signal that arrives while no
  // handler is installed kills the process outright.
  // In a worker of `--workers N`, SIGINT is the primary's to act on: a terminal's Ctrl-C reaches
  // the whole process group, and the primary stops the workers with SIGTERM, after their drain.
  let inWorker = false;
  const stopRequested = new Promise<void>((done) => {
    const stop = (signal: NodeJS.Signals): void => {
      if (signal === "SIGINT" && inWorker) return;
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
  const maxStartups = numberOption(values["max-startups"], "--max-startups");
  const idleTimeout = numberOption(values["idle-timeout"], "--idle-timeout");
  const maxBufferedInput = numberOption(values["max-buffered-input"], "--max-buffered-input");
  const drainTimeout = numberOption(values["drain-timeout"], "--drain-timeout") ?? DRAIN_MS;
  const workers = numberOption(values.workers, "--workers");
  if (workers !== undefined && (!Number.isInteger(workers) || workers < 1)) {
    throw new ConfabError(
      ErrorCodes.INVALID_ARGUMENT,
      `--workers must be a whole number of processes, at least 1, got "${String(values.workers)}"`,
    );
  }
  // cluster re-runs this command, options and all, in each worker: there it just listens.
  if (workers !== undefined && workers > 1) inWorker = (await import("node:cluster")).default.isWorker;
  const tls = tlsOptions(values["tls-cert"], values["tls-key"], values["tls-ca"]);
  // With a token the listener asks every client for it (`token SECRET` first); from
  // --token-file or $CONFAB_TOKEN, never from the command line, where `ps` would show it.
  for (const option of ["token-file", "audit", "record"] as const) {
    if (fn !== undefined && values[option] !== undefined) {
      throw new ConfabError(
        ErrorCodes.INVALID_ARGUMENT,
        `--${option} is for the listener server; a --function server authenticates and keeps the record of its own clients`,
      );
    }
  }
  const tokenFile = values["token-file"];
  const credentials = fn === undefined ? readCredentials(tokenFile) : undefined;
  // A users file is read again on SIGHUP: users are added and revoked without a restart (a
  // file that has become unreadable or wrong is reported, and the users read last stay).
  let users = typeof credentials === "object" ? credentials : undefined;
  if (users !== undefined && tokenFile !== undefined) {
    process.on("SIGHUP", () => {
      try {
        const reread = readCredentials(tokenFile);
        if (typeof reread !== "object") throw new Error("it no longer holds NAME TOKEN lines");
        users = reread;
        const count = Object.keys(reread).length;
        process.stdout.write(`confab: ${tokenFile} read again: ${count} ${count === 1 ? "user" : "users"}\n`);
      } catch (error) {
        process.stderr.write(
          `confab: SIGHUP: ${tokenFile} not reloaded, the users read before stay: ${(error as Error).message}\n`,
        );
      }
    });
  }
  // A numeric service given on the command line is a port, named as a number (`10243 server`).
  const service =
    values.service === undefined ? undefined : /^\d+$/.test(values.service) ? Number(values.service) : values.service;
  const fd = inheritedSocket();
  const server = await startUpServer({
    ...(fd === undefined ? {} : { fd }),
    ...(fn === undefined ? {} : { function: fn }),
    ...(service === undefined ? {} : { service }),
    ...(values.host === undefined ? {} : { address: values.host }),
    ...(evalTimeout === undefined ? {} : { evalTimeout }),
    ...(maxConnections === undefined ? {} : { maxConnections }),
    ...(maxStartups === undefined ? {} : { maxStartups }),
    ...(idleTimeout === undefined ? {} : { idleTimeout }),
    ...(maxBufferedInput === undefined ? {} : { maxBufferedInput }),
    ...(values["proxy-protocol"] ? { proxyProtocol: true } : {}),
    // The command logs server events (connections, refusals with their reason, how processes
    // ended) on standard output by default: a service's log is what an operator reads.
    logger: cliLogger(values.log, values.announce),
    ...(workers === undefined ? {} : { workers }),
    ...(tls === undefined ? {} : { tls }),
    ...(typeof credentials === "string" ? { token: credentials } : {}),
    ...(users === undefined ? {} : { users: () => users ?? {} }),
    ...(values.audit === undefined ? {} : { audit: values.audit }),
    ...(values.record === undefined ? {} : { record: values.record }),
    ...(values.monitor === undefined ? {} : { monitor: parseMonitorFlag(values.monitor) }),
  });
  if (values.announce && !inWorker) {
    // A wildcard address is not one to connect to: name this host instead.
    const host =
      server.address === "0.0.0.0" || server.address === "::"
        ? "HOST "
        : server.address === "127.0.0.1"
          ? ""
          : `${server.address} `;
    const target = server.family === "unix" ? server.address : `${host}${server.port}`;
    const tokenHint =
      credentials === undefined
        ? ""
        : users === undefined
          ? " (with CONFAB_TOKEN set)"
          : " --token-file YOUR-TOKEN-FILE";
    const auth = `${tls === undefined ? "" : " --tls"}${tokenHint}`;
    const hint = fn === undefined ? `; connect with: npx confab connect ${target}${auth}` : "";
    const workers = server instanceof ClusterServerProcess ? server.workerCount : undefined;
    process.stdout.write(`${listeningLine(server.name, server, workers)}${hint}\n`);
    const monitor = monitorOf(server);
    if (monitor !== undefined) process.stdout.write(`${monitor.name}: open ${monitor.url} in a browser\n`);
  }

  await stopRequested;
  // Each worker drains for --drain-timeout itself (it runs this command too): wait that long,
  // and a little more, before the workers still there get SIGKILL.
  if (server instanceof ClusterServerProcess) await server.terminate(drainTimeout + WORKER_EXIT_MARGIN_MS);
  serverTerminate(server);
  // Each process is asked to end (its signal aborts; a listener session tells its client why)
  // and given the drain to do so, then what it owns is closed (mp.processTerminate).
  await Promise.all(listAllProcesses().map((p) => processTerminate(p, { joinTimeout: drainTimeout })));
  for (const p of listAllProcesses()) processKill(p);
  // Connections a user's function kept without a process are not ours to wait for.
  process.exit(0);
}

/** `--tls-cert FILE --tls-key FILE [--tls-ca FILE]` as the server's TLS options; a CA means client certificates are required. */
function tlsOptions(
  cert: string | undefined,
  key: string | undefined,
  ca: string | undefined,
): ServerTlsOptions | undefined {
  if (cert === undefined && key === undefined && ca === undefined) return undefined;
  if (cert === undefined || key === undefined) {
    throw new ConfabError(
      ErrorCodes.INVALID_ARGUMENT,
      "TLS needs both --tls-cert FILE and --tls-key FILE (--tls-ca FILE adds client certificates)",
    );
  }
  return {
    cert: readPem(cert, "--tls-cert"),
    key: readPem(key, "--tls-key"),
    ...(ca === undefined ? {} : { ca: readPem(ca, "--tls-ca") }),
  };
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
    throw new ConfabError(
      ErrorCodes.INVALID_ARGUMENT,
      `--function: cannot import ${modulePart}: ${(error as Error).message}`,
      { cause: error },
    );
  }
  const fn = loaded[exportName];
  if (typeof fn !== "function") {
    throw new ConfabError(
      ErrorCodes.INVALID_ARGUMENT,
      `--function: ${modulePart} has no exported function "${exportName}"`,
    );
  }
  return fn as ConnectionFunction<Socket>;
}
