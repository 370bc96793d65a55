/**
 * TCP servers, socket streams, clients and the services database, after LispWorks' `comm` package.
 *
 * This is the comm layer's own index: its `startUpServer` is the core, which needs a
 * `function`. The package's `comm` namespace (`src/comm.ts`) is this with the preset
 * `startUpServer` of `src/start-up-server.ts` in its place, which serves listeners without one.
 *
 * @module
 */
export { startUpServer, serverTerminate, TcpServerProcess } from "./server.js";
export {
  defaultProcessName,
  ServerProcess,
  type Announce,
  type ConnectionFunction,
  type ServerCounters,
  type ConnectionLimits,
  type ServerLogging,
  type ServerOptions,
  type StreamServerOptions,
  type ServerHooks,
} from "./server-base.js";
export { ClusterServerProcess, type ServerWorkerInfo } from "./workers.js";
export {
  SocketStream,
  DEFAULT_MAX_LINE_LENGTH,
  DEFAULT_MAX_OUTPUT_BUFFER,
  type SocketStreamOptions,
  type StreamDirection,
  type StreamElementType,
} from "./socket-stream.js";
export { openTcpStream, type OpenTcpStreamOptions, type ClientTlsOptions } from "./client.js";
export { getHostEntry, type HostEntry, type HostEntryField } from "./host-entry.js";
export { unixSocketPath, DEFAULT_HANDSHAKE_TIMEOUT_MS, type ServerTlsOptions } from "./endpoint.js";
export { textLogger, jsonLogger, type Logger, type LoggerOption, type ServerEvent } from "./server-log.js";
export {
  getServiceEntry,
  resolveService,
  servicesFiles,
  parseServicesFile,
  resetServicesDatabase,
  DEFAULT_SERVICE,
  DEFAULT_PORT,
  SERVICES_FILE_ENV,
  type ServiceEntry,
} from "./services.js";
