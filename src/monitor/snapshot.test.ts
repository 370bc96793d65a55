import assert from "node:assert/strict";
import { after, test } from "node:test";
import { makeStreamAndTalk } from "../../examples/talk.js";
import { eventually, LineClient, sleep } from "../../test/support.js";
import { openTcpStream } from "../comm/client.js";
import { serverTerminate, startUpServer } from "../index.js";
import { processKill, processRunFunction, type Process } from "../mp/process.js";
import { listAllProcesses } from "../mp/registry.js";
import { History } from "./history.js";
import { takeSnapshot } from "./snapshot.js";

after(() => {
  for (const p of listAllProcesses()) processKill(p);
});

function never(signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => signal.addEventListener("abort", () => resolve()));
}

test("a snapshot lists servers with counters, processes with kind, parent, peer and bytes, and connections", async () => {
  const server = await startUpServer({ function: makeStreamAndTalk, service: 0, processName: "snap server" });
  const plain: Process = processRunFunction(
    "plain worker",
    {},
    (p: AbortSignal) => never(p),
    new AbortController().signal,
  );
  const client = await LineClient.connect(server.port);
  try {
    client.send("ping\n");
    assert.equal(await client.line(), "You sent: 'ping'");
    const name = `talk ${client.socket.localPort}`;
    const snap = takeSnapshot({});

    const serverRow = snap.servers.find((s) => s.id === server.id);
    assert.deepEqual(serverRow && { ...serverRow, counters: { ...serverRow.counters } }, {
      id: server.id,
      name: "snap server",
      listening: `127.0.0.1:${server.port}`,
      counters: {
        accepted: 1,
        active: 1,
        waiting: 0,
        refused: 0,
        timedOut: 0,
        dropped: 0,
        bytesIn: 5,
        bytesOut: 17,
        errors: 0,
      },
    });

    const talk = snap.processes.find((p) => p.name === name);
    assert.ok(talk, `${name} is listed`);
    assert.equal(talk.kind, "connection");
    assert.equal(talk.user, null, "a connection's process names no user");
    assert.equal(talk.state, "running");
    assert.equal(talk.parent, server.id);
    assert.equal(talk.parentName, "snap server");
    assert.equal(talk.peer, `127.0.0.1:${client.socket.localPort}`);
    assert.equal(talk.bytesIn, 5);
    assert.equal(talk.bytesOut, 17);
    assert.ok(talk.age >= 0 && talk.age < 5000);

    const serverProcess = snap.processes.find((p) => p.id === server.id);
    assert.equal(serverProcess?.kind, "server");
    assert.equal(serverProcess.peer, `127.0.0.1:${server.port}`);
    const plainRow = snap.processes.find((p) => p.id === plain.id);
    assert.deepEqual(
      plainRow && {
        kind: plainRow.kind,
        user: plainRow.user,
        peer: plainRow.peer,
        bytesIn: plainRow.bytesIn,
        parent: plainRow.parent,
      },
      { kind: "process", user: null, peer: null, bytesIn: null, parent: null },
    );

    assert.deepEqual(snap.connections, [
      {
        process: talk.id,
        processName: name,
        server: "snap server",
        local: `127.0.0.1:${server.port}`,
        peer: `127.0.0.1:${client.socket.localPort}`,
        bytesIn: 5,
        bytesOut: 17,
        age: snap.connections[0]?.age,
      },
    ]);
    assert.equal(snap.omitted, 0);
    assert.equal(snap.monitor, null);
    // It is plain data: it survives JSON as it is.
    assert.deepEqual(JSON.parse(JSON.stringify(snap)), snap);
  } finally {
    client.destroy();
    processKill(plain);
    serverTerminate(server);
  }
});

test("a snapshot lists at most maxRows processes and counts the rest, but every server", async () => {
  const server = await startUpServer({ function: makeStreamAndTalk, service: 0 });
  const many = Array.from({ length: 20 }, (_, i) =>
    processRunFunction(`filler ${i}`, {}, (s: AbortSignal) => never(s), new AbortController().signal),
  );
  try {
    const snap = takeSnapshot({ maxRows: 5 });
    assert.equal(snap.processes.length, 5);
    assert.equal(snap.omitted, listAllProcesses().length - 5);
    assert.ok(snap.servers.some((s) => s.id === server.id));
  } finally {
    for (const p of many) processKill(p);
    serverTerminate(server);
  }
});

test("history samples open connections and throughput, never negative, and keeps only its capacity", async () => {
  const server = await startUpServer({ function: makeStreamAndTalk, service: 0 });
  try {
    const history = new History(3);
    const quiet = history.sample();
    assert.equal(quiet.connections, 0);
    assert.equal(quiet.bytesPerSecond, 0);

    // A client of the program's own (no server started it) counts as a connection too.
    const talk = await openTcpStream("127.0.0.1", server.port);
    const own = processRunFunction("own client", {}, async () => {
      talk.writeLine("x".repeat(999));
      talk.forceOutput();
      await talk.readLine();
      await never(new AbortController().signal);
    });
    await eventually(() => server.counters.bytesOut > 1000, 5000, "the reply");
    await sleep(20);
    const busy = history.sample();
    assert.equal(busy.connections, 2, "the server's connection and the program's own client");
    assert.ok(busy.bytesPerSecond > 0, `throughput ${busy.bytesPerSecond}`);

    // A server that goes away takes its total with it: no negative rate.
    processKill(own);
    serverTerminate(server);
    await sleep(20);
    const after = history.sample();
    assert.ok(after.bytesPerSecond >= 0);
    history.sample();
    const kept = history.samples();
    assert.equal(kept.length, 3);
    assert.deepEqual(kept.slice(0, 2), [busy, after]);
    assert.ok(
      kept.every((s, i) => i === 0 || s.time >= (kept[i - 1]?.time ?? 0)),
      "oldest first",
    );
  } finally {
    serverTerminate(server);
  }
});

test("names a client chose, with a tab, a bidi override and a zero-width space, are shown escaped in a snapshot, and the row's parent too", async () => {
  let child: Process | undefined;
  const parent = processRunFunction("parent\u202e", {}, () => {
    child = processRunFunction("evil\tname\u200b", {}, (s: AbortSignal) => never(s), new AbortController().signal);
    return never(new AbortController().signal);
  });
  try {
    await eventually(() => child !== undefined);
    const snap = takeSnapshot({});
    const row = snap.processes.find((p) => p.id === child?.id);
    assert.equal(row?.name, "evil\\tname\\u200b");
    assert.equal(row.parentName, "parent\\u202e");
    assert.equal(snap.processes.find((p) => p.id === parent.id)?.name, "parent\\u202e");
    assert.doesNotMatch(JSON.stringify(snap), /[\u202e\u200b]/u);
  } finally {
    processKill(parent);
    if (child !== undefined) processKill(child);
  }
});

test("a session's user comes from its process's properties.user, shown escaped; anything but a string is no user", () => {
  const sessions = [
    processRunFunction(
      "alice's",
      { properties: { kind: "listener", user: "alice" } },
      never,
      new AbortController().signal,
    ),
    processRunFunction(
      "evil's",
      { properties: { kind: "listener", user: "ev\u202eil\n" } },
      never,
      new AbortController().signal,
    ),
    processRunFunction("numbered", { properties: { kind: "listener", user: 42 } }, never, new AbortController().signal),
    processRunFunction("anonymous", { properties: { kind: "listener" } }, never, new AbortController().signal),
  ];
  try {
    const rows = takeSnapshot({}).processes;
    assert.deepEqual(
      sessions.map((s) => rows.find((r) => r.id === s.id)?.user),
      ["alice", "ev\\u202eil\\n", null, null],
    );
    // Every row has the field, so the shape is the same for every process.
    assert.ok(rows.every((r) => "user" in r));
  } finally {
    for (const s of sessions) processKill(s);
  }
});
