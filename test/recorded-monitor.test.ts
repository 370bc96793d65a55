// The package's startUpServer hands a listener server's recordings to its monitor, whose page
// replays them: checked here, above both layers.
import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import http from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { serverTerminate, startUpServer, type ServerProcess } from "../src/index.js";
import { monitorOf } from "../src/monitor/attach.js";
import { LineClient } from "./support.js";

let dir: string;
const servers: ServerProcess[] = [];
const clients: LineClient[] = [];
before(async () => {
  dir = await mkdtemp(join(tmpdir(), "confab-recorded-"));
});
after(async () => {
  for (const c of clients) c.destroy();
  for (const s of servers) serverTerminate(s);
  await rm(dir, { recursive: true, force: true });
});

test("a server's monitor lists the sessions it records, for its page to replay", async () => {
  const recordings = join(dir, "monitored");
  const server = await startUpServer({ service: 0, record: recordings, monitor: 0 });
  servers.push(server);
  const monitor = monitorOf(server);
  assert.ok(monitor !== undefined);
  const c = await LineClient.connect(server.port);
  clients.push(c);
  c.send('"watched"\n1 + 1\n');
  await c.until("CL-USER 2 > ");
  const listed = await new Promise<string>((resolve, reject) => {
    http
      .get(
        {
          host: "127.0.0.1",
          port: monitor.port,
          path: "/api/recordings",
          headers: { "x-confab-token": monitor.token },
        },
        (res) => {
          let body = "";
          res.setEncoding("utf8");
          res.on("data", (chunk: string) => (body += chunk));
          res.on("end", () => resolve(body));
        },
      )
      .on("error", reject);
  });
  const files = JSON.parse(listed) as { name: string; id: number }[];
  assert.deepEqual(
    files.map((f) => f.name),
    ["watched"],
  );
  c.end();
  await c.closed();
});
