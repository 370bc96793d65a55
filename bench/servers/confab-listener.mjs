// confab's built-in listener server (startUpServer with no function).
//
// NODELAY=1 sets TCP_NODELAY on every accepted socket, as Node's REPL server beside it in the
// bench does (servers/node-repl.mjs): confab's server leaves Nagle on. It is set from the
// `net.server.socket` diagnostics channel, published as each connection is accepted, before
// the listener has written anything; src/ is not touched.
import dc from "node:diagnostics_channel";

if (process.env.NODELAY === "1") dc.subscribe("net.server.socket", ({ socket }) => socket.setNoDelay(true));

let confab;
try {
  // CONFAB_DIST (a path to another build's dist/ directory) is for trying a build made elsewhere
  const dist = process.env.CONFAB_DIST ? new URL(`file://${process.env.CONFAB_DIST.replace(/\/?$/, "/")}`) : new URL("../../dist/", import.meta.url);
  confab = await import(new URL("src/index.js", dist).href);
} catch (err) {
  console.log(`UNAVAILABLE cannot load dist/src/index.js: ${String(err?.message ?? err).split("\n")[0]}`);
  process.exit(3);
}
try {
  const server = await confab.startUpServer({ service: Number(process.env.PORT ?? process.argv[2] ?? 0) });
  console.log(`PORT ${server.port}`);
} catch (err) {
  console.log(`UNAVAILABLE startUpServer failed: ${String(err?.message ?? err).split("\n")[0]}`);
  process.exit(3);
}
