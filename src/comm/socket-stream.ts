import type { Socket } from "node:net";
import { finished } from "node:stream";
import { ConfabError, ErrorCodes } from "../errors.js";
import { kKill, kOwner, type Process, type ProcessResource } from "../mp/process.js";
import { beginWait, endWait, kWaitText } from "../mp/wait-state.js";
import { getCurrentProcess } from "../mp/registry.js";
import { formatHostPort } from "./address.js";
import { printable } from "./printable.js";
import { LineFramer, type LineFramingOptions } from "./line-framing.js";
import { accountHolders, type InputBudget } from "./input-budget.js";
import {
  hearReaderEvents,
  knownLocalEnd,
  kReader,
  readerOf,
  serverOf,
  watchForReader,
  type LocalEnd,
} from "./socket-listeners.js";

/** Which way a stream carries data, as Lisp's `:direction`. */
export type StreamDirection = "io" | "input" | "output";

/**
 * Lisp's `:element-type` for text: `"character"` decodes UTF-8 (the default), `"base-char"`
 * decodes one byte per character (Latin-1). Byte reads and writes work with either.
 */
export type StreamElementType = "character" | "base-char";

/** Options of {@link SocketStream}. */
export interface SocketStreamOptions {
  /** The connected socket: a server's handle, or a socket from `net.connect`. */
  readonly socket: Socket;
  /** `"io"` (default), `"input"` or `"output"`. */
  readonly direction?: StreamDirection;
  /** `"character"` (UTF-8, default) or `"base-char"` (Latin-1). */
  readonly elementType?: StreamElementType;
  /** Milliseconds a read may wait for data before it rejects with `ERR_READ_TIMEOUT`; the stream stays usable. Default: none. */
  readonly readTimeout?: number;
  /** Milliseconds `finishOutput` may wait for the OS to take the output before it rejects with `ERR_WRITE_TIMEOUT`. Default: none. */
  readonly writeTimeout?: number;
  /** Longest line `readLine` accepts, in bytes, terminator excluded (default 1 MiB). A longer line fails the stream's input with `ERR_LINE_TOO_LONG`. */
  readonly maxLineLength?: number;
  /**
   * Output the peer has not taken yet, in bytes, past which the stream fails with
   * `ERR_OUTPUT_BUFFER_FULL` (default 16 MiB): the peer is then sent the line
   * `Error: output buffer over N bytes (maxOutputBuffer; the client is not reading); closing`
   * after what is already queued for it, and the connection is ended, then dropped if the peer
   * has not closed within 5 s.
   */
  readonly maxOutputBuffer?: number;
}

/** Default {@link SocketStreamOptions.maxLineLength}: 1 MiB. */
export const DEFAULT_MAX_LINE_LENGTH = 1024 * 1024;
/** Default {@link SocketStreamOptions.maxOutputBuffer}: 16 MiB. */
export const DEFAULT_MAX_OUTPUT_BUFFER = 16 * 1024 * 1024;

// Unread input past which the socket is paused when nobody is reading: the peer then
// waits in the kernel instead of in our memory.
const READ_HIGH_WATER = 64 * 1024;
// Text written but not forced past which it is handed to the socket anyway, as a full
// Lisp stream buffer would be.
const WRITE_HIGH_WATER = 64 * 1024;
// How long a closed stream waits for the peer's end of file before it drops the socket.
const CLOSE_LINGER_MS = 5000;
// How long a connection ended with a reason line (over maxOutputBuffer, idle) may take to
// hand the peer what is queued and see its end of file, however slowly it reads: then it is
// dropped, and the memory its queued output holds is freed.
const ENDING_DEADLINE_MS = CLOSE_LINGER_MS;

const enum Read {
  None,
  Line,
  Char,
  Bytes,
}

// What an idle stream holds instead of an array of its own (never written to).
const NO_TEXT: string[] = Object.freeze([]) as unknown as string[];

function isReset(error: NodeJS.ErrnoException): boolean {
  return error.code === "ECONNRESET" || error.code === "EPIPE" || error.code === "ECONNABORTED";
}

/** A socket that knows its stream, so that one set of listener functions serves every stream. */
interface StreamSocket extends Socket {
  [kReader]: SocketStream;
}

// new Promise's executor, shared by every read instead of a closure per read.
let capturedResolve: ((value: unknown) => void) | undefined;
function captureResolve(resolve: (value: never) => void): void {
  capturedResolve = resolve as (value: unknown) => void;
}

// SocketStream's #endConnection, for endConnection below (set by the class's static block).
let endStreamConnection!: (stream: SocketStream, reason: string) => void;

function destroySocket(socket: Socket): void {
  socket.destroy();
}

/** The one line a connection ended by confab gets: `Error: ` and the reason, escaped so it stays one line. */
function reasonLine(reason: string): string {
  return `Error: ${printable(reason)}\n`;
}

/**
 * A buffered, bidirectional stream over a connected socket, as LispWorks' `comm:socket-stream`.
 *
 * Reads are promises (`readLine`, `readChar`, `readBytes`, or `for await` over lines); writes
 * are buffered until `forceOutput()` (send soon, no waiting), `finishOutput()` (a promise
 * settled once the OS has taken the output) or `close()`. Many `forceOutput` calls in one
 * turn of the event loop become one write system call.
 *
 * A stream belongs to the process that makes it, or, if made outside any process, to the
 * process it is handed to (`processRunFunction` argument) or that first uses it; killing
 * that process closes the stream.
 *
 * @example
 * ```ts
 * async function talkOnStream(stream: SocketStream) {
 *   try {
 *     for (let line; (line = await stream.readLine()) !== null; ) {
 *       stream.writeString(`You sent: '${line}'\n`);
 *       stream.forceOutput();
 *     }
 *   } finally {
 *     stream.close();
 *   }
 * }
 * ```
 */
export class SocketStream implements ProcessResource, AsyncIterable<string> {
  /** The process that owns the stream, if any ({@link ProcessResource}: set and cleared by the process). */
  [kOwner]: Process | undefined;

  /** Peer's address (kept after close). */
  readonly remoteAddress: string | undefined;
  /** Peer's port (kept after close). */
  readonly remotePort: number | undefined;

  readonly #socket: Socket;
  // Shared by the streams made with the same options until a timeout is set on this one.
  #config: StreamConfig;

  // Unread input, and the framing of lines, characters and bytes out of it; its end is the
  // stream's end of file.
  readonly #input: LineFramer;
  #inputError: Error | undefined;
  // The accepting server's bound on the input all its streams hold (maxBufferedInput), if any.
  readonly #budget: InputBudget | undefined;
  #paused = false;

  // Set by shutdown("input"): reads see end of file, and what arrives is dropped.
  #inputShut = false;
  // Set by shutdown("output"): writes are refused.
  #outputShut = false;
  #pending: Read = Read.None;
  #pendingCount = 0;
  // Only the resolving function is kept (a rejection is settled by resolving with a rejected
  // promise): an idle connection's pending read holds one function, not two.
  #resolve: ((value: unknown) => void) | undefined;
  #readTimer: NodeJS.Timeout | undefined;
  #waitingDrain = false;

  #local: LocalEnd | undefined;
  // Text written but not yet handed to the socket: joined once per write system call, which
  // costs half of what appending to one string does (V8 then flattens a rope per write).
  #out: string[] = NO_TEXT;
  #outChars = 0;
  #outBytes: Buffer[] | undefined;
  #outBytesLength = 0;
  #flushQueued = false;
  #closed = false;
  #outputError: Error | undefined;
  // Set once the connection was ended with a reason line: drops the socket if the peer lingers.
  #endingTimer: NodeJS.Timeout | undefined;
  // Set once close() shut our side down before the peer's end of file: drops the socket if
  // the peer never sends it.
  #lingerTimer: NodeJS.Timeout | undefined;

  constructor(options: SocketStreamOptions) {
    const socket = options.socket;
    this.#socket = socket;
    this.#config = streamConfig(options);
    this.#input = new LineFramer(this.#config);
    this.#budget = serverOf(socket)?.inputBudget;
    // The peer is read now: Node forgets it when a reset destroys the socket. The local end
    // is read when first asked for, or when the stream closes (it is rarely wanted, and each
    // address costs an object and a string per connection).
    this.remoteAddress = socket.remoteAddress;
    this.remotePort = socket.remotePort;

    // Listeners are shared by all streams (the socket points back to its stream): five
    // closures per connection would cost more memory than the stream itself.
    watchForReader(socket, this);
    socket.on("data", SocketStream.#onData);
    socket.on("end", SocketStream.#onEnd);
    if (socket.destroyed) this.#input.end();
    else if (socket.isPaused()) socket.resume();

    getCurrentProcess()?.own(this);
  }

  /** The direction given at creation. */
  get direction(): StreamDirection {
    return this.#config.direction;
  }

  /** The element type given at creation. */
  get elementType(): StreamElementType {
    return this.#config.elementType;
  }

  /**
   * Milliseconds a read may wait for data before it rejects with `ERR_READ_TIMEOUT`, or
   * `undefined` for no limit, as Lisp's `stream-read-timeout`. Settable on a live stream, as
   * `(setf stream-read-timeout)`: a read already waiting gets the new limit counted from the
   * moment it is set (`undefined` or 0 lifts it).
   */
  get readTimeout(): number | undefined {
    return this.#config.readTimeout > 0 ? this.#config.readTimeout : undefined;
  }

  /** Sets the read limit (ms; `undefined` or 0: none); a read already waiting gets it from now. */
  set readTimeout(ms: number | undefined) {
    this.#config = withTimeout(this.#config, "readTimeout", ms);
    clearTimeout(this.#readTimer);
    this.#readTimer = undefined;
    if (this.#pending !== Read.None && this.#config.readTimeout > 0) this.#startReadTimer();
  }

  /**
   * Milliseconds `finishOutput` may wait for the OS to take the output before it rejects with
   * `ERR_WRITE_TIMEOUT`, or `undefined` for no limit, as Lisp's `stream-write-timeout`.
   * Settable on a live stream; a new limit applies to the `finishOutput` calls made after it.
   */
  get writeTimeout(): number | undefined {
    return this.#config.writeTimeout > 0 ? this.#config.writeTimeout : undefined;
  }

  /** Sets the `finishOutput` limit (ms; `undefined` or 0: none) for the calls made after it. */
  set writeTimeout(ms: number | undefined) {
    this.#config = withTimeout(this.#config, "writeTimeout", ms);
  }

  /** Local address of the connection (kept after close). */
  get localAddress(): string | undefined {
    return this.#localEnd().address;
  }

  /** Local port of the connection (kept after close). */
  get localPort(): number | undefined {
    return this.#localEnd().port;
  }

  #localEnd(): LocalEnd {
    const socket = this.#socket;
    return (this.#local ??= knownLocalEnd(socket) ?? { address: socket.localAddress, port: socket.localPort });
  }

  /** The underlying socket, for options this class does not cover (`setNoDelay`, `setKeepAlive`). */
  get socket(): Socket {
    return this.#socket;
  }

  /** Bytes received so far. */
  get bytesRead(): number {
    return this.#socket.bytesRead;
  }

  /** Bytes handed to the OS so far. */
  get bytesWritten(): number {
    return this.#socket.bytesWritten;
  }

  /** `true` once `close()` was called or the stream was closed by its process being killed. */
  get closed(): boolean {
    return this.#closed;
  }

  // ---------------------------------------------------------------- reading

  /**
   * `true` when input has arrived that no read has taken yet, so a read would not wait for
   * the peer, as Common Lisp's `listen`. A REPL uses it to tell a paste (more lines already
   * here) from a person typing. `false` at end of file and once the stream is closed.
   */
  listen(): boolean {
    return this.#input.length > 0 && !this.#closed;
  }

  /**
   * The next line, without its LF or CRLF; `null` at end of file. A last line without a
   * newline is returned before `null`. Rejects with `ERR_LINE_TOO_LONG` (and the input side
   * fails) when a line passes `maxLineLength`.
   *
   * Lines that came in together are decoded together, up to 1 KiB at a time, and each line is
   * a slice of that text (as `node:readline`'s are of each chunk): a line kept for long keeps
   * at most 1 KiB of its neighbours with it.
   */
  readLine(): Promise<string | null> {
    const blocked = this.#startRead();
    if (blocked !== undefined) return blocked;
    if (!this.#socket.writableNeedDrain) {
      const line = this.#input.takeLine();
      if (line === false) return Promise.reject(this.#lineTooLong());
      if (line !== undefined) {
        if (this.#paused) this.#resumeIfRoom();
        return Promise.resolve(line);
      }
    }
    return this.#wait(Read.Line, 0);
  }

  /** The next character (a whole code point); `null` at end of file. */
  readChar(): Promise<string | null> {
    const blocked = this.#startRead();
    if (blocked !== undefined) return blocked;
    if (!this.#socket.writableNeedDrain) {
      const ch = this.#input.takeChar();
      if (ch !== undefined) {
        if (this.#paused) this.#resumeIfRoom();
        return Promise.resolve(ch);
      }
    }
    return this.#wait(Read.Char, 0);
  }

  /**
   * The next `count` bytes; fewer if end of file comes first, and `null` at end of file.
   * The bytes are copied out of the stream's buffers, so the caller may keep them.
   */
  readBytes(count: number): Promise<Buffer | null> {
    if (!Number.isSafeInteger(count) || count < 0) {
      return Promise.reject(
        new ConfabError(
          ErrorCodes.INVALID_ARGUMENT,
          `readBytes: count must be a non-negative integer, got ${String(count)}`,
        ),
      );
    }
    const blocked = this.#startRead();
    if (blocked !== undefined) return blocked;
    if (!this.#socket.writableNeedDrain) {
      const bytes = this.#input.takeBytes(count);
      if (bytes !== undefined) {
        if (this.#paused) this.#resumeIfRoom();
        return Promise.resolve(bytes);
      }
    }
    return this.#wait(Read.Bytes, count);
  }

  /** Lines until end of file: `for await (const line of stream)`. */
  async *[Symbol.asyncIterator](): AsyncIterator<string> {
    for (let line; (line = await this.readLine()) !== null;) yield line;
  }

  #startRead(): Promise<never> | undefined {
    if (this.#pending !== Read.None) {
      return Promise.reject(
        new ConfabError(
          ErrorCodes.READ_IN_PROGRESS,
          "a read is already pending on this stream; await it before starting another",
        ),
      );
    }
    if (this.#config.direction === "output") {
      return Promise.reject(new ConfabError(ErrorCodes.WRONG_DIRECTION, "cannot read from an output-only stream"));
    }
    if (this.#inputError !== undefined) return Promise.reject(this.#inputError);
    if (this.#closed) return Promise.reject(closedError());
    if (this.#inputShut) return Promise.resolve(null) as Promise<never>;
    if (this[kOwner] === undefined) getCurrentProcess()?.own(this);
    return undefined;
  }

  #wait(kind: Read, count: number): Promise<never> {
    this.#pending = kind;
    this.#pendingCount = count;
    if (this.#socket.writableNeedDrain && !this.#waitingDrain) {
      // Our output is backed up: take no more input until the peer reads, so a client that
      // sends without reading cannot make us buffer its answers without bound.
      this.#waitingDrain = true;
      this.#socket.once("drain", SocketStream.#onDrain);
    } else if (this.#paused) {
      this.#resumeInput();
    }
    if (this.#config.readTimeout > 0) this.#startReadTimer();
    const promise = new Promise<never>(captureResolve);
    this.#resolve = capturedResolve;
    capturedResolve = undefined;
    // The owner waits for this stream: its whostate names the peer, made only when asked.
    const owner = this[kOwner];
    if (owner !== undefined) beginWait(owner, this);
    return promise;
  }

  /** Starts the pending read's time limit, reusing the stream's one timer. */
  #startReadTimer(): void {
    if (this.#readTimer === undefined) {
      this.#readTimer = setTimeout(SocketStream.#readTimedOut, this.#config.readTimeout, this);
      this.#readTimer.unref();
    } else {
      this.#readTimer.refresh();
    }
  }

  /** @internal What the process reading this stream waits for (its `whostate`). */
  [kWaitText](): string {
    return `Waiting for input from ${this.#peer()}`;
  }

  /** Tries to satisfy the pending read from what is buffered. */
  #serve(): void {
    if (this.#pending === Read.None || this.#waitingDrain) return;
    const input = this.#input;
    const value =
      this.#pending === Read.Line
        ? input.takeLine()
        : this.#pending === Read.Char
          ? input.takeChar()
          : input.takeBytes(this.#pendingCount);
    if (value === false) {
      this.#settle(undefined, this.#lineTooLong());
      return;
    }
    if (value === undefined) return;
    if (this.#paused) this.#resumeIfRoom();
    this.#settle(value, undefined);
  }

  #settle(value: unknown, error: Error | undefined): void {
    const resolve = this.#resolve;
    const owner = this[kOwner];
    if (owner !== undefined) endWait(owner, this);
    this.#pending = Read.None;
    this.#resolve = undefined;
    resolve?.(error === undefined ? value : Promise.reject(error));
  }

  static #readTimedOut(stream: SocketStream): void {
    if (stream.#pending === Read.None) return;
    stream.#settle(
      undefined,
      new ConfabError(
        ErrorCodes.READ_TIMEOUT,
        `no data from ${stream.#peer()} within ${stream.#config.readTimeout} ms (readTimeout)`,
      ),
    );
  }

  /** A read took input: reading from the socket starts again once the input has room. */
  #resumeIfRoom(): void {
    if (this.#input.length < READ_HIGH_WATER) this.#resumeInput();
  }

  #lineTooLong(): Error {
    return this.#failInput(
      new ConfabError(
        ErrorCodes.LINE_TOO_LONG,
        `line from ${this.#peer()} is longer than ${this.#config.maxLine} bytes (maxLineLength); input closed`,
      ),
    );
  }

  /** Fails the input side for good; writing still works so the caller can say why. */
  #failInput(error: Error): Error {
    this.#inputError = error;
    this.#input.clear();
    this.#budget?.release(this);
    this.#paused = true;
    this.#socket.pause();
    return error;
  }

  #resumeInput(): void {
    if (this.#inputError !== undefined) return;
    this.#paused = false;
    this.#socket.resume();
  }

  static #onData(this: StreamSocket, chunk: Buffer): void {
    this[kReader].#data(chunk);
  }

  static #onEnd(this: StreamSocket): void {
    const stream = this[kReader];
    stream.#localEnd(); // the last moment the socket still knows it
    stream.#input.end();
    stream.#serve();
  }

  static #onDrain(this: StreamSocket): void {
    const stream = this[kReader];
    stream.#waitingDrain = false;
    stream.#serve();
    if (stream.#pending !== Read.None && stream.#paused) stream.#resumeInput();
  }

  static {
    // The socket's shared 'error' and 'close' listeners reach the stream through these,
    // registered once: the methods they call stay private to the class.
    hearReaderEvents<SocketStream>({
      error: (stream, error) => {
        stream.#error(error);
      },
      closed: (stream) => {
        stream.#socketClosed();
      },
    });
    endStreamConnection = (stream, reason) => {
      stream.#endConnection(reason);
    };
    accountHolders<SocketStream>({
      held: (stream) => stream.#input.length,
      drop: (stream, error, reason) => {
        stream.#dropInput(error, reason);
      },
      peer: (stream) => stream.#peer(),
    });
  }

  /** The connection is gone: what is buffered can still be read, then end of file. */
  #socketClosed(): void {
    clearTimeout(this.#endingTimer);
    clearTimeout(this.#lingerTimer);
    this.#input.end();
    this.#waitingDrain = false;
    this.#serve();
    // Its peer can send no more: what is left is the reader's to take or leave, and a budget
    // that kept it would keep the stream alive after its reader let it go.
    this.#budget?.release(this);
    this[kOwner]?.disown(this);
  }

  /**
   * The server's budget of unread input (maxBufferedInput) dropped this stream, the one holding
   * the most: its reads fail with `error`, and the peer gets the line `Error: <reason>` after
   * what is already queued for it, then end of file.
   */
  #dropInput(error: ConfabError, reason: string): void {
    this.#failInput(error);
    if (this.#pending !== Read.None) this.#settle(undefined, error);
    if (this.#closed || this.#socket.destroyed) return;
    this.#flush();
    this.#endWith(reason);
  }

  #data(chunk: Buffer): void {
    if (this.#closed || this.#inputShut || this.#inputError !== undefined || this.#endingTimer !== undefined) return; // draining towards the peer's FIN
    this.#input.push(chunk);
    if (this.#pending !== Read.None) this.#serve();
    if ((this.#pending === Read.None || this.#waitingDrain) && this.#input.length >= READ_HIGH_WATER && !this.#paused) {
      this.#paused = true;
      this.#socket.pause();
    }
    // Once per chunk, not per line read: what reads take meanwhile is counted at the next chunk.
    this.#budget?.hold(this, this.#input.length);
  }

  #error(error: NodeJS.ErrnoException): void {
    if (isReset(error)) {
      // A reset peer is gone: what it sent whole is still read, then end of file.
      this.#input.dropPartialLine();
      this.#input.end();
      this.#outputError ??= error;
      this.#serve();
      return;
    }
    this.#outputError ??= error;
    if (this.#pending !== Read.None) this.#settle(undefined, error);
    this.#inputError ??= error;
  }

  // ---------------------------------------------------------------- writing

  /** Buffers `text` for output. */
  writeString(text: string): void {
    this.#checkWritable();
    if (this.#out.length === 0) this.#out = [text];
    else this.#out.push(text);
    this.#outChars += text.length;
    if (this.#outChars >= WRITE_HIGH_WATER) this.#flush();
  }

  /** Buffers `text` and a newline, as Lisp's `write-line`. */
  writeLine(text: string): void {
    this.writeString(text + "\n");
  }

  /** Buffers raw bytes for output. */
  write(bytes: Uint8Array): void {
    this.#checkWritable();
    if (this.#out.length > 0) {
      (this.#outBytes ??= []).push(Buffer.from(this.#takeText(), this.#config.encoding));
    }
    (this.#outBytes ??= []).push(Buffer.from(bytes));
    this.#outBytesLength += bytes.length;
    if (this.#outBytesLength >= WRITE_HIGH_WATER) this.#flush();
  }

  /**
   * Starts sending what is buffered and returns at once, as Lisp's `force-output`. Calls in
   * the same turn of the event loop share one system call.
   */
  forceOutput(): void {
    if (this.#outputError !== undefined || this.#closed) return;
    this.#flushSoon();
  }

  /**
   * Sends what is buffered and resolves once the OS has taken all of it, as Lisp's
   * `finish-output`: a writer that awaits it never outruns a slow reader. Rejects if the
   * connection fails, or after `writeTimeout` ms.
   */
  finishOutput(): Promise<void> {
    if (this.#outputError !== undefined) return Promise.reject(this.#outputError);
    this.#flush();
    const socket = this.#socket;
    if (socket.writableLength === 0 || socket.destroyed) return Promise.resolve();
    const owner = this[kOwner];
    const wait = `Finishing output to ${this.#peer()}`;
    const previous = owner === undefined ? undefined : beginWait(owner, wait);
    return new Promise<void>((resolve, reject) => {
      let timer: NodeJS.Timeout | undefined;
      const done = (error?: Error | null): void => {
        clearTimeout(timer);
        if (owner !== undefined) endWait(owner, wait, previous);
        if (error) reject(error);
        else resolve();
      };
      if (this.#config.writeTimeout > 0) {
        timer = setTimeout(() => {
          if (owner !== undefined) endWait(owner, wait, previous);
          reject(
            new ConfabError(
              ErrorCodes.WRITE_TIMEOUT,
              `${this.#peer()} did not take our output within ${this.#config.writeTimeout} ms (writeTimeout)`,
            ),
          );
        }, this.#config.writeTimeout);
      }
      // A zero-length write completes after every write queued before it; once our side has
      // ended, the socket's finish says the same.
      if (socket.writableEnded) {
        const stop = finished(socket, { readable: false }, (error) => {
          stop();
          done(error);
        });
      } else {
        socket.write(Buffer.alloc(0), done);
      }
    });
  }

  #checkWritable(): void {
    if (this.#config.direction === "input")
      throw new ConfabError(ErrorCodes.WRONG_DIRECTION, "cannot write to an input-only stream");
    if (this.#closed) throw closedError();
    if (this.#outputShut)
      throw new ConfabError(ErrorCodes.WRONG_DIRECTION, 'cannot write: output was shut down (shutdown("output"))');
    if (this.#outputError?.name === "ConfabError") throw this.#outputError;
    if (this[kOwner] === undefined) getCurrentProcess()?.own(this);
  }

  #flushSoon(): void {
    if (this.#flushQueued) return;
    this.#flushQueued = true;
    // After the microtasks of this turn: a burst of lines read from one chunk and answered
    // one by one leaves in one write, as a hand-written server's would.
    process.nextTick(SocketStream.#flushTick, this);
  }

  /** The next tick after `forceOutput`. */
  static #flushTick(stream: SocketStream): void {
    stream.#flushQueued = false;
    stream.#flush();
  }

  #flush(): void {
    const socket = this.#socket;
    if (socket.destroyed || socket.writableEnded || this.#outputError !== undefined) {
      this.#discardOutput();
      return;
    }
    if (this.#outBytes !== undefined) {
      const bytes = this.#outBytes;
      if (this.#out.length > 0) bytes.push(Buffer.from(this.#takeText(), this.#config.encoding));
      this.#discardOutput();
      socket.cork();
      for (const b of bytes) socket.write(b);
      socket.uncork();
    } else if (this.#out.length > 0) {
      const text = this.#takeText();
      socket.write(text, this.#config.encoding);
    }
    if (socket.writableLength > this.#config.maxOutput) {
      this.#outputError = new ConfabError(
        ErrorCodes.OUTPUT_BUFFER_FULL,
        `${this.#peer()} is not reading: more than ${this.#config.maxOutput} bytes of output queued (maxOutputBuffer); connection dropped`,
      );
      if (this.#pending !== Read.None) this.#settle(undefined, this.#outputError);
      this.#inputError ??= this.#outputError;
      // The peer is not reading, so the reason can only go after what it has not taken yet:
      // it reads the line if it ever catches up within the deadline, which also bounds how
      // long the queued output holds memory. Nothing more is queued (#flush discards).
      this.#endWith(
        `output buffer over ${this.#config.maxOutput} bytes (maxOutputBuffer; the client is not reading); closing`,
      );
    }
  }

  /**
   * The server ends the connection (its `idleTimeout`, through {@link endConnection}): what is buffered is sent,
   * then the line `Error: <reason>`, then end of file; reads see what had come in whole, then
   * end of file, as if the peer had closed; later output is discarded, as on a connection the
   * peer dropped. The socket is dropped if the peer has not closed within 5 s.
   */
  #endConnection(reason: string): void {
    if (this.#socket.destroyed) return;
    this.#flush();
    this.#endWith(reason);
    this.#input.end();
    this.#serve();
  }

  /** Queues the reason line after everything the socket holds, ends our side, and gives the peer a deadline. */
  #endWith(reason: string): void {
    const socket = this.#socket;
    if (socket.destroyed || this.#endingTimer !== undefined) return;
    if (socket.writableEnded) {
      socket.destroy(); // closed by its owner already, and still not closed by the peer
      return;
    }
    this.#discardOutput();
    socket.end(reasonLine(reason), this.#config.encoding);
    // Read on (discarding) so the peer's end of file is seen and the socket closes at once.
    this.#paused = false;
    socket.resume();
    this.#endingTimer = setTimeout(destroySocket, ENDING_DEADLINE_MS, socket);
    this.#endingTimer.unref();
  }

  /** The buffered text, as one string, and no more buffered text. */
  #takeText(): string {
    const parts = this.#out;
    this.#out = NO_TEXT;
    this.#outChars = 0;
    return parts.length === 1 ? (parts[0] as string) : parts.join("");
  }

  #discardOutput(): void {
    this.#out = NO_TEXT;
    this.#outChars = 0;
    this.#outBytes = undefined;
    this.#outBytesLength = 0;
  }

  // ---------------------------------------------------------------- closing

  /**
   * Shuts down one side of the connection, or both, as LispWorks' `socket-stream-shutdown`;
   * the stream stays open until `close()`.
   *
   * - `"output"`: what is buffered is sent, then end of file: the peer reads it while this
   *   stream can still read the peer's answer (a request, then its reply). Later writes throw
   *   `ERR_WRONG_DIRECTION`; `finishOutput` resolves once the OS has taken the last of it.
   * - `"input"`: reads see end of file from now on (a pending one settles with `null`); what
   *   is buffered, and what the peer still sends, is dropped.
   * - `"io"` (the default): both.
   *
   * A side the stream does not have (its `direction`), or has shut down already, is left as it
   * is; on a closed stream this does nothing.
   */
  shutdown(direction: StreamDirection = "io"): void {
    if (!DIRECTIONS.has(direction)) {
      throw new ConfabError(
        ErrorCodes.INVALID_ARGUMENT,
        `shutdown: direction must be "io", "input" or "output", got ${JSON.stringify(direction)}`,
      );
    }
    if (this.#closed) return;
    const own = this.#config.direction;
    if (direction !== "output" && own !== "output" && !this.#inputShut) {
      this.#inputShut = true;
      this.#input.clear();
      this.#input.end();
      this.#budget?.release(this);
      if (this.#pending !== Read.None) this.#settle(null, undefined);
      // Read on, dropping what comes, so the peer is never stuck and its end of file is seen.
      this.#resumeInput();
    }
    if (direction !== "input" && own !== "input" && !this.#outputShut) {
      this.#outputShut = true;
      this.#flush();
      this.#socket.end();
    }
  }

  /**
   * Closes the stream: buffered output is sent, then the connection is shut down (the peer
   * reads end of file). With `abort: true` the connection is dropped at once and buffered
   * output is discarded. A pending read settles with `null`. Closing twice does nothing.
   *
   * With `reason`, the peer is told why in one last line after the buffered output,
   * `Error: <reason>` (its control, bidi and zero-width characters escaped, so it stays one
   * line), as confab's servers tell a connection they end: a listener session whose process
   * was killed gets `Error: session killed (process 7 "x" was killed)`. Not sent with
   * `abort`, on an input-only stream, or once the output has failed.
   */
  close(options?: { abort?: boolean; reason?: string }): void {
    if (this.#closed) return;
    this.#closed = true;
    this[kOwner]?.disown(this);
    this.#localEnd();
    const socket = this.#socket;
    if (options?.abort === true) {
      this.#discardOutput();
      socket.destroy();
    } else if (!socket.destroyed) {
      const reason = options?.reason;
      if (reason !== undefined && this.#config.direction !== "input" && this.#outputError === undefined) {
        const line = reasonLine(reason);
        if (this.#out.length === 0) this.#out = [line];
        else this.#out.push(line);
        this.#outChars += line.length;
      }
      this.#flush();
      socket.end();
      if (!this.#input.ended) {
        // Read on (and discard) until the peer's end of file, so the kernel need not reset
        // the connection over unread data; give up after a while.
        if (this.#paused) {
          this.#paused = false;
          socket.resume();
        }
        // A timer of its own, not the socket's idle timer: that one is the server's
        // idleTimeout, which must keep its length and its meaning while the stream closes.
        this.#lingerTimer = setTimeout(destroySocket, CLOSE_LINGER_MS, socket);
        this.#lingerTimer.unref();
      }
    }
    this.#input.clear();
    this.#budget?.release(this);
    clearTimeout(this.#readTimer);
    if (this.#pending !== Read.None) this.#settle(null, undefined);
  }

  /** Killing the owning process closes the stream (see {@link ProcessResource}). */
  [kKill](): void {
    this.close();
  }

  #peer(): string {
    return this.remotePort === undefined ? "the peer" : formatHostPort(this.remoteAddress ?? "?", this.remotePort);
  }
}

/**
 * @internal Ends a server's connection with the line `Error: <reason>`: through its stream when
 * it has one (what is buffered goes first, and its reads see end of file), else on the socket itself, which is
 * then dropped if the peer has not closed within 5 s.
 */
export function endConnection(socket: Socket, reason: string): void {
  const reader = readerOf(socket);
  if (reader instanceof SocketStream) {
    endStreamConnection(reader, reason);
    return;
  }
  if (socket.destroyed) return;
  if (socket.writableEnded) {
    socket.destroy();
    return;
  }
  socket.end(reasonLine(reason));
  socket.resume(); // so the peer's end of file is seen, and the socket closes
  const timer = setTimeout(destroySocket, ENDING_DEADLINE_MS, socket);
  timer.unref();
  socket.once("close", () => {
    clearTimeout(timer);
  });
}

function closedError(): ConfabError {
  return new ConfabError(ErrorCodes.STREAM_CLOSED, "the stream is closed");
}

/** A stream's settings: shared by all streams made with the same defaults. */
interface StreamConfig extends LineFramingOptions {
  readonly direction: StreamDirection;
  readonly elementType: StreamElementType;
  readonly maxOutput: number;
  readonly readTimeout: number;
  readonly writeTimeout: number;
}

const DIRECTIONS: ReadonlySet<string> = new Set<StreamDirection>(["io", "input", "output"]);
const ELEMENT_TYPES: ReadonlySet<string> = new Set<StreamElementType>(["character", "base-char"]);
const defaultConfigs = new Map<string, StreamConfig>();

function streamConfig(options: SocketStreamOptions): StreamConfig {
  const direction = options.direction ?? "io";
  const elementType = options.elementType ?? "character";
  // Checked at run time too: a caller from JavaScript could pass anything.
  if (!DIRECTIONS.has(direction)) {
    throw new ConfabError(
      ErrorCodes.INVALID_ARGUMENT,
      `direction must be "io", "input" or "output", got ${JSON.stringify(direction)}`,
    );
  }
  if (!ELEMENT_TYPES.has(elementType)) {
    throw new ConfabError(
      ErrorCodes.INVALID_ARGUMENT,
      `elementType must be "character" or "base-char", got ${JSON.stringify(elementType)}`,
    );
  }
  const defaults =
    options.maxLineLength === undefined &&
    options.maxOutputBuffer === undefined &&
    options.readTimeout === undefined &&
    options.writeTimeout === undefined;
  const key = `${direction} ${elementType}`;
  const shared = defaults ? defaultConfigs.get(key) : undefined;
  if (shared !== undefined) return shared;
  const config: StreamConfig = Object.freeze({
    direction,
    elementType,
    encoding: elementType === "base-char" ? "latin1" : "utf8",
    maxLine: positive(options.maxLineLength, DEFAULT_MAX_LINE_LENGTH, "maxLineLength"),
    maxOutput: positive(options.maxOutputBuffer, DEFAULT_MAX_OUTPUT_BUFFER, "maxOutputBuffer"),
    readTimeout: positive(options.readTimeout, 0, "readTimeout"),
    writeTimeout: positive(options.writeTimeout, 0, "writeTimeout"),
  });
  if (defaults) defaultConfigs.set(key, config);
  return config;
}

/** `config` with one timeout changed: a copy, since configs are shared between streams. */
function withTimeout(config: StreamConfig, name: "readTimeout" | "writeTimeout", ms: number | undefined): StreamConfig {
  return Object.freeze({ ...config, [name]: positive(ms, 0, name) });
}

function positive(value: number | undefined, fallback: number, name: string): number {
  if (value === undefined) return fallback;
  if (typeof value !== "number" || Number.isNaN(value) || value < 0) {
    throw new ConfabError(
      ErrorCodes.INVALID_ARGUMENT,
      `${name} must be a non-negative number of ${name.startsWith("max") ? "bytes" : "milliseconds"}, got ${String(value)}`,
    );
  }
  return value;
}
