/**
 * TCP servers, socket streams, clients and the services database, after LispWorks' `comm` package.
 *
 * @module
 */
export {
  startUpServer,
  serverTerminate,
  defaultProcessName,
  ServerProcess,
  type Announce,
  type ConnectionFunction,
  type ServerCounters,
  type ConnectionLimits,
  type ServerLogging,
  type StartUpServerOptions,
  type StartUpStreamServerOptions,
} from "./server.js";
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
