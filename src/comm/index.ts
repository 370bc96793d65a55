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
  type StartUpServerOptions,
  type StartUpStreamServerOptions,
} from "./server.js";
export {
  SocketStream,
  DEFAULT_MAX_LINE_LENGTH,
  DEFAULT_MAX_OUTPUT_BUFFER,
  type SocketStreamOptions,
  type StreamDirection,
  type StreamElementType,
} from "./socket-stream.js";
export { openTcpStream, type OpenTcpStreamOptions } from "./client.js";
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
