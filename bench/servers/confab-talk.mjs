// The seed's talk server, written on confab's public API exactly as SPEC.md describes it.
let confab;
try {
  // CONFAB_DIST (a path to another build's index.js) is for trying a build made elsewhere
  confab = await import(process.env.CONFAB_DIST ? new URL(`file://${process.env.CONFAB_DIST}`).href : "../../dist/index.js");
} catch (err) {
  console.log(`UNAVAILABLE cannot load dist/index.js: ${String(err?.message ?? err).split("\n")[0].replace(/ imported from .*/, "")}`);
  process.exit(3);
}
const { startUpServer, SocketStream, processRunFunction } = confab;

function makeStreamAndTalk(handle) {
  const stream = new SocketStream({ socket: handle, direction: "io" });
  processRunFunction(`talk ${handle.remotePort}`, {}, talkOnStream, stream);
}

async function talkOnStream(stream) {
  try {
    for (let line; (line = await stream.readLine()) !== null; ) {
      stream.writeString(`You sent: '${line}'\n`);
      stream.forceOutput();
    }
  } finally {
    stream.close();
  }
}

try {
  const server = await startUpServer({
    function: makeStreamAndTalk,
    service: Number(process.env.PORT ?? process.argv[2] ?? 0),
  });
  console.log(`PORT ${server.port}`);
} catch (err) {
  console.log(`UNAVAILABLE startUpServer failed: ${String(err?.message ?? err).split("\n")[0]}`);
  process.exit(3);
}
