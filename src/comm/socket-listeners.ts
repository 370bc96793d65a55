// One 'error' and one 'close' listener per connection, shared by the server that accepted the
// socket and the stream over it. Node keeps a second listener for an event in an array of its
// own (with a property on it), which costs about 100 bytes per event per connection: a tenth
// of what confab adds to a raw socket.
import type { Socket } from "node:net";
import type { InputBudget } from "./input-budget.js";
import type { ServerEvent } from "./server-log.js";

/** A connection's local address and port. */
export interface LocalEnd {
  readonly address: string | undefined;
  readonly port: number | undefined;
}

/**
 * @internal The accepting server's side of its connections: an object the server keeps for
 * itself (not the server process, whose public surface this is not part of).
 */
export interface SocketServer {
  /** The local end of every connection it accepts, when it knows it without asking the OS. */
  readonly localEnd: LocalEnd | undefined;
  /** Its bound on the unread input of the streams on its connections (`maxBufferedInput`), if any. */
  readonly inputBudget: InputBudget | undefined;
  /** One of its connections closed. */
  closed(socket: Socket): void;
  /** One of its connections went idle past the server's `idleTimeout`. */
  idle(socket: Socket): void;
  /**
   * Counts `socket` as refused and logs why: for what serves the connections with limits of
   * its own (the listener server), which closes the connection itself.
   */
  refused(socket: Socket, reason: string): void;
  /** Logs an event of what serves the connections (the listener server's sessions) in the server's log. */
  log(event: ServerEvent): void;
  /** The server's process name, for what serves its connections to name it. */
  readonly name: string;
}

/**
 * @internal What the stream over a socket hears about it: functions registered once by the
 * stream class (see {@link hearReaderEvents}), not methods of the stream, so that they are not
 * part of a stream's public surface.
 */
export interface ReaderEvents<R extends object> {
  /** The socket failed. */
  error(reader: R, error: NodeJS.ErrnoException): void;
  /** The socket closed. */
  closed(reader: R): void;
}

/** @internal Something that reads a socket; told of its errors and close through {@link ReaderEvents}. */
export type SocketReader = object;

let readerEvents: ReaderEvents<SocketReader> | undefined;

/**
 * @internal Registers how readers hear of their sockets' errors and close. Called once, by the
 * one reader class (SocketStream) when it is defined: a later call replaces the functions.
 */
export function hearReaderEvents<R extends object>(events: ReaderEvents<R>): void {
  readerEvents = events;
}

const kServer = Symbol("confab.server");
/** @internal The stream reading a socket, set by {@link watchForReader}. */
export const kReader = Symbol("confab.reader");

interface WatchedSocket extends Socket {
  [kServer]?: SocketServer;
  [kReader]?: SocketReader;
}

function onError(this: WatchedSocket, error: NodeJS.ErrnoException): void {
  // Without a reader the error is the server's to ignore: the connection closes, and a reset
  // peer must not crash the host.
  const reader = this[kReader];
  if (reader !== undefined) readerEvents?.error(reader, error);
}

function onClose(this: WatchedSocket): void {
  const reader = this[kReader];
  if (reader !== undefined) readerEvents?.closed(reader);
  this[kServer]?.closed(this);
}

/** Adds the shared listeners, unless the server or a stream already did. */
function watch(socket: WatchedSocket): void {
  if (socket[kServer] !== undefined || socket[kReader] !== undefined) return;
  socket.on("error", onError);
  socket.on("close", onClose);
}

/** @internal Marks `socket` as accepted by `server`, which then hears when it closes. */
export function watchAccepted(socket: Socket, server: SocketServer): void {
  watch(socket);
  (socket as WatchedSocket)[kServer] = server;
}

/** @internal Makes `reader` hear the errors and the close of `socket` (one reader per socket: a later one takes over). */
export function watchForReader(socket: Socket, reader: SocketReader): void {
  watch(socket);
  (socket as WatchedSocket)[kReader] = reader;
}

/** @internal The stream reading `socket`, if any. */
export function readerOf(socket: Socket): SocketReader | undefined {
  return (socket as WatchedSocket)[kReader];
}

/** @internal The server that accepted `socket`, if any. */
export function serverOf(socket: Socket): SocketServer | undefined {
  return (socket as WatchedSocket)[kServer];
}

/** @internal The local end the accepting server knows for `socket`, if any. */
export function knownLocalEnd(socket: Socket): LocalEnd | undefined {
  return (socket as WatchedSocket)[kServer]?.localEnd;
}
