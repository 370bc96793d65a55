// The seed's talk server (examples/talk.ts's makeStreamAndTalk) with startUpServer's `workers`
// option: WORKERS=N processes behind one port (node:cluster); WORKERS=1 is the plain
// one-process server. cluster re-runs this script in every worker, where the same
// startUpServer call just listens. The primary prints `PORT n PIDS primary,worker,...`.
import cluster from "node:cluster";

let confab, talk;
try {
  // CONFAB_DIST (a path to another build's dist/ directory) is for trying a build made elsewhere
  const dist = process.env.CONFAB_DIST ? new URL(`file://${process.env.CONFAB_DIST.replace(/\/?$/, "/")}`) : new URL("../../dist/", import.meta.url);
  confab = await import(new URL("src/index.js", dist).href);
  talk = await import(new URL("examples/talk.js", dist).href);
} catch (err) {
  if (cluster.isPrimary) console.log(`UNAVAILABLE cannot load dist/: ${String(err?.message ?? err).split("\n")[0].replace(/ imported from .*/, "")}`);
  process.exit(3);
}

const workers = Number(process.env.WORKERS ?? 1);
let server;
try {
  server = await confab.startUpServer({ function: talk.makeStreamAndTalk, service: Number(process.env.PORT ?? 0), workers });
} catch (err) {
  if (cluster.isPrimary) console.log(`UNAVAILABLE startUpServer failed: ${String(err?.message ?? err).split("\n")[0]}`);
  process.exit(3);
}
if (cluster.isPrimary) {
  const pids = [process.pid, ...(server.workers ?? []).map((w) => w.pid)];
  console.log(`PORT ${server.port} PIDS ${pids.join(",")}`);
  // Stop the workers before going: the harness sends SIGTERM, then SIGKILL after 2 s.
  process.once("SIGTERM", () => {
    if (typeof server.terminate === "function") server.terminate(1000).then(() => process.exit(0));
    else process.exit(0);
  });
}
