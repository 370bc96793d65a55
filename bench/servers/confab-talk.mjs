// The seed's talk server exactly as examples/talk.ts writes it on confab's public API
// (SocketStream, readLine, writeString, forceOutput, a process per connection).
let talk;
try {
  // CONFAB_DIST (a path to another build's dist/ directory) is for trying a build made elsewhere
  const dist = process.env.CONFAB_DIST ? new URL(`file://${process.env.CONFAB_DIST.replace(/\/?$/, "/")}`) : new URL("../../dist/", import.meta.url);
  talk = await import(new URL("examples/talk.js", dist).href);
} catch (err) {
  console.log(`UNAVAILABLE cannot load dist/examples/talk.js: ${String(err?.message ?? err).split("\n")[0].replace(/ imported from .*/, "")}`);
  process.exit(3);
}

try {
  const server = await talk.startTalkServer(Number(process.env.PORT ?? process.argv[2] ?? 0));
  console.log(`PORT ${server.port}`);
} catch (err) {
  console.log(`UNAVAILABLE startUpServer failed: ${String(err?.message ?? err).split("\n")[0]}`);
  process.exit(3);
}
