// The core/preset split: comm's core startUpServer knows no default `function`; the package's
// (comm.startUpServer and the named export) is the preset that serves listeners without one,
// and a listener session's `comm` is the package's.
import assert from "node:assert/strict";
import { test } from "node:test";
import * as core from "../src/comm/index.js";
import {
  comm,
  openStructuredSession,
  type EvaluationResult,
  type ListenerEndpoint,
  ConfabError,
  ErrorCodes,
  serverTerminate,
  startUpServer,
  ServerProcess,
  TcpServerProcess,
  ClusterServerProcess,
  mp,
  makeMailbox,
  mailboxSend,
  mailboxRead,
  mailboxPeek,
  mailboxCount,
  mailboxEmptyP,
  processSend,
  Mailbox,
  type MailboxOptions,
  type MailboxReadOptions,
} from "../src/index.js";
import { testServers } from "./support.js";

const { start, client } = testServers();

test("comm.startUpServer and the named export are the preset; comm's core is another function", () => {
  assert.equal(comm.startUpServer, startUpServer);
  assert.notEqual(core.startUpServer, startUpServer);
  assert.equal(comm.serverTerminate, core.serverTerminate);
});

test("comm's core startUpServer without a function rejects: it knows nothing of listeners", async () => {
  await assert.rejects(
    core.startUpServer({ service: 0 }),
    (error: unknown) => error instanceof ConfabError && error.code === ErrorCodes.INVALID_ARGUMENT,
  );
});

test("the TCP server and the cluster server are siblings under the abstract ServerProcess", async () => {
  assert.equal(Object.getPrototypeOf(TcpServerProcess), ServerProcess);
  assert.equal(Object.getPrototypeOf(ClusterServerProcess), ServerProcess);
  const server = await startUpServer({ service: 0, function: (socket) => socket.destroy() });
  try {
    assert.ok(server instanceof TcpServerProcess);
    assert.ok(server instanceof ServerProcess);
  } finally {
    serverTerminate(server);
  }
});

test("a listener session's comm is the package's: its startUpServer is the preset", async () => {
  const server = await start({ context: { preset: startUpServer } });
  const c = await client(server.port);
  c.send('"layers"\ncomm.startUpServer === preset\n');
  c.end();
  await c.closed(10_000);
  assert.match(c.received, /CL-USER 1 > true\n/);
});

test("mp's mailbox names are on the face both ways: in the mp namespace and as named exports", () => {
  const named = {
    makeMailbox,
    mailboxSend,
    mailboxRead,
    mailboxPeek,
    mailboxCount,
    mailboxEmptyP,
    processSend,
    Mailbox,
  };
  for (const [name, value] of Object.entries(named)) assert.equal(Reflect.get(mp, name), value, name);
  const options: MailboxOptions & MailboxReadOptions = { name: "face", size: 1, timeout: 0, waitReason: "x" };
  const box: mp.Mailbox<number> = mp.makeMailbox<number>(options);
  assert.ok(box instanceof Mailbox);
});

test("the face exports the structured client: a program evaluates in a listener the package started", async () => {
  const server = await startUpServer({ service: 0, context: { stock: 7 } });
  try {
    const endpoint: ListenerEndpoint = { target: { host: "127.0.0.1", port: server.port }, name: "face client" };
    const session = await openStructuredSession(endpoint);
    const result: EvaluationResult = await session.evaluate("console.log('counting'); stock * 6");
    assert.deepEqual([result.value, result.output, result.threw], ["42", "counting\n", false]);
    await session.close();
  } finally {
    serverTerminate(server);
  }
});
