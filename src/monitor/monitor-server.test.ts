import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdir, mkdtemp, readFile, rm, symlink, writeFile } from "node:fs/promises";
import http from "node:http";
import { createRequire } from "node:module";
import net from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { makeStreamAndTalk } from "../../examples/talk.js";
import { eventually, LineClient, portOpen } from "../../test/support.js";
import { Waker } from "../../test/waker.js";
import { ConfabError } from "../errors.js";
import { serverTerminate, startUpServer, type ServerProcess } from "../index.js";
import { processKill } from "../mp/process.js";
import { findProcessFromName, listAllProcesses } from "../mp/registry.js";
import { monitorOf } from "./attach.js";
import { TOKEN_HEADER } from "./guard.js";
import { startMonitor, type MonitorProcess } from "./monitor-server.js";
import type { MonitorRecording } from "./recordings.js";
import type { MonitorSnapshot } from "./snapshot.js";

after(() => {
  for (const p of listAllProcesses()) processKill(p);
});

interface Reply {
  readonly status: number;
  readonly headers: http.IncomingHttpHeaders;
  readonly body: string;
}

/** One HTTP request on a fresh connection, with exactly the headers given (plus Host, unless given). */
function request(
  port: number,
  options: { method?: string; path?: string; headers?: Record<string, string> } = {},
): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = http.request(
      {
        host: "127.0.0.1",
        port,
        method: options.method ?? "GET",
        path: options.path ?? "/",
        headers: options.headers ?? {},
        agent: false,
      },
      (res) => {
        let body = "";
        res.setEncoding("utf8");
        res.on("data", (chunk: string) => (body += chunk));
        res.on("end", () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
        res.on("error", reject);
      },
    );
    req.setTimeout(5000, () =>
      req.destroy(new Error(`${options.method ?? "GET"} ${options.path ?? "/"}: no answer within 5 s`)),
    );
    req.on("error", reject);
    req.end();
  });
}

/** A kill request as the page sends it, with the headers overridden as given (`undefined`: left out). */
function kill(monitor: MonitorProcess, id: number, overrides: Record<string, string | undefined> = {}): Promise<Reply> {
  const own = `127.0.0.1:${monitor.port}`;
  const merged: Record<string, string | undefined> = {
    host: own,
    origin: `http://${own}`,
    "sec-fetch-site": "same-origin",
    [TOKEN_HEADER]: monitor.token,
    ...overrides,
  };
  const headers: Record<string, string> = {};
  for (const [k, v] of Object.entries(merged)) if (v !== undefined) headers[k] = v;
  return request(monitor.port, { method: "POST", path: `/api/processes/${id}/kill`, headers });
}

/** Reads a monitor's event stream into snapshots. */
class EventReader {
  readonly snapshots: MonitorSnapshot[] = [];
  readonly status: number;
  #ended = false;
  readonly #req: http.ClientRequest;
  readonly #waker = new Waker();

  private constructor(req: http.ClientRequest, res: http.IncomingMessage) {
    this.#req = req;
    this.status = res.statusCode ?? 0;
    let buffer = "";
    res.setEncoding("utf8");
    res.on("data", (chunk: string) => {
      buffer += chunk;
      let end;
      while ((end = buffer.indexOf("\n\n")) !== -1) {
        const event = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        const data = event.split("\n").find((l) => l.startsWith("data: "));
        if (data !== undefined) this.snapshots.push(JSON.parse(data.slice(6)) as MonitorSnapshot);
      }
      this.#waker.wake();
    });
    const ended = (): void => {
      this.#ended = true;
      this.#waker.wake();
    };
    res.on("end", ended);
    res.on("close", ended);
    res.on("error", ended);
  }

  static open(port: number): Promise<EventReader> {
    return new Promise((resolve, reject) => {
      const req = http.get({ host: "127.0.0.1", port, path: "/events", agent: false }, (res) =>
        resolve(new EventReader(req, res)),
      );
      req.on("error", reject);
    });
  }

  get ended(): boolean {
    return this.#ended;
  }

  /** The first snapshot from now on (or already received after `from`) that satisfies `test`. */
  async next(test: (s: MonitorSnapshot) => boolean, timeout = 5000, from = 0): Promise<MonitorSnapshot> {
    const deadline = Date.now() + timeout;
    for (let i = from; ;) {
      for (; i < this.snapshots.length; i++) {
        const s = this.snapshots[i] as MonitorSnapshot;
        if (test(s)) return s;
      }
      if (this.#ended) throw new Error("the event stream ended");
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`no matching snapshot within ${timeout} ms (${this.snapshots.length} received)`);
      await this.#waker.sleep(left);
    }
  }

  close(): void {
    this.#req.destroy();
  }
}

async function talkServer(): Promise<ServerProcess> {
  return startUpServer({ function: makeStreamAndTalk, service: 0 });
}

test("the page carries the token under a nonce-only CSP; the JSON snapshot lists the monitor itself", async () => {
  const monitor = await startMonitor({ port: 0 });
  try {
    assert.equal(monitor.url, `http://127.0.0.1:${monitor.port}/`);
    assert.equal(monitor.name, `monitor 127.0.0.1:${monitor.port}`);
    const page = await request(monitor.port);
    assert.equal(page.status, 200);
    assert.match(String(page.headers["content-type"]), /^text\/html/);
    assert.equal(page.headers["x-frame-options"], "DENY");
    const nonce = /script-src 'nonce-([^']+)'/.exec(String(page.headers["content-security-policy"]))?.[1];
    assert.ok(nonce !== undefined);
    assert.match(String(page.headers["content-security-policy"]), /default-src 'none'.*frame-ancestors 'none'/);
    assert.ok(page.body.includes(`<script nonce="${nonce}">`));
    assert.ok(page.body.includes(`<meta name="confab-token" content="${monitor.token}">`));
    assert.match(monitor.token, /^[\w-]{43}$/);
    // A fresh nonce for every response.
    assert.notEqual(
      /nonce-([^']+)'/.exec(String((await request(monitor.port)).headers["content-security-policy"]))?.[1],
      nonce,
    );

    const json = await request(monitor.port, { path: "/api/snapshot" });
    assert.equal(json.status, 200);
    const snap = JSON.parse(json.body) as MonitorSnapshot;
    assert.equal(snap.monitor, monitor.id);
    assert.deepEqual(
      snap.processes.filter((p) => p.id === monitor.id).map((p) => [p.kind, p.state, p.name]),
      [["monitor", "running", monitor.name]],
    );

    assert.equal((await request(monitor.port, { path: "/nowhere" })).status, 404);
    assert.equal((await request(monitor.port, { method: "POST", path: "/" })).status, 405);
    assert.equal((await request(monitor.port, { path: `/api/processes/${monitor.id}/kill` })).status, 405);
    assert.equal(monitor.state, "running");
  } finally {
    processKill(monitor);
  }
});

test("the event stream sends a snapshot at once, then follows processes as they come and go", async () => {
  const monitor = await startMonitor({ port: 0, interval: 100 });
  const server = await talkServer();
  const events = await EventReader.open(monitor.port);
  let client: LineClient | undefined;
  try {
    assert.equal(events.status, 200);
    const first = await events.next(() => true, 1000);
    assert.ok(first.servers.some((s) => s.id === server.id));
    assert.equal(monitor.clients, 1);

    client = await LineClient.connect(server.port);
    const name = `talk ${client.socket.localPort}`;
    const seen = await events.next((s) => s.processes.some((p) => p.name === name));
    assert.equal(seen.connections.find((c) => c.processName === name)?.server, server.name);
    // The sparkline data comes along: a sample each tick, with the open connection counted.
    await events.next((s) => s.history.some((h) => h.connections === 1));

    client.end();
    await events.next((s) => !s.processes.some((p) => p.name === name) && s.time > seen.time);
  } finally {
    client?.destroy();
    events.close();
    serverTerminate(server);
    processKill(monitor);
  }
});

test("a kill without the token, with a wrong token, from another Origin or site, or to a foreign Host is 403 and kills nothing", async () => {
  const monitor = await startMonitor({ port: 0 });
  const server = await talkServer();
  const client = await LineClient.connect(server.port);
  try {
    const name = `talk ${client.socket.localPort}`;
    await eventually(() => findProcessFromName(name) !== undefined, 5000, `${name} runs`);
    const target = findProcessFromName(name);
    assert.ok(target);
    const evil = `evil.example:${monitor.port}`;
    const refusals: [string, Record<string, string | undefined>][] = [
      ["no token", { [TOKEN_HEADER]: undefined }],
      ["no token, as curl sends it", { [TOKEN_HEADER]: undefined, origin: undefined, "sec-fetch-site": undefined }],
      ["a wrong token", { [TOKEN_HEADER]: `${monitor.token.slice(0, -1)}${monitor.token.endsWith("A") ? "B" : "A"}` }],
      ["a short token", { [TOKEN_HEADER]: "x" }],
      ["another Origin", { origin: "http://evil.example" }],
      ["a null Origin", { origin: "null" }],
      ["a cross-site fetch", { "sec-fetch-site": "cross-site" }],
      ["a same-site fetch from another port", { "sec-fetch-site": "same-site" }],
      // DNS rebinding: the attacker's name points at 127.0.0.1, so its page is "same-origin".
      ["a foreign Host", { host: evil, origin: `http://${evil}` }],
      [
        "a LAN address as Host",
        { host: `192.168.1.20:${monitor.port}`, origin: `http://192.168.1.20:${monitor.port}` },
      ],
    ];
    for (const [why, headers] of refusals) {
      const reply = await kill(monitor, target.id, headers);
      assert.equal(reply.status, 403, `${why}: ${reply.body}`);
      assert.match((JSON.parse(reply.body) as { error: string }).error, /\w/, why);
      assert.equal(target.state, "running", `${why} killed nothing`);
    }
    // A rebinding page cannot even read the page (and its token) or the data.
    for (const path of ["/", "/api/snapshot", "/events"]) {
      const reply = await request(monitor.port, { path, headers: { host: evil } });
      assert.equal(reply.status, 403, path);
      assert.ok(!reply.body.includes(monitor.token));
    }
    // Loopback names are fine.
    for (const host of [
      `localhost:${monitor.port}`,
      `127.0.0.1:${monitor.port}`,
      `[::1]:${monitor.port}`,
      "127.0.0.1",
    ]) {
      assert.equal((await request(monitor.port, { path: "/api/snapshot", headers: { host } })).status, 200, host);
    }
    assert.equal(target.state, "running");
    client.send("still here\n");
    assert.equal(await client.line(), "You sent: 'still here'");
  } finally {
    client.destroy();
    serverTerminate(server);
    processKill(monitor);
  }
});

test("a kill with the token kills the process, its client gets end of file, and pages hear of it at once", async () => {
  // Snapshots once a minute: only the push that follows a kill can tell the page in time.
  const monitor = await startMonitor({ port: 0, interval: 60_000 });
  const server = await talkServer();
  const client = await LineClient.connect(server.port);
  const name = `talk ${client.socket.localPort}`;
  await eventually(() => findProcessFromName(name) !== undefined, 5000, `${name} runs`);
  const events = await EventReader.open(monitor.port);
  try {
    const target = findProcessFromName(name);
    assert.ok(target);
    await events.next((s) => s.processes.some((p) => p.id === target.id), 1000);
    const reply = await kill(monitor, target.id);
    assert.equal(reply.status, 200, reply.body);
    assert.deepEqual(JSON.parse(reply.body), { killed: true, id: target.id, name });
    assert.equal(target.state, "killed");
    await client.closed(2000);
    assert.equal(await client.line(), null, "end of file");
    await events.next((s) => !s.processes.some((p) => p.id === target.id), 2000);

    // Curl-like clients (no Origin, no Sec-Fetch-Site) get in with the token alone.
    const gone = await request(monitor.port, {
      method: "POST",
      path: `/api/processes/${target.id}/kill`,
      headers: { [TOKEN_HEADER]: monitor.token },
    });
    assert.equal(gone.status, 404, "it is no longer running");
    assert.equal(server.state, "running");
  } finally {
    client.destroy();
    events.close();
    serverTerminate(server);
    processKill(monitor);
  }
});

test("killing the monitor frees its port at once and ends its pages' event streams", async () => {
  const monitor = await startMonitor({ port: 0 });
  const port = monitor.port;
  const events = await EventReader.open(port);
  await events.next(() => true, 1000);
  // An idle keep-alive connection must not hold the port's server open either.
  const idle = net.connect(port, "127.0.0.1");
  await new Promise<void>((resolve) => idle.once("connect", resolve));
  idle.on("error", () => undefined);
  try {
    assert.equal(processKill(monitor), true);
    assert.equal(monitor.state, "killed");
    assert.ok(!listAllProcesses().includes(monitor));
    assert.equal(await portOpen(port), false, "nothing listens any more");
    const again = net.createServer();
    await new Promise<void>((resolve, reject) => {
      again.once("error", reject);
      again.listen(port, "127.0.0.1", resolve);
    });
    await new Promise<void>((resolve) => again.close(() => resolve()));
    await eventually(() => events.ended, 2000, "the event stream ends");
    await eventually(() => idle.destroyed || idle.readableEnded, 2000, "the idle connection is closed");
  } finally {
    events.close();
    idle.destroy();
  }
});

test("a monitor killed from its own page answers first, then frees its port", async () => {
  const monitor = await startMonitor({ port: 0 });
  const reply = await kill(monitor, monitor.id);
  assert.equal(reply.status, 200);
  assert.deepEqual(JSON.parse(reply.body), { killed: true, id: monitor.id, name: monitor.name });
  assert.equal(monitor.state, "killed");
  assert.equal(await portOpen(monitor.port), false);
});

test("more pages than maxClients get 503", async () => {
  const monitor = await startMonitor({ port: 0, maxClients: 1 });
  const one = await EventReader.open(monitor.port);
  try {
    await one.next(() => true, 1000);
    const two = await request(monitor.port, { path: "/events" });
    assert.equal(two.status, 503);
    assert.match(two.body, /maxClients 1/);
  } finally {
    one.close();
    processKill(monitor);
  }
});

/** A client that opens a connection and sends the start of a request whose headers never end. */
class SlowHeaders {
  readonly socket: net.Socket;
  received = "";
  closed = false;
  closedAt = 0;

  private constructor(socket: net.Socket) {
    this.socket = socket;
    socket.setEncoding("latin1");
    socket.on("data", (text: string) => (this.received += text));
    socket.on("error", () => undefined);
    socket.on("close", () => {
      this.closed = true;
      this.closedAt = Date.now();
    });
  }

  static open(port: number): Promise<SlowHeaders> {
    return new Promise((resolve, reject) => {
      const socket = net.connect({ port, host: "127.0.0.1" }, () => {
        socket.off("error", reject);
        // No blank line: the headers never end.
        socket.write(`GET / HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nX-Slow: `, () => resolve(new SlowHeaders(socket)));
      });
      socket.once("error", reject);
    });
  }
}

test("80 connections with unfinished headers do not keep a browser from the page: the oldest waiting are dropped with a 408", async () => {
  const monitor = await startMonitor({ port: 0 });
  const slow: SlowHeaders[] = [];
  try {
    // More than the monitor's 64 connections, one at a time so that their order is known.
    for (let i = 0; i < 80; i++) slow.push(await SlowHeaders.open(monitor.port));
    const started = Date.now();
    const page = await request(monitor.port);
    const elapsed = Date.now() - started;
    assert.equal(page.status, 200);
    assert.match(page.body, /<html/i);
    assert.ok(elapsed < 2000, `the page came in ${elapsed} ms (bound 2000)`);
    // At most 16 wait at once: the oldest went first, each told 408, and the newest still wait.
    await eventually(() => slow.filter((s) => s.closed).length >= 80 - 16, 2000, "the oldest slow clients dropped");
    const dropped = slow.filter((s) => s.closed);
    assert.ok(dropped.length <= 80 - 15, `${dropped.length} dropped`);
    assert.deepEqual(
      slow.map((s) => s.closed),
      slow.map((_, i) => i < dropped.length),
      "the oldest are the ones dropped",
    );
    for (const s of dropped) assert.match(s.received, /^HTTP\/1\.1 408 Request Timeout\r\n/);
    // Another page load is as quick: the slow clients cannot win back their places.
    const again = Date.now();
    assert.equal((await request(monitor.port, { path: "/api/snapshot" })).status, 200);
    assert.ok(Date.now() - again < 2000);
  } finally {
    for (const s of slow) s.socket.destroy();
    processKill(monitor);
  }
});

test("a connection whose headers do not end is dropped after the monitor's 5 s headersTimeout, not up to 40 s later", async () => {
  const monitor = await startMonitor({ port: 0 });
  const started = Date.now();
  const slow = await SlowHeaders.open(monitor.port);
  try {
    await eventually(() => slow.closed, 8000, "the slow client dropped");
    const after = slow.closedAt - started;
    assert.ok(after >= 4500 && after < 7500, `dropped after ${after} ms (5 s headersTimeout, checked each second)`);
    assert.match(slow.received, /^HTTP\/1\.1 408 /);
  } finally {
    slow.socket.destroy();
    processKill(monitor);
  }
});

test("startUpServer's monitor option starts a monitor as the server's child, killed with it", async () => {
  const server = await startUpServer({ function: makeStreamAndTalk, service: 0, monitor: { port: 0 } });
  const monitor = monitorOf(server);
  assert.ok(monitor);
  assert.equal(monitor.parent, server);
  assert.equal(await portOpen(monitor.port), true);
  const snap = JSON.parse((await request(monitor.port, { path: "/api/snapshot" })).body) as MonitorSnapshot;
  assert.equal(snap.processes.find((p) => p.id === monitor.id)?.parentName, server.name);
  serverTerminate(server);
  assert.equal(monitor.state, "killed");
  assert.equal(await portOpen(monitor.port), false);
});

test("a monitor that cannot start stops its server and rejects with a clear error", async () => {
  const taken = await startMonitor({ port: 0 });
  try {
    const before = listAllProcesses().length;
    await assert.rejects(
      startUpServer({ function: makeStreamAndTalk, service: 0, processName: "doomed", monitor: taken.port }),
      (error: unknown) => {
        assert.ok(error instanceof ConfabError);
        assert.equal(error.code, "EADDRINUSE");
        assert.match(error.message, new RegExp(`monitor.*127\\.0\\.0\\.1:${taken.port} is already in use`));
        return true;
      },
    );
    assert.equal(findProcessFromName("doomed"), undefined);
    assert.equal(listAllProcesses().length, before);

    await assert.rejects(
      startUpServer({ function: makeStreamAndTalk, service: 0, monitor: { port: 0, address: "0.0.0.0" } }),
      {
        code: "ERR_INSECURE_MONITOR",
        message: /loopback only.*ssh -L/,
      },
    );
    await assert.rejects(startUpServer({ function: makeStreamAndTalk, service: 0, workers: 2, monitor: 0 }), {
      code: "ERR_INVALID_ARGUMENT",
      message: /workers/,
    });
    await assert.rejects(startMonitor({ port: 70000 }), { code: "ERR_INVALID_ARGUMENT", message: /0 to 65535/ });
    await assert.rejects(startMonitor({ port: 0, interval: 0 }), { code: "ERR_INVALID_ARGUMENT", message: /interval/ });
    assert.equal(listAllProcesses().length, before);
  } finally {
    processKill(taken);
  }
});

test("a monitor process's public surface is its documented API: its body is not reachable", async () => {
  const monitor = await startMonitor({ port: 0 });
  try {
    const names = Object.getOwnPropertyNames(Object.getPrototypeOf(monitor) as object).sort();
    assert.deepEqual(names, ["clients", "constructor", "snapshot"]);
    assert.equal("untilClosed" in monitor, false);
  } finally {
    processKill(monitor);
  }
});

/** An asciicast v2 recording whose one output event is `text`. */
function cast(text: string): string {
  return `${JSON.stringify({ version: 2, width: 80, height: 24, timestamp: 1796222400 })}\n${JSON.stringify([0.25, "o", text])}\n`;
}

/** A GET of the recordings API as the page sends it, headers overridden as `kill` does. */
function recordingsGet(
  monitor: MonitorProcess,
  path: string,
  overrides: Record<string, string | undefined> = {},
  method = "GET",
): Promise<Reply> {
  const merged: Record<string, string | undefined> = {
    host: `127.0.0.1:${monitor.port}`,
    "sec-fetch-site": "same-origin",
    [TOKEN_HEADER]: monitor.token,
    ...overrides,
  };
  const headers: Record<string, string> = {};
  for (const [k, v] of Object.entries(merged)) if (v !== undefined) headers[k] = v;
  return request(monitor.port, { method, path, headers });
}

/**
 * A temporary folder holding a recordings directory (`rec/`) and, beside it, a file the
 * monitor must never serve (`secret.cast`, the target of the traps inside `rec/`).
 */
async function recordingsFixture(): Promise<{ root: string; dir: string; secret: string; done: () => Promise<void> }> {
  const root = await mkdtemp(join(tmpdir(), "confab-recordings-"));
  const dir = join(root, "rec");
  await mkdir(dir);
  const secret = join(root, "secret.cast");
  await writeFile(secret, "TOP SECRET, outside the recordings directory\n");
  return { root, dir, secret, done: () => rm(root, { recursive: true, force: true }) };
}

test("with recordings, GET /api/recordings lists the *.cast files newest first, read from their names, and ignores the rest", async () => {
  const fx = await recordingsFixture();
  const older = "2026-12-02T14-40-00.123Z-17-my-listener.cast";
  const newer = "2026-12-02T15-01-02.000Z-3-other.cast";
  const noFraction = "2026-12-01T09-00-00Z-170000-x.cast";
  await writeFile(join(fx.dir, older), cast("one"));
  await writeFile(join(fx.dir, newer), cast("two, longer"));
  await writeFile(join(fx.dir, noFraction), "");
  // Not recordings: other names, an impossible date, a directory, a link (to a file outside).
  for (const name of [
    "notes.txt",
    "bad-name.cast",
    "2026-12-02T14-40-00.123Z-17-my-listener.cast.bak",
    "2026-02-31T14-40-00.123Z-5-no-such-day.cast",
    "2026-12-02T14:40:00.123Z-6-colons.cast",
    "2026-12-02T14-40-00.123Z-x-no-id.cast",
  ])
    await writeFile(join(fx.dir, name), cast("not listed"));
  await mkdir(join(fx.dir, "2026-12-02T16-00-00.000Z-7-a-directory.cast"));
  await symlink(fx.secret, join(fx.dir, "2026-12-02T16-00-00.000Z-8-a-link.cast"));
  const monitor = await startMonitor({ port: 0, recordings: fx.dir });
  try {
    const reply = await recordingsGet(monitor, "/api/recordings");
    assert.equal(reply.status, 200, reply.body);
    assert.match(String(reply.headers["content-type"]), /^application\/json/);
    assert.deepEqual(JSON.parse(reply.body) as MonitorRecording[], [
      { file: newer, id: 3, name: "other", startedAt: "2026-12-02T15:01:02.000Z", bytes: cast("two, longer").length },
      { file: older, id: 17, name: "my-listener", startedAt: "2026-12-02T14:40:00.123Z", bytes: cast("one").length },
      { file: noFraction, id: 170000, name: "x", startedAt: "2026-12-01T09:00:00.000Z", bytes: 0 },
    ]);
    // A query string changes nothing; HEAD answers the headers alone.
    assert.equal((await recordingsGet(monitor, "/api/recordings?x=1")).body, reply.body);
    const head = await recordingsGet(monitor, "/api/recordings", {}, "HEAD");
    assert.equal(head.status, 200);
    assert.equal(head.body, "");
    assert.equal((await recordingsGet(monitor, "/api/recordings", {}, "POST")).status, 405);
  } finally {
    processKill(monitor);
    await fx.done();
  }
});

test("a recordings directory that does not exist yet lists none; an empty recordings option is refused", async () => {
  const fx = await recordingsFixture();
  const monitor = await startMonitor({ port: 0, recordings: join(fx.dir, "not-yet") });
  try {
    const reply = await recordingsGet(monitor, "/api/recordings");
    assert.equal(reply.status, 200);
    assert.deepEqual(JSON.parse(reply.body), []);
    await assert.rejects(startMonitor({ port: 0, recordings: "" }), {
      code: "ERR_INVALID_ARGUMENT",
      message: /recordings/,
    });
  } finally {
    processKill(monitor);
    await fx.done();
  }
});

test("GET /api/recordings/FILE serves the recording as application/x-asciicast", async () => {
  const fx = await recordingsFixture();
  const file = "2026-12-02T14-40-00.123Z-17-my-listener.cast";
  const content = cast("CL-USER 1 > (+ 1 2)\r\n3\r\n");
  await writeFile(join(fx.dir, file), content);
  await writeFile(join(fx.dir, "empty.cast"), "");
  const monitor = await startMonitor({ port: 0, recordings: fx.dir });
  try {
    const reply = await recordingsGet(monitor, `/api/recordings/${file}`);
    assert.equal(reply.status, 200, reply.body);
    assert.equal(reply.headers["content-type"], "application/x-asciicast");
    assert.equal(reply.headers["content-length"], String(Buffer.byteLength(content)));
    assert.equal(reply.headers["x-content-type-options"], "nosniff");
    assert.equal(reply.body, content);
    const head = await recordingsGet(monitor, `/api/recordings/${file}`, {}, "HEAD");
    assert.equal(head.status, 200);
    assert.equal(head.headers["content-length"], String(Buffer.byteLength(content)));
    assert.equal(head.body, "");
    // Any plain *.cast name is served, listed or not; an empty file is an empty answer.
    const empty = await recordingsGet(monitor, "/api/recordings/empty.cast");
    assert.equal(empty.status, 200);
    assert.equal(empty.body, "");
    assert.equal((await recordingsGet(monitor, "/api/recordings/no-such.cast")).status, 404);
  } finally {
    processKill(monitor);
    await fx.done();
  }
});

test("the recordings API needs the token: 403 without it, with a wrong one, from another Origin or site, or to a foreign Host", async () => {
  const fx = await recordingsFixture();
  const file = "2026-12-02T14-40-00.123Z-17-my-listener.cast";
  await writeFile(join(fx.dir, file), cast("what alice typed"));
  const monitor = await startMonitor({ port: 0, recordings: fx.dir });
  try {
    const refusals: [string, Record<string, string | undefined>][] = [
      ["no token", { [TOKEN_HEADER]: undefined }],
      ["no token, as curl sends it", { [TOKEN_HEADER]: undefined, "sec-fetch-site": undefined }],
      ["a wrong token", { [TOKEN_HEADER]: `${monitor.token.slice(0, -1)}${monitor.token.endsWith("A") ? "B" : "A"}` }],
      ["another Origin", { origin: "http://evil.example" }],
      ["a cross-site fetch", { "sec-fetch-site": "cross-site" }],
      ["a foreign Host", { host: `evil.example:${monitor.port}` }],
    ];
    for (const path of ["/api/recordings", `/api/recordings/${file}`, "/api/recordings/x%2F..%2Fsecret.cast"]) {
      for (const [why, headers] of refusals) {
        const reply = await recordingsGet(monitor, path, headers);
        assert.equal(reply.status, 403, `${path}, ${why}: ${reply.body}`);
        assert.doesNotMatch(reply.body, /what alice typed|my-listener/, `${path}, ${why}`);
      }
    }
    // Curl-like clients (no Origin, no Sec-Fetch-Site) get in with the token alone.
    const curl = await recordingsGet(monitor, `/api/recordings/${file}`, { "sec-fetch-site": undefined });
    assert.equal(curl.status, 200);
    assert.equal(curl.body, cast("what alice typed"));
  } finally {
    processKill(monitor);
    await fx.done();
  }
});

test("a recording's name that is a path, or a link, a directory or a FIFO in the directory, is refused and nothing outside is read", async () => {
  const fx = await recordingsFixture();
  await writeFile(join(fx.dir, "2026-12-02T14-40-00.123Z-1-fine.cast"), cast("fine"));
  await mkdir(join(fx.dir, "a"));
  await writeFile(join(fx.dir, "a", "b.cast"), cast("in a subdirectory"));
  await mkdir(join(fx.dir, "dir.cast"));
  await symlink(fx.secret, join(fx.dir, "link-out.cast"));
  await symlink("../secret.cast", join(fx.dir, "relative-link.cast"));
  const fifo = process.platform !== "win32";
  if (fifo) execFileSync("mkfifo", [join(fx.dir, "fifo.cast")]);
  const monitor = await startMonitor({ port: 0, recordings: fx.dir });
  try {
    const secret = await readFile(fx.secret, "utf8");
    const cases: [string, number][] = [
      ["/api/recordings/..%2Fsecret.cast", 400],
      ["/api/recordings/..%2fsecret.cast", 400],
      ["/api/recordings/%2E%2E%2Fsecret.cast", 400],
      ["/api/recordings/../secret.cast", 400],
      ["/api/recordings/..\\secret.cast", 400],
      [`/api/recordings/${encodeURIComponent(fx.secret)}`, 400],
      [`/api/recordings/${fx.secret}`, 400],
      ["/api/recordings//etc/passwd", 400],
      ["/api/recordings/a/b.cast", 400],
      ["/api/recordings/a%2Fb.cast", 400],
      ["/api/recordings/secret", 400],
      ["/api/recordings/", 400],
      ["/api/recordings/link-out.cast", 404],
      ["/api/recordings/relative-link.cast", 404],
      ["/api/recordings/dir.cast", 404],
      ["/api/recordings/secret.cast", 404],
      ...(fifo ? ([["/api/recordings/fifo.cast", 404]] as [string, number][]) : []),
    ];
    for (const [path, status] of cases) {
      const reply = await recordingsGet(monitor, path);
      assert.equal(reply.status, status, `${path}: ${reply.body}`);
      assert.ok(!reply.body.includes(secret.trim()), `${path} read nothing outside`);
      assert.ok(!reply.body.includes("in a subdirectory"), `${path} read nothing below`);
    }
    // The directory is still served as before.
    assert.equal((await recordingsGet(monitor, "/api/recordings/2026-12-02T14-40-00.123Z-1-fine.cast")).status, 200);
  } finally {
    processKill(monitor);
    await fx.done();
  }
});

test("the player's files come from the installed asciinema-player package, and the page loads them under its nonce", async () => {
  const fx = await recordingsFixture();
  const monitor = await startMonitor({ port: 0, recordings: fx.dir });
  try {
    const require = createRequire(import.meta.url);
    for (const [path, specifier, type] of [
      ["/assets/asciinema-player.min.js", "asciinema-player/dist/bundle/asciinema-player.min.js", /^text\/javascript/],
      ["/assets/asciinema-player.css", "asciinema-player/dist/bundle/asciinema-player.css", /^text\/css/],
    ] as const) {
      const reply = await request(monitor.port, { path });
      assert.equal(reply.status, 200, path);
      assert.match(String(reply.headers["content-type"]), type);
      assert.equal(reply.body, await readFile(require.resolve(specifier), "utf8"), path);
      assert.equal((await request(monitor.port, { path, method: "POST" })).status, 405);
      assert.equal((await request(monitor.port, { path, headers: { host: "evil.example" } })).status, 403);
    }
    const page = await request(monitor.port);
    const csp = String(page.headers["content-security-policy"]);
    const nonce = /script-src 'nonce-([^']+)'/.exec(csp)?.[1];
    assert.ok(nonce !== undefined);
    // WebAssembly may compile (the player's terminal is WASM); inline or eval'd script may not run.
    assert.match(csp, new RegExp(`script-src 'nonce-${nonce.replace(/[+/]/g, "\\$&")}' 'wasm-unsafe-eval';`));
    assert.doesNotMatch(csp, /'unsafe-inline'|'unsafe-eval'|\*|https?:/);
    assert.ok(page.body.includes(`<script nonce="${nonce}" src="/assets/asciinema-player.min.js"></script>`));
    assert.ok(page.body.includes(`<link rel="stylesheet" nonce="${nonce}" href="/assets/asciinema-player.css">`));
    assert.ok(page.body.includes('<body data-recordings="1">'));
  } finally {
    processKill(monitor);
    await fx.done();
  }
});

test("a monitor without recordings answers 404 for the recordings API and the player's files, and its page has no player", async () => {
  const monitor = await startMonitor({ port: 0 });
  try {
    for (const path of [
      "/api/recordings",
      "/api/recordings/2026-12-02T14-40-00.123Z-17-my-listener.cast",
      "/assets/asciinema-player.min.js",
      "/assets/asciinema-player.css",
    ]) {
      assert.equal((await recordingsGet(monitor, path)).status, 404, path);
    }
    const page = await request(monitor.port);
    assert.doesNotMatch(String(page.headers["content-security-policy"]), /wasm/);
    assert.ok(!page.body.includes("asciinema"));
    assert.ok(!page.body.includes("data-recordings"));
  } finally {
    processKill(monitor);
  }
});
