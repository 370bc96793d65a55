import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import type net from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { PassThrough } from "node:stream";
import { after, test } from "node:test";
import { getCurrentProcess, listAllProcesses } from "../mp/registry.js";
import { processKill, processRunFunction } from "../mp/process.js";
import { captureReports, eventually, LineClient } from "../../test/support.js";
import { makeStreamAndTalk } from "../../examples/talk.js";
import { serverTerminate, startUpServer, type ServerProcess } from "../index.js";
import { jsonLogger, textLogger, type ServerEvent } from "./server-log.js";
import { SocketStream } from "./socket-stream.js";

const servers: ServerProcess[] = [];
const clients: LineClient[] = [];
after(() => {
  for (const s of servers) serverTerminate(s);
  for (const c of clients) c.destroy();
  for (const p of listAllProcesses()) if (p.name.startsWith("talk ") || p.name.startsWith("doomed")) processKill(p);
});

async function client(port: number): Promise<LineClient> {
  const c = await LineClient.connect(port);
  clients.push(c);
  return c;
}

function collect(stream: PassThrough): () => string {
  let text = "";
  stream.on("data", (chunk: Buffer) => (text += chunk.toString()));
  return () => text;
}

test("a logger function hears started, accepted, refused, process-ended and stopped, with reasons", async () => {
  const events: ServerEvent[] = [];
  const { restore } = captureReports();
  try {
    const server = await startUpServer({
      service: 0,
      processName: "logged",
      maxConnections: 2,
      logger: (e) => events.push(e),
      function: (handle: net.Socket) => {
        const stream = new SocketStream({ socket: handle });
        processRunFunction(
          `doomed ${String(stream.remotePort)}`,
          {},
          async (s: SocketStream) => {
            const line = await s.readLine();
            if (line === "fail") throw new Error("asked to fail");
            if (line === "finish") s.close();
            else await s.readLine();
          },
          stream,
        );
      },
    });
    servers.push(server);
    assert.deepEqual(events[0], { event: "started", server: "logged", address: "127.0.0.1", port: server.port });
    const failing = await client(server.port);
    const finishing = await client(server.port);
    const refused = await client(server.port);
    await refused.closed();
    failing.send("fail\n");
    finishing.send("finish\n");
    await eventually(
      () => events.filter((e) => e.event === "process-ended").length === 2,
      3000,
      JSON.stringify(events),
    );
    for (const c of [failing, finishing]) {
      await c.closed();
      c.end(); // our half of the connection: the server counts it closed once both halves are
    }
    await eventually(() => server.counters.active === 0);
    const killable = await client(server.port);
    await eventually(() => listAllProcesses().some((p) => p.name === `doomed ${String(killable.socket.localPort)}`));
    const victim = listAllProcesses().find((p) => p.name === `doomed ${String(killable.socket.localPort)}`);
    assert.ok(victim);
    assert.equal(victim.parent, server, "a process started by the server's function is its child");
    processKill(victim);
    processKill(server);
    const byKind = (kind: ServerEvent["event"]): ServerEvent[] => events.filter((e) => e.event === kind);
    assert.equal(byKind("accepted").length, 3);
    assert.match((byKind("accepted")[0] as { peer: string }).peer, /^127\.0\.0\.1:\d+$/);
    assert.deepEqual(
      byKind("refused").map((e) => (e as { reason: string }).reason),
      ["maxConnections 2"],
    );
    const ended = byKind("process-ended") as Extract<ServerEvent, { event: "process-ended" }>[];
    assert.deepEqual(ended.map((e) => e.state).sort(), ["failed", "finished", "killed"]);
    assert.equal(ended.find((e) => e.state === "failed")?.reason, "Error: asked to fail");
    assert.deepEqual(byKind("stopped"), [{ event: "stopped", server: "logged", accepted: 4, refused: 1 }]);
  } finally {
    restore();
  }
});

test("by default a server with an announce stream logs human-readable lines there", async () => {
  const out = new PassThrough();
  const text = collect(out);
  const server = await startUpServer({ function: makeStreamAndTalk, service: 0, processName: "texty", announce: out });
  servers.push(server);
  const c = await client(server.port);
  c.send("hi\n");
  await c.line();
  await eventually(() => text().includes("accepted"));
  const lines = text().trimEnd().split("\n");
  assert.equal(lines[0], `texty: listening on 127.0.0.1:${server.port}`);
  assert.match(
    lines[1] ?? "",
    new RegExp(`^\\d{4}-\\d\\d-\\d\\dT[\\d:.]+Z texty: accepted 127\\.0\\.0\\.1:${c.socket.localPort}$`),
  );
});

test("logger json writes one JSON object per line with a time", async () => {
  const out = new PassThrough();
  const text = collect(out);
  const server = await startUpServer({
    function: makeStreamAndTalk,
    service: 0,
    processName: "jsony",
    announce: out,
    logger: "json",
  });
  servers.push(server);
  const c = await client(server.port);
  c.send("x\n");
  await c.line();
  c.end();
  await c.closed();
  processKill(server);
  await eventually(() => text().includes('"stopped"'));
  const records = text()
    .trimEnd()
    .split("\n")
    .slice(1)
    .map((l) => JSON.parse(l) as Record<string, unknown>);
  assert.deepEqual(
    records.map((r) => r.event),
    ["started", "accepted", "process-ended", "stopped"],
  );
  for (const r of records) assert.match(String(r.time), /^\d{4}-\d\d-\d\dT/);
  assert.equal(records[2]?.state, "finished");
});

test("a server without announce or logger logs nothing, and a logger that throws is reported, not fatal", async () => {
  const { reports, restore } = captureReports();
  try {
    const server = await startUpServer({
      function: makeStreamAndTalk,
      service: 0,
      logger: () => {
        throw new Error("broken logger");
      },
    });
    servers.push(server);
    const c = await client(server.port);
    c.send("still served\n");
    assert.equal(await c.line(), "You sent: 'still served'");
    assert.ok(reports.some((r) => /logger/.test(r.what)));
  } finally {
    restore();
  }
});

test("a process started inside another has it as parent", async () => {
  let child: ReturnType<typeof processRunFunction> | undefined;
  const outer = processRunFunction("outer", {}, () => {
    child = processRunFunction("inner", {}, () => getCurrentProcess());
  });
  await eventually(() => child !== undefined);
  assert.equal(child?.parent, outer);
  assert.equal(outer.parent, undefined);
});

/** A writable that keeps what is written, synchronously. */
function sink(): { out: NodeJS.WritableStream; text: () => string } {
  let text = "";
  const out = { write: (chunk: string) => ((text += chunk), true) } as unknown as NodeJS.WritableStream;
  return { out, text: () => text };
}

test("the text logger shows names, peers and messages with controls, bidi and zero-width characters escaped, one event per line", () => {
  const { out, text } = sink();
  const log = textLogger(out);
  log({
    event: "process-ended",
    server: "srv\u001b[2J",
    process: 'evil\tname\u202e" finished\nforged',
    id: 7,
    state: "killed",
  });
  log({ event: "refused", server: "srv", peer: "1.2.3.4:5\u200b", reason: "bad\r\nheader\u0085" });
  log({ event: "error", server: "srv", message: "C:\\path\u2066x\u2069" });
  const lines = text().split("\n");
  assert.equal(lines.length, 4, "three lines and the newline after the last");
  assert.match(lines[0] ?? "", / srv\\u001b\[2J: process 7 "evil\\tname\\u202e\\" finished\\nforged" killed$/);
  assert.match(lines[1] ?? "", / srv: refused 1\.2\.3\.4:5\\u200b: bad\\r\\nheader\\u0085$/);
  assert.match(lines[2] ?? "", / srv: error: C:\\\\path\\u2066x\\u2069$/);
  assert.doesNotMatch(
    text(),
    /[\t\r\u001b\u0085\u200b\u202e\u2066\u2069]/u,
    "no raw control, bidi or zero-width character",
  );
});

test("the JSON logger writes bidi and zero-width characters and C1 controls as \\u escapes, and the values parse back unchanged", () => {
  const { out, text } = sink();
  const name = "evil\tname\u202e\u200b\u0085\u2028\u{e0041}";
  jsonLogger(out)({ event: "process-ended", server: "srv", process: name, id: 7, state: "finished" });
  assert.doesNotMatch(text(), /[\t\u0085\u200b\u202e\u2028]|\u{e0041}/u);
  assert.match(text(), /"process":"evil\\tname\\u202e\\u200b\\u0085\\u2028\\udb40\\udc41"/);
  assert.equal((JSON.parse(text()) as { process: string }).process, name);
});

test("what a client sends that reaches a text log line (a malformed PROXY header, with a C1 control in it) is shown escaped", async () => {
  const { out, text } = sink();
  const server = await startUpServer({
    service: 0,
    processName: "proxied",
    logger: textLogger(out),
    proxyProtocol: true,
    function: makeStreamAndTalk,
  });
  servers.push(server);
  const c = await client(server.port);
  // U+009B is CSI, a one-character escape sequence introducer: raw, `cat` on the log would clear the screen.
  c.socket.write(Buffer.from("PROXY TCP4 \x9b2J\r\n", "latin1"));
  await c.closed();
  await eventually(() => text().includes("refused"), 3000, "the refusal is logged");
  assert.match(text(), /proxied: refused 127\.0\.0\.1:\d+: malformed PROXY v1 line: "PROXY TCP4 \\u009b2J"\n$/);
  assert.doesNotMatch(text(), /\u009b/u);
});

test("the text log names a Unix socket server by its path, without a port; IPv6 in brackets", async () => {
  const dir = await mkdtemp(join(tmpdir(), "confab-log-"));
  try {
    const path = join(dir, "log.sock");
    const out = new PassThrough();
    const text = collect(out);
    const server = await startUpServer({
      function: makeStreamAndTalk,
      service: `unix:${path}`,
      processName: "unixy",
      logger: textLogger(out),
    });
    servers.push(server);
    assert.match(text(), new RegExp(`^\\S+ unixy: listening on ${path.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}\\n$`));
    assert.doesNotMatch(text(), /:0\b/);
    serverTerminate(server);

    const six = new PassThrough();
    const sixText = collect(six);
    const onSix = await startUpServer({
      function: makeStreamAndTalk,
      service: 0,
      address: "::1",
      processName: "sixy",
      logger: textLogger(six),
    });
    servers.push(onSix);
    assert.match(sixText(), new RegExp(`^\\S+ sixy: listening on \\[::1\\]:${onSix.port}\\n$`));
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
