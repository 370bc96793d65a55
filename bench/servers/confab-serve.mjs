// The seed's talk server the way a user runs it: `confab serve --function` serving the talk
// example's exported handler (`makeStreamAndTalk`), with the command's defaults (its text log
// on standard output: a line per accepted connection and per finished process). It is the
// CLI itself, in this process (so the generator's pid is the server's): argv is what
// `confab serve --function dist/examples/talk.js#makeStreamAndTalk --service 0 --host 127.0.0.1`
// gives, and the only addition is the `PORT n` line the harness reads first, taken from the
// command's own "listening on" line.
import { pathToFileURL } from "node:url";

const dist = process.env.CONFAB_DIST ? new URL(`file://${process.env.CONFAB_DIST.replace(/\/?$/, "/")}`) : new URL("../../dist/", import.meta.url);
const main = new URL("src/cli/main.js", dist);
const handler = `${new URL("examples/talk.js", dist).pathname}#makeStreamAndTalk`;
const port = String(Number(process.env.PORT ?? process.argv[2] ?? 0));

// Until the command says where it listens: then `PORT n` goes first, and stdout is the
// command's own again.
const write = process.stdout.write;
process.stdout.write = function (chunk, ...rest) {
  const m = /listening on [^\s]*:(\d+)/.exec(String(chunk));
  if (m) {
    process.stdout.write = write;
    write.call(process.stdout, `PORT ${m[1]}\n`);
  }
  return write.call(process.stdout, chunk, ...rest);
};
// SERVE_ARGS: more options, to try the command with others than its defaults (`--log none --announce`).
const more = (process.env.SERVE_ARGS ?? "").split(/[ ,]/).filter(Boolean);
process.argv = [process.argv[0], main.pathname, "serve", "--function", handler, "--service", port, "--host", "127.0.0.1", ...more];
try {
  await import(pathToFileURL(main.pathname).href);
} catch (err) {
  console.log(`UNAVAILABLE cannot load ${main.pathname}: ${String(err?.message ?? err).split("\n")[0]}`);
  process.exit(3);
}
