import { parseArgs } from "node:util";
import { ConfabError, ErrorCodes } from "../errors.js";
import {
  openStructuredSession,
  type EvaluationResult,
  type ListenerEndpoint,
  type StructuredSession,
} from "../listener/listener-client.js";
import { LISTENER_FLAGS, listenerEndpoint } from "./listener-session.js";
import { version } from "./version.js";
import type { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
import type * as Zod from "zod";

const USAGE = "usage: confab mcp [HOST] SERVICE [--name NAME] [--token-file FILE] [--tls ...]";

/** Most of an input's output and value a tool answer carries, in characters: an agent's context is small. */
const MAX_TOOL_TEXT = 100_000;

/**
 * What `list_processes` evaluates: the rows of `ps()` as one JSON line of output. It runs in a
 * session of its own, where no agent code runs, so a name the agent declared (`const ps = ...`)
 * cannot change what it means.
 */
const LIST_CODE =
  "console.log(JSON.stringify(ps().map((r) => ({ id: r.id, name: r.name, state: r.state, " +
  "whostate: r.waiting ?? null, user: r.user ?? null, peer: r.peer ?? null, bytesIn: r.bytesIn ?? null, " +
  "bytesOut: r.bytesOut ?? null, age: r.age, current: r.id === mp.getCurrentProcess()?.id }))))";

/** One process as `list_processes` gives it (the rows of `ps()`, with `whostate` for its `waiting`). */
interface ProcessEntry {
  readonly id: number;
  readonly name: string;
  readonly state: string;
  readonly whostate: string | null;
  readonly user: string | null;
  readonly peer: string | null;
  readonly bytesIn: number | null;
  readonly bytesOut: number | null;
  readonly age: number;
  readonly current: boolean;
}

/** A tool's answer, as MCP's `tools/call` result. */
interface ToolAnswer {
  [key: string]: unknown;
  content: { type: "text"; text: string }[];
  structuredContent?: Record<string, unknown>;
  isError?: boolean;
}

/** Text cut to {@link MAX_TOOL_TEXT} characters, saying how much was left out. */
function bounded(text: string): string {
  return text.length <= MAX_TOOL_TEXT
    ? text
    : `${text.slice(0, MAX_TOOL_TEXT)}\n… (${text.length - MAX_TOOL_TEXT} more characters left out)`;
}

function failure(error: unknown): ToolAnswer {
  const message = error instanceof Error ? error.message : String(error);
  return { content: [{ type: "text", text: message }], isError: true };
}

/**
 * A listener session opened when first needed and opened again once it has ended (killed, the
 * server restarted): the MCP server outlives its program's restarts.
 */
class LazySession {
  readonly #endpoint: ListenerEndpoint;
  #session: Promise<StructuredSession> | undefined;
  #live = false;

  constructor(endpoint: ListenerEndpoint) {
    this.#endpoint = endpoint;
  }

  /** The session, and whether it was opened for this call. */
  async get(): Promise<{ session: StructuredSession; opened: boolean }> {
    const opened = this.#session === undefined;
    if (opened) {
      const session = openStructuredSession(this.#endpoint);
      this.#session = session;
      session.then(
        (s) => {
          this.#live = true;
          void s.ended.then(() => {
            this.#live = false;
            if (this.#session === session) this.#session = undefined;
          });
        },
        () => {
          if (this.#session === session) this.#session = undefined;
        },
      );
    }
    return { session: await (this.#session as Promise<StructuredSession>), opened };
  }

  /** Evaluates `code`, interrupting it if `signal` aborts (the MCP client cancelled the call). */
  async evaluate(code: string, signal: AbortSignal): Promise<EvaluationResult & { newSession: boolean }> {
    const { session, opened } = await this.get();
    return { ...(await session.evaluate(code, { signal })), newSession: opened };
  }

  async close(): Promise<void> {
    const session = this.#session;
    this.#session = undefined;
    if (session === undefined || !this.#live) return;
    await (await session).close();
  }
}

/**
 * `confab mcp [HOST] SERVICE`: a Model Context Protocol server on standard input and output
 * (built on the official TypeScript SDK), through which an agent reaches a running program's
 * listener server with three tools: `evaluate`, `list_processes`, `kill_process`. Every call
 * goes through a listener session named after the MCP client (`--name` overrides it), so the
 * server's token, audit and recording apply to it as to a person's session: `evaluate` has a
 * session of its own, whose declarations persist between calls; the other two share another,
 * where no agent code runs. Sessions are opened at the first call that needs one and opened
 * again after they end, so the MCP server outlives restarts of the program; a call that cannot
 * reach the program is a tool error saying why. Connection and authentication flags are
 * `confab connect`'s.
 */
export async function mcpCommand(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({ args: argv, options: LISTENER_FLAGS, allowPositionals: true });
  if (positionals.length === 0 || positionals.length > 2) {
    throw new ConfabError(ErrorCodes.INVALID_ARGUMENT, USAGE);
  }
  const base = listenerEndpoint(values, positionals as [string] | [string, string]);
  // Loaded here: the SDK is a large module tree, and the other commands never need it.
  const [{ McpServer }, { StdioServerTransport }, z] = await Promise.all([
    import("@modelcontextprotocol/sdk/server/mcp.js"),
    import("@modelcontextprotocol/sdk/server/stdio.js"),
    import("zod"),
  ]);
  const server = new McpServer(
    { name: "confab", version: version() },
    {
      instructions:
        "These tools reach inside a running Node.js program through its confab listener server. " +
        "evaluate runs code in the program itself: its side effects are real.",
    },
  );
  // Named once the client has said who it is (initialize comes before any tool call).
  let sessions: Sessions | undefined;
  const sessionsFor = (): Sessions => {
    if (sessions !== undefined) return sessions;
    const client = server.server.getClientVersion()?.name ?? "unknown client";
    const name = values.name ?? `${client} (mcp)`;
    sessions = {
      code: new LazySession({ ...base, name }),
      tools: new LazySession({ ...base, name: `${name} tools` }),
    };
    return sessions;
  };
  registerTools(server, z, sessionsFor);

  const transport = new StdioServerTransport();
  const closed = new Promise<void>((resolve) => {
    transport.onclose = resolve;
    process.stdin.once("end", resolve);
  });
  await server.connect(transport);
  await closed;
  await Promise.all([sessions?.code.close(), sessions?.tools.close()]);
  await server.close();
  return 0;
}

/** The two sessions of an MCP client: one for its code, one for the tools' own inputs. */
interface Sessions {
  readonly code: LazySession;
  readonly tools: LazySession;
}

/** A call's failure (no session, a session that ended under it) as the tool error the agent reads. */
async function answering(call: () => Promise<ToolAnswer>): Promise<ToolAnswer> {
  try {
    return await call();
  } catch (error) {
    return failure(error);
  }
}

function registerTools(server: McpServer, z: typeof Zod, sessions: () => Sessions): void {
  server.registerTool(
    "evaluate",
    {
      title: "Evaluate in the running program",
      description:
        "Evaluates TypeScript or JavaScript inside the running Node.js program, in a confab listener session: " +
        "top-level await works, and declarations (const, let, function, class) persist from one call to the " +
        "next until the session ends (newSession says when one was opened). Returns what the input wrote " +
        "(console.log) and its value, printed as Node's REPL prints it. In the session, ps() lists the " +
        "program's processes, kill(id) ends one, mp and comm are confab's namespaces, help() says more.",
      inputSchema: { code: z.string().describe("One whole input; it may span several lines.") },
      outputSchema: {
        value: z.string().describe("The value as the REPL prints it, or the error as printed."),
        threw: z.boolean(),
        status: z.enum(["value", "error", "timeout", "interrupted", "invalid"]),
        output: z.string().describe("What the input wrote while it ran."),
        ms: z.number(),
        input: z.number().int().nullable().describe("The input's number in its session."),
        newSession: z.boolean().describe("A new session was opened for this call: earlier declarations are gone."),
      },
    },
    ({ code }, extra) => answering(() => evaluateTool(sessions().code, code, extra.signal)),
  );
  server.registerTool(
    "list_processes",
    {
      title: "List the program's processes",
      description:
        "Lists the running program's confab processes (servers, connections, listener sessions, its own " +
        "light-weight processes): id, name, state, what each waits for (whostate), whose session it is, its " +
        "peer, bytes in and out, and age in ms. current marks the session this tool runs in.",
      outputSchema: {
        processes: z.array(
          z.object({
            id: z.number().int(),
            name: z.string(),
            state: z.string(),
            whostate: z.string().nullable(),
            user: z.string().nullable(),
            peer: z.string().nullable(),
            bytesIn: z.number().int().nullable(),
            bytesOut: z.number().int().nullable(),
            age: z.number(),
            current: z.boolean(),
          }),
        ),
      },
      annotations: { readOnlyHint: true },
    },
    (extra) => answering(() => listTool(sessions().tools, extra.signal)),
  );
  server.registerTool(
    "kill_process",
    {
      title: "Kill a process",
      description:
        "Kills one of the program's processes by its id (from list_processes), as kill(id) in a listener: " +
        "what it owns (its connection, a server's socket) is closed. killed is false when no live process " +
        "has that id.",
      inputSchema: { id: z.number().int().positive().describe("The process's id.") },
      outputSchema: { killed: z.boolean() },
      annotations: { destructiveHint: true, idempotentHint: true },
    },
    ({ id }, extra) => answering(() => killTool(sessions().tools, id, extra.signal)),
  );
}

async function evaluateTool(session: LazySession, code: string, signal: AbortSignal): Promise<ToolAnswer> {
  const result = await session.evaluate(code, signal);
  const output = bounded(result.output);
  const value = bounded(result.value);
  const text = output === "" ? value : `${output}${output.endsWith("\n") ? "" : "\n"}${value}`;
  return {
    content: [{ type: "text", text }],
    structuredContent: {
      value,
      threw: result.threw,
      status: result.status,
      output,
      ms: result.ms,
      input: result.input,
      newSession: result.newSession,
    },
    ...(result.threw ? { isError: true } : {}),
  };
}

/** Runs one of the tools' own inputs, which print their answer as one JSON line. */
async function toolJson(session: LazySession, code: string, signal: AbortSignal): Promise<unknown> {
  const result = await session.evaluate(code, signal);
  if (result.threw) throw new Error(result.value);
  return JSON.parse(result.output);
}

async function listTool(session: LazySession, signal: AbortSignal): Promise<ToolAnswer> {
  const processes = (await toolJson(session, LIST_CODE, signal)) as ProcessEntry[];
  return {
    content: [{ type: "text", text: JSON.stringify(processes) }],
    structuredContent: { processes },
  };
}

async function killTool(session: LazySession, id: number, signal: AbortSignal): Promise<ToolAnswer> {
  const killed = (await toolJson(session, `console.log(JSON.stringify(kill(${id})))`, signal)) === true;
  return {
    content: [{ type: "text", text: killed ? `killed process ${id}` : `no live process ${id}` }],
    structuredContent: { killed },
  };
}
