// `confab mcp` end to end: the real command (run from source) driven by the MCP SDK's own client
// over stdio, against a real `confab serve` with users and an audit file.
import assert from "node:assert/strict";
import type { ChildProcess } from "node:child_process";
import { mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";
import { childEnv, confabArgv, root, startConfab } from "./cli.js";
import { freePort } from "./support.js";

const children: ChildProcess[] = [];
const clients: Client[] = [];
let port: number;
let dir: string;
let audit: string;
let agentToken: string;

before(async () => {
  dir = await mkdtemp(join(tmpdir(), "confab-mcp-"));
  audit = join(dir, "audit.jsonl");
  await writeFile(join(dir, "users"), "agent 4f1d2b9c8e7a6d5c\nalice 9a8b7c6d5e4f3a2b\n", { mode: 0o600 });
  agentToken = join(dir, "agent-token");
  await writeFile(agentToken, "agent 4f1d2b9c8e7a6d5c\n", { mode: 0o600 });
  const { child, match } = await startConfab(
    [
      "serve",
      "--service",
      "0",
      "--announce",
      "--token-file",
      join(dir, "users"),
      "--audit",
      audit,
      "--record",
      join(dir, "casts"),
    ],
    /listening on [\d.]+:(\d+)/,
  );
  children.push(child);
  port = Number(match[1]);
});

after(async () => {
  await Promise.all(clients.map((c) => c.close()));
  for (const child of children) child.kill("SIGKILL");
  await rm(dir, { recursive: true, force: true });
});

/** An MCP client, named `name`, connected to `confab mcp ...args` over stdio. */
async function mcpClient(args: string[], name = "test-agent"): Promise<Client> {
  const [command, ...rest] = confabArgv(["mcp", ...args]) as [string, ...string[]];
  const env = Object.fromEntries(
    Object.entries(childEnv()).filter((entry): entry is [string, string] => entry[1] !== undefined),
  );
  const transport = new StdioClientTransport({ command, args: rest, env, cwd: root, stderr: "pipe" });
  const client = new Client({ name, version: "1.0.0" });
  clients.push(client);
  await client.connect(transport);
  return client;
}

/** Waits until an asynchronous condition holds (at most 5 s). */
async function until(condition: () => Promise<boolean>): Promise<void> {
  const deadline = Date.now() + 5000;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error("the condition did not hold within 5 s");
  }
}

interface Evaluated {
  value: string;
  threw: boolean;
  status: string;
  output: string;
  newSession: boolean;
}

interface Row {
  id: number;
  name: string;
  state: string;
  whostate: string | null;
  user: string | null;
  current: boolean;
}

async function evaluate(client: Client, code: string, signal?: AbortSignal): Promise<Evaluated & { isError: boolean }> {
  const result = await client.callTool({ name: "evaluate", arguments: { code } }, undefined, signal ? { signal } : {});
  return { ...(result.structuredContent as Evaluated), isError: result.isError === true };
}

async function processes(client: Client): Promise<Row[]> {
  const result = await client.callTool({ name: "list_processes", arguments: {} });
  assert.notEqual(result.isError, true, JSON.stringify(result.content));
  return (result.structuredContent as { processes: Row[] }).processes;
}

test("confab mcp offers evaluate, list_processes and kill_process, with schemas", async () => {
  const client = await mcpClient([String(port), "--token-file", agentToken]);
  const { tools } = await client.listTools();
  assert.deepEqual(tools.map((t) => t.name).sort(), ["evaluate", "kill_process", "list_processes"]);
  const evaluateTool = tools.find((t) => t.name === "evaluate");
  assert.deepEqual(evaluateTool?.inputSchema.required, ["code"]);
  assert.ok(evaluateTool.outputSchema !== undefined);
  assert.equal(tools.find((t) => t.name === "list_processes")?.annotations?.readOnlyHint, true);
  assert.equal(client.getServerVersion()?.name, "confab");
});

test("evaluate runs in one session named after the MCP client: output, value, errors, declarations kept", async () => {
  const client = await mcpClient([String(port), "--token-file", agentToken]);
  const first = await evaluate(client, "const n: number = 20; console.log('hi'); n + 1");
  assert.deepEqual(
    { value: first.value, output: first.output, threw: first.threw, newSession: first.newSession },
    { value: "21", output: "hi\n", threw: false, newSession: true },
  );
  const second = await evaluate(client, "await Promise.resolve(n * 2)");
  assert.equal(second.value, "40", "the declaration of the first call is still there");
  assert.equal(second.newSession, false);
  const failed = await evaluate(client, "throw new RangeError('boom')");
  assert.equal(failed.isError, true);
  assert.equal(failed.threw, true);
  assert.match(failed.value, /RangeError: boom/);
  assert.equal((await evaluate(client, "mp.getCurrentProcess()?.name")).value, "'test-agent (mcp)'");
  assert.equal((await evaluate(client, "mp.getCurrentProcess()?.properties.user")).value, "'agent'");

  // Everything went through the listener: the audit has the session and each input, before it ran.
  const records = (await readFile(audit, "utf8"))
    .trim()
    .split("\n")
    .map((line) => JSON.parse(line) as Record<string, unknown>);
  const start = records.find((r) => r.event === "session-start" && r.session === "test-agent (mcp)");
  assert.ok(start !== undefined, "the session is on record under the client's name");
  assert.equal(start.user, "agent");
  assert.ok(records.some((r) => r.event === "input" && r.text === "await Promise.resolve(n * 2)"));
  assert.ok(records.some((r) => r.event === "outcome" && r.outcome === "error"));
  // And the recording: one asciicast file for the session, with the input and its answer.
  const cast = (await readdir(join(dir, "casts"))).find((f) => f.includes("test-agent"));
  assert.ok(cast !== undefined);
  const events = (await readFile(join(dir, "casts", cast), "utf8")).split("\n").slice(1).join("\n");
  assert.match(events, /await Promise\.resolve\(n \* 2\)/);
  assert.match(events, /"40/);
});

test("list_processes gives structured rows with whostate and user; kill_process ends one", async () => {
  const client = await mcpClient([String(port), "--token-file", agentToken], "fleet-bot");
  await evaluate(
    client,
    "mp.processRunFunction('napper', {}, () => mp.processWait('napping on purpose', new Promise(() => {}))); 0",
  );
  const rows = await processes(client);
  const napper = rows.find((r) => r.name === "napper");
  assert.ok(napper !== undefined, JSON.stringify(rows));
  assert.equal(napper.whostate, "napping on purpose");
  assert.equal(napper.state, "running");
  const session = rows.find((r) => r.name === "fleet-bot (mcp)");
  assert.equal(session?.user, "agent");
  const current = rows.filter((r) => r.current);
  assert.deepEqual(
    current.map((r) => r.name),
    ["fleet-bot (mcp) tools"],
    "the tools' own session, where no agent code runs",
  );

  const killed = await client.callTool({ name: "kill_process", arguments: { id: napper.id } });
  assert.deepEqual(killed.structuredContent, { killed: true });
  assert.equal(
    (await processes(client)).find((r) => r.id === napper.id),
    undefined,
  );
  const again = await client.callTool({ name: "kill_process", arguments: { id: napper.id } });
  assert.deepEqual(again.structuredContent, { killed: false });
  const invalid = await client.callTool({ name: "kill_process", arguments: { id: "seven" } });
  assert.equal(invalid.isError, true, "the SDK checks the arguments against the schema");
});

test("a cancelled evaluate is interrupted in the program, and the session goes on", async () => {
  const client = await mcpClient([String(port), "--token-file", agentToken], "canceller");
  await evaluate(client, "let kept = 'still here'");
  const cancel = new AbortController();
  const hanging = evaluate(client, "await new Promise(() => {})", cancel.signal);
  await until(async () =>
    (await processes(client)).some((r) => r.name === "canceller (mcp)" && r.whostate?.startsWith("Evaluating input 2")),
  );
  cancel.abort();
  await assert.rejects(hanging);
  // The listener abandoned the input: the session answers the next one, declarations kept.
  const next = await evaluate(client, "kept");
  assert.equal(next.value, "'still here'");
  assert.equal(next.newSession, false);
});

test("a session killed from elsewhere is opened again at the next call, and says so", async () => {
  const client = await mcpClient([String(port), "--token-file", agentToken], "phoenix");
  await evaluate(client, "const before = 1");
  const own = (await processes(client)).find((r) => r.name === "phoenix (mcp)");
  assert.ok(own !== undefined);
  await client.callTool({ name: "kill_process", arguments: { id: own.id } });
  let next = await evaluate(client, "typeof before");
  // The session's end may still be on its way when the call is made: a tool error, and the next call opens one.
  if (next.isError && !next.newSession) next = await evaluate(client, "typeof before");
  assert.equal(next.newSession, true);
  assert.equal(next.value, "'undefined'", "a new session has none of the old one's declarations");
});

test("a program that cannot be reached is a tool error saying why; the MCP server stays up", async () => {
  const closed = await freePort();
  const client = await mcpClient([String(closed), "--connect-timeout", "2000"]);
  const result = await client.callTool({ name: "evaluate", arguments: { code: "1" } });
  assert.equal(result.isError, true);
  const text = (result.content as { type: string; text: string }[])[0]?.text ?? "";
  assert.match(text, new RegExp(`127\\.0\\.0\\.1:${closed}`));
  assert.equal((await client.listTools()).tools.length, 3, "still serving");
});

test("a wrong token is a tool error, and the server records the refusal", async () => {
  const wrong = join(dir, "wrong-token");
  await writeFile(wrong, "agent 0000000000000000\n", { mode: 0o600 });
  const client = await mcpClient([String(port), "--token-file", wrong]);
  const result = await client.callTool({ name: "list_processes", arguments: {} });
  assert.equal(result.isError, true);
  assert.match((result.content as { text: string }[])[0]?.text ?? "", /not authorized/);
  const refused = (await readFile(audit, "utf8"))
    .trim()
    .split("\n")
    .map((line) => JSON.parse(line) as Record<string, unknown>)
    .filter((r) => r.event === "refused");
  assert.ok(
    refused.some((r) => typeof r.reason === "string" && r.reason.includes("wrong token")),
    JSON.stringify(refused),
  );
});
