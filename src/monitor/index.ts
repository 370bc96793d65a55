/**
 * The live monitor page: a small web page, served on loopback, showing the program's servers,
 * processes and connections as they change, with a kill button per process. Start one with
 * {@link startMonitor}, with `startUpServer({ monitor: PORT })`, or `confab serve --monitor PORT`.
 *
 * @example
 * ```ts
 * import { monitor } from "confab";
 * const m = await monitor.startMonitor({ port: 9000 });
 * console.log(m.url); // http://127.0.0.1:9000/
 * ```
 * @module
 */
export {
  startMonitor,
  MonitorProcess,
  DEFAULT_MONITOR_INTERVAL_MS,
  DEFAULT_MONITOR_CLIENTS,
  type MonitorOptions,
} from "./monitor-server.js";
export { monitorOf, type MonitorOption } from "./attach.js";
export { TOKEN_HEADER as MONITOR_TOKEN_HEADER } from "./guard.js";
export { type MonitorRecording } from "./recordings.js";
export {
  takeSnapshot,
  type MonitorSnapshot,
  type MonitorServerRow,
  type MonitorProcessRow,
  type MonitorConnectionRow,
  type MonitorProcessKind,
  type MonitorSample,
} from "./snapshot.js";
