// Helpers shared by the test suites: real loopback sockets and captured reports.
import assert from "node:assert/strict";
import net from "node:net";
import { after } from "node:test";
import {
  ConfabError,
  serverTerminate,
  startUpServer,
  type ServerProcess,
  type StartUpServerOptions,
  type StartUpStreamServerOptions,
} from "../src/index.js";
import { setErrorReporter } from "../src/report.js";
import { Waker } from "./waker.js";

/** A raw TCP client for tests: collects what the server sends, line by line. */
export class LineClient {
  readonly socket: net.Socket;
  #buffer = "";
  #received = "";
  #lines: string[] = [];
  #ended = false;
  readonly #waker = new Waker();

  private constructor(socket: net.Socket) {
    this.socket = socket;
    socket.setEncoding("utf8");
    socket.on("data", (text: string) => {
      this.#received += text;
      this.#buffer += text;
      let nl;
      while ((nl = this.#buffer.indexOf("\n")) !== -1) {
        this.#lines.push(this.#buffer.slice(0, nl));
        this.#buffer = this.#buffer.slice(nl + 1);
      }
      this.#waker.wake();
    });
    const end = (): void => {
      this.#ended = true;
      this.#waker.wake();
    };
    socket.on("end", end);
    socket.on("close", end);
    socket.on("error", end);
  }

  /** Connects to 127.0.0.1:port. */
  static connect(port: number, host = "127.0.0.1"): Promise<LineClient> {
    return new Promise((resolve, reject) => {
      const socket = net.connect({ port, host, allowHalfOpen: true }, () => {
        socket.off("error", reject);
        resolve(new LineClient(socket));
      });
      socket.once("error", reject);
    });
  }

  /** Everything received so far that is not yet a whole line. */
  get partial(): string {
    return this.#buffer;
  }

  /** Everything received since connecting (or since `clear()`). */
  get received(): string {
    return this.#received;
  }

  /** `true` once the server closed its side. */
  get ended(): boolean {
    return this.#ended;
  }

  send(text: string): void {
    this.socket.write(text);
  }

  /** The next whole line, or `null` at end of file; rejects after `timeout` ms. */
  async line(timeout = 5000): Promise<string | null> {
    const deadline = Date.now() + timeout;
    while (this.#lines.length === 0) {
      if (this.#ended) return null;
      const left = deadline - Date.now();
      if (left <= 0)
        throw new Error(`no line within ${timeout} ms (partial: ${JSON.stringify(this.#buffer.slice(0, 200))})`);
      await this.#waker.sleep(left);
    }
    return this.#lines.shift() as string;
  }

  /** Waits until the received text (lines and partial) contains `needle`; returns all of it. */
  async until(needle: string, timeout = 5000): Promise<string> {
    const deadline = Date.now() + timeout;
    for (;;) {
      const all = this.#lines.map((l) => l + "\n").join("") + this.#buffer;
      if (all.includes(needle)) return all;
      if (this.#ended)
        throw new Error(`connection ended before ${JSON.stringify(needle)}; got ${JSON.stringify(all.slice(-300))}`);
      if (Date.now() > deadline)
        throw new Error(`no ${JSON.stringify(needle)} within ${timeout} ms; got ${JSON.stringify(all.slice(-300))}`);
      await this.#waker.sleep(deadline - Date.now());
    }
  }

  /** Forgets what was received so far. */
  clear(): void {
    this.#lines = [];
    this.#buffer = "";
    this.#received = "";
  }

  /** Resolves once the server has closed the connection. */
  async closed(timeout = 5000): Promise<void> {
    const deadline = Date.now() + timeout;
    while (!this.#ended) {
      if (Date.now() > deadline) throw new Error(`connection still open after ${timeout} ms`);
      await new Promise((r) => setTimeout(r, 5));
    }
  }

  end(): void {
    this.socket.end();
  }

  destroy(): void {
    this.socket.destroy();
  }
}

/** Captures confab's error reports until `restore()` is called. */
export function captureReports(): { reports: { what: string; error: unknown }[]; restore: () => void } {
  const reports: { what: string; error: unknown }[] = [];
  const previous = setErrorReporter((what, error) => reports.push({ what, error }));
  return { reports, restore: () => setErrorReporter(previous) };
}

/** Resolves after `ms` milliseconds. */
export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Polls `condition` every 5 ms until it holds; throws after `timeout` ms. */
export async function eventually(condition: () => boolean, timeout = 5000, what = "condition"): Promise<void> {
  const deadline = Date.now() + timeout;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`${what} did not hold within ${timeout} ms`);
    await sleep(5);
  }
}

/** Whether something listens on 127.0.0.1:port. */
export function portOpen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect({ port, host: "127.0.0.1" }, () => {
      s.destroy();
      resolve(true);
    });
    s.on("error", () => resolve(false));
  });
}

/** A promise that never settles (and, unlike a long timer, does not keep Node running). */
export function hang(): Promise<never> {
  return new Promise<never>(() => undefined);
}

/**
 * Servers and line clients for one test file, all stopped after its tests. `start` is
 * `startUpServer` on an ephemeral port with `defaults`, which `options` override.
 */
export function testServers(defaults: StartUpServerOptions = {}): {
  start: (options?: StartUpServerOptions | StartUpStreamServerOptions) => Promise<ServerProcess>;
  client: (port: number) => Promise<LineClient>;
} {
  const servers: ServerProcess[] = [];
  const clients: LineClient[] = [];
  after(() => {
    for (const s of servers) serverTerminate(s);
    for (const c of clients) c.destroy();
  });
  return {
    start: async (options = {}) => {
      // `options` may replace the default function with one that takes a stream (createStream).
      const server = await startUpServer({ service: 0, ...defaults, ...options } as StartUpServerOptions);
      servers.push(server);
      return server;
    },
    client: async (port) => {
      const c = await LineClient.connect(port);
      clients.push(c);
      return c;
    },
  };
}

/** A TCP port on 127.0.0.1 that was free a moment ago, for programs that must be told one. */
export async function freePort(): Promise<number> {
  const probe = net.createServer();
  await new Promise<void>((resolve) => probe.listen(0, "127.0.0.1", resolve));
  const { port } = probe.address() as net.AddressInfo;
  await new Promise((resolve) => probe.close(resolve));
  return port;
}

/**
 * Records the `setNoDelay` and `setKeepAlive` calls made on any socket until `restore()`
 * (`"nodelay true"`, `"keepalive true 5000"`): Node has no getter for either setting.
 */
export function spyOnSocketTuning(): { calls: string[]; restore: () => void } {
  const calls: string[] = [];
  // eslint-disable-next-line @typescript-eslint/unbound-method -- put back as they were, and called with their socket
  const { setNoDelay, setKeepAlive } = net.Socket.prototype;
  net.Socket.prototype.setNoDelay = function (this: net.Socket, noDelay?: boolean) {
    calls.push(`nodelay ${String(noDelay)}`);
    return setNoDelay.call(this, noDelay);
  };
  net.Socket.prototype.setKeepAlive = function (this: net.Socket, enable?: boolean, delay?: number) {
    calls.push(`keepalive ${String(enable)} ${String(delay)}`);
    return setKeepAlive.call(this, enable, delay);
  };
  return {
    calls,
    restore: () => {
      net.Socket.prototype.setNoDelay = setNoDelay;
      net.Socket.prototype.setKeepAlive = setKeepAlive;
    },
  };
}

/**
 * For `assert.throws` / `assert.rejects`: the error is a `ConfabError` with `code`, and its
 * message matches `message`.
 */
export function failsWith(code: string, message: RegExp): (error: unknown) => boolean {
  return (error) => {
    assert.ok(error instanceof ConfabError, String(error));
    assert.equal(error.code, code);
    assert.match(error.message, message);
    return true;
  };
}
