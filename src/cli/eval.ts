import { lookup } from "node:dns/promises";
import { parseArgs } from "node:util";
import { ConfabError, ErrorCodes } from "../errors.js";
import { resolveService } from "../comm/services.js";
import { unixSocketPath } from "../comm/endpoint.js";
import { openStructuredSession, type EvaluationResult, type ListenerEndpoint } from "../listener/listener-client.js";
import { LISTENER_FLAGS, listenerEndpoint } from "./listener-session.js";

const USAGE = "usage: confab eval [HOST] SERVICE EXPR... [--json] [--each-address]";

/** Exit statuses: every input gave a value; one threw (or the session ended under it); no session could be had. */
const OK = 0;
const THREW = 1;
const NO_SESSION = 2;

/** Whether a word names a service (a port, a Unix socket path, a name in the services file) rather than a host. */
function isService(word: string): boolean {
  if (unixSocketPath(word) !== undefined) return true;
  try {
    resolveService(word);
    return true;
  } catch {
    return false;
  }
}

/**
 * `confab eval [HOST] SERVICE EXPR... [--json] [--each-address]`: evaluates each EXPR in order
 * in one listener session (the structured mode underneath) and prints what each wrote and its
 * value, as the REPL prints them; an error goes to standard error. An EXPR of `-` is all of
 * standard input, as one input.
 *
 * The first input that throws ends the run: later inputs are not sent, as a script stops at
 * its first uncaught error (`node -e`, `sh -e`), because a later input usually builds on an
 * earlier one. Exit status: 0 when every input gave a value, 1 when one threw (or the session
 * ended before answering), 2 when no session could be had (refused, unreachable, a wrong token,
 * the connect timeout).
 *
 * `--json` prints one JSON object a line for each input: `input` (its text), `value` or `error`
 * (printed as the REPL prints them), `threw`, `status` (`value`, `error`, `timeout`,
 * `interrupted`, `invalid`; `ended` when the session ended under it), `output` (what it
 * wrote), `ms`. A session that could not be had is one object `{ session: false, error, code }`.
 * `--each-address` gives the inputs to every address of HOST (as the system resolver lists
 * them) in parallel, one session each; each answer names its `address` (plain: a prefix on each
 * line), and the exit status is the worst.
 *
 * HOST is taken to be given when the first word is not a service; with `--host` it never is.
 */
export async function evaluateCommand(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    options: {
      ...LISTENER_FLAGS,
      json: { type: "boolean", default: false },
      "each-address": { type: "boolean", default: false },
    },
    allowPositionals: true,
    strict: true,
  });
  const [first, second] = positionals;
  if (first === undefined) throw new ConfabError(ErrorCodes.INVALID_ARGUMENT, USAGE);
  const hostGiven = values.host === undefined && second !== undefined && !isService(first);
  const where: [string] | [string, string] = hostGiven ? [first, second] : [first];
  const expressions = positionals.slice(where.length);
  if (expressions.length === 0) {
    throw new ConfabError(ErrorCodes.INVALID_ARGUMENT, `${USAGE}\n(no EXPR given: what should be evaluated?)`);
  }
  const endpoint = listenerEndpoint(values, where);
  const inputs = expressions.includes("-") ? await withStandardInput(expressions) : expressions;
  const json = values.json;

  if (!values["each-address"]) return run(endpoint, inputs, json, undefined);
  if ("path" in endpoint.target) {
    throw new ConfabError(ErrorCodes.INVALID_ARGUMENT, "--each-address needs a HOST and a port, not a Unix socket");
  }
  let addresses: string[];
  try {
    addresses = (await lookup(endpoint.target.host, { all: true })).map((a) => a.address);
  } catch (error) {
    const message = `cannot look up ${endpoint.target.host}: ${(error as Error).message}`;
    if (json) print({ session: false, error: message, code: (error as NodeJS.ErrnoException).code ?? "ERR_CONNECT" });
    process.stderr.write(`confab: ${message}\n`);
    return NO_SESSION;
  }
  const statuses = await Promise.all(addresses.map((address) => run(endpoint, inputs, json, address)));
  return Math.max(...statuses);
}

/** The inputs with `-` replaced by all of standard input (read once, however often `-` appears). */
async function withStandardInput(expressions: readonly string[]): Promise<string[]> {
  let text = "";
  process.stdin.setEncoding("utf8");
  for await (const chunk of process.stdin) text += chunk as string;
  // A file's last newline ends its last line; it is not part of the input.
  const input = text.endsWith("\n") ? text.slice(0, -1) : text;
  return expressions.map((e) => (e === "-" ? input : e));
}

function print(record: Record<string, unknown>): void {
  process.stdout.write(`${JSON.stringify(record)}\n`);
}

/** Every line of `text` with the address in front (plain output of `--each-address`). */
function prefixed(text: string, address: string | undefined): string {
  if (address === undefined || text === "") return text;
  const lines = text.split("\n");
  const last = lines.pop(); // "" when the text ends with its newline
  return lines.map((line) => `${address}: ${line}\n`).join("") + (last === "" ? "" : `${address}: ${last ?? ""}`);
}

/** One session at `address` (or the endpoint's host): the inputs in order, printed as they are answered; the exit status. */
async function run(
  endpoint: ListenerEndpoint,
  inputs: readonly string[],
  json: boolean,
  address: string | undefined,
): Promise<number> {
  const named = address === undefined ? {} : { address };
  let session;
  try {
    session = await openStructuredSession(endpoint, address === undefined ? {} : { address });
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error);
    const code = error instanceof ConfabError ? error.code : ErrorCodes.CONNECT;
    if (json) print({ ...named, session: false, error: message, code });
    process.stderr.write(prefixed(`confab: ${message}\n`, address));
    return NO_SESSION;
  }
  let status = OK;
  try {
    for (const input of inputs) {
      let result: EvaluationResult;
      try {
        result = await session.evaluate(input);
      } catch (error) {
        // The session ended under the input (killed, a connection limit).
        const message = error instanceof Error ? error.message : String(error);
        if (json) print({ ...named, input, error: message, threw: true, status: "ended", output: "", ms: 0 });
        process.stderr.write(prefixed(`confab: ${message}\n`, address));
        return THREW;
      }
      if (json) {
        const { value, threw, status: how, output, ms } = result;
        print({ ...named, input, ...(threw ? { error: value } : { value }), threw, status: how, output, ms });
      } else {
        process.stdout.write(prefixed(result.output, address));
        if (result.threw) process.stderr.write(prefixed(`${result.value}\n`, address));
        else process.stdout.write(prefixed(`${result.value}\n`, address));
      }
      if (result.threw) {
        status = THREW;
        break;
      }
    }
  } finally {
    await session.close();
  }
  return status;
}
