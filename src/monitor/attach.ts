/**
 * `startUpServer({ monitor })`: a monitor started alongside a server, living as long as it.
 * The package's `startUpServer` (the face, above comm and the monitor) loads this module on
 * demand; comm knows nothing of it.
 *
 * @module
 */
import type { Announce, ServerProcess } from "../comm/server-base.js";
import { processKill } from "../mp/process.js";
import { processContext } from "../mp/registry.js";
import { reportError } from "../report.js";
import { startMonitor, type MonitorOptions, type MonitorProcess } from "./monitor-server.js";

/** What `startUpServer`'s `monitor` option may be: a port (0: any free one), or the monitor's options. */
export type MonitorOption = number | MonitorOptions;

const monitors = new WeakMap<ServerProcess, MonitorProcess>();

/**
 * The monitor started with `server` by its `monitor` option, if any: read its `url` or `port`
 * (the real one when the option asked for port 0).
 */
export function monitorOf(server: ServerProcess): MonitorProcess | undefined {
  return monitors.get(server);
}

/**
 * @internal Starts the monitor for a server just started. The monitor is the server's child
 * (as a connection's process is) and is killed with it, so stopping the server frees both
 * ports. If the monitor cannot start, the server is stopped and the error thrown: the caller
 * asked for both.
 */
export async function attachMonitor(
  server: ServerProcess,
  option: MonitorOption,
  announce: Announce | undefined,
): Promise<MonitorProcess> {
  let monitor: MonitorProcess;
  try {
    const options = typeof option === "number" ? { port: option } : option;
    monitor = await processContext.run(server, startMonitor, options);
  } catch (error) {
    processKill(server);
    throw error;
  }
  monitors.set(server, monitor);
  server.signal.addEventListener("abort", () => processKill(monitor), { once: true });
  if (announce !== undefined && announce !== false && typeof announce !== "function") {
    try {
      (announce === true ? process.stdout : announce).write(`${monitor.name}: open ${monitor.url} in a browser\n`);
    } catch (error) {
      reportError("announce", error);
    }
  }
  return monitor;
}
