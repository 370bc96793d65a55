#!/usr/bin/env node
// The `confab` command. Subcommands are loaded on demand so that `confab --help` starts fast.
import { ConfabError } from "../errors.js";
import { usage } from "./usage.js";

async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  switch (command) {
    case "serve":
      return (await import("./serve.js")).serve(rest);
    case "connect":
      return (await import("./connect.js")).connect(rest);
    case "eval":
      return (await import("./eval.js")).evaluateCommand(rest);
    case "mcp":
      return (await import("./mcp.js")).mcpCommand(rest);
    case "talk":
      return (await import("./talk.js")).talk(rest);
    case undefined:
    case "help":
    case "--help":
    case "-h":
      process.stdout.write(usage);
      return command === undefined ? 2 : 0;
    case "--version":
    case "-v":
      process.stdout.write(`${(await import("./version.js")).version()}\n`);
      return 0;
    default:
      process.stderr.write(`confab: unknown command "${command}"\n\n${usage}`);
      return 2;
  }
}

// `confab talk | head -2`: a reader that goes away is the end of our output, not a crash.
process.stdout.on("error", (error: NodeJS.ErrnoException) => {
  if (error.code === "EPIPE") process.exit(0);
  throw error;
});

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (error: unknown) => {
    const usageError =
      error instanceof TypeError && (error as NodeJS.ErrnoException).code?.startsWith("ERR_PARSE_ARGS") === true;
    // Errors the user can act on print as one line; anything else is a bug, shown with its stack.
    const text =
      error instanceof ConfabError || usageError
        ? error.message
        : error instanceof Error
          ? (error.stack ?? error.message)
          : String(error);
    process.stderr.write(`confab: ${text}\n`);
    process.exitCode = usageError ? 2 : 1;
  },
);
