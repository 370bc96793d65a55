import assert from "node:assert/strict";
import http from "node:http";
import net from "node:net";
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
