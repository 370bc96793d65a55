/**
 * TCP servers, socket streams, clients and the services database, after LispWorks' `comm` package.
 *
 * This is comm (`src/comm/index.ts`) with the package's `startUpServer` (`src/start-up-server.ts`)
 * in place of comm's core: without a `function` it serves the built-in listener server.
 *
 * @module
 */
export * from "./comm/index.js";
export { startUpServer, type StartUpServerOptions, type StartUpStreamServerOptions } from "./start-up-server.js";
