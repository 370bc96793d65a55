// The monitor page in a real browser: headless Chromium (Debian's package) driven by
// playwright-core. A raw TCP client connects to the talk server; its process appears on the
// page; the page's kill button kills it; the row goes and the client gets end of file. And a
// session's user shows on its row, and its recording replays in the page with asciinema's
// player, served by the monitor itself.
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { chromium, type BrowserContext } from "playwright-core";
import { makeStreamAndTalk } from "../examples/talk.js";
import { startUpServer, serverTerminate, type ServerProcess } from "../src/index.js";
import { monitorOf } from "../src/monitor/attach.js";
import { startMonitor, type MonitorProcess } from "../src/monitor/monitor-server.js";
import { processKill, processRunFunction, type Process } from "../src/mp/process.js";
import { findProcessFromName } from "../src/mp/registry.js";
import { root } from "./cli.js";
import { hang, LineClient } from "./support.js";

const CHROMIUM = "/usr/bin/chromium";
const ARGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
];
const SCREENSHOT = join(root, "test-artifacts", "monitor.png");
const REPLAY_SCREENSHOT = join(root, "test-artifacts", "monitor-replay.png");
const skip = existsSync(CHROMIUM) ? false : `${CHROMIUM} is missing (apt-get install chromium; .ci/run installs it)`;

test(
  "the monitor page shows a new connection's process live, and its kill button kills it",
  { skip, timeout: 60_000 },
  async () => {
    let server: ServerProcess | undefined;
    let context: BrowserContext | undefined;
    let client: LineClient | undefined;
    const profile = await mkdtemp(join(tmpdir(), "confab-chromium-"));
    try {
      server = await startUpServer({ function: makeStreamAndTalk, service: 0, monitor: 0 });
      const monitor = monitorOf(server);
      assert.ok(monitor, "the monitor option started a monitor");

      context = await chromium.launchPersistentContext(profile, {
        executablePath: CHROMIUM,
        headless: true,
        args: ARGS,
        viewport: { width: 1280, height: 860 },
        timeout: 20_000,
      });
      const page = context.pages()[0] ?? (await context.newPage());
      page.setDefaultTimeout(10_000);
      const problems: string[] = [];
      page.on("pageerror", (error) => problems.push(`page error: ${error.message}`));
      page.on("console", (message) => {
        if (message.type() === "error") problems.push(`console error: ${message.text()}`);
      });

      await page.goto(monitor.url);
      await page.locator("#status.live").waitFor();
      await page.locator(`tr[data-name="${server.name}"]`).waitFor();

      client = await LineClient.connect(server.port);
      const name = `talk ${client.socket.localPort}`;
      client.send("Hello self.\n");
      assert.equal(await client.line(), "You sent: 'Hello self.'");
      const row = page.locator(`#processes tr[data-name="${name}"]`);
      await row.waitFor();
      // Bytes in and out: "Hello self.\n", and "You sent: 'Hello self.'\n" (within a second);
      // and what it waits for: its client's next line.
      await row.filter({ hasText: "24 B" }).waitFor();
      assert.match(
        (await row.innerText()).replace(/\s+/g, " "),
        new RegExp(
          `^#\\d+ ${name} connection running \\d+s #${server.id} ${server.name} 127\\.0\\.0\\.1:(\\d+) 12 B 24 B Waiting for input from 127\\.0\\.0\\.1:\\1 Kill$`,
        ),
      );
      await page.locator(`#connections tr`, { hasText: name }).waitFor();

      // A few seconds of traffic, so that the sparklines have something to show.
      for (let i = 0; i < 3; i++) {
        client.send(`${"x".repeat(2000 * (i + 1))}\n`);
        await client.line();
        await page.waitForTimeout(1000);
      }
      await mkdir(join(root, "test-artifacts"), { recursive: true });
      await page.screenshot({ path: SCREENSHOT, fullPage: true });

      // Two clicks: the first arms the button, the second kills.
      const button = row.locator("button.kill");
      await button.click();
      assert.equal(await button.innerText(), "Confirm");
      await button.click();
      await row.waitFor({ state: "detached" });
      await client.closed(5000);
      assert.equal(findProcessFromName(name), undefined, "the process is gone");
      assert.match(await page.locator("#toast").innerText(), new RegExp(`^Killed #\\d+ ${name}$`));
      assert.deepEqual(problems, []);
    } finally {
      client?.destroy();
      await context?.close();
      if (server !== undefined) serverTerminate(server);
      await rm(profile, { recursive: true, force: true });
    }
  },
);

/** A recording's file name, as the recorder names them: `<ISO time, ':' as '-'>-<id>-<slug>.cast`. */
function recordingName(at: Date, id: number, slug: string): string {
  return `${at.toISOString().replace(/:/g, "-")}-${id}-${slug}.cast`;
}

/** An asciicast v2 recording: a prompt, then `text` a little later. */
function cast(text: string): string {
  const header = { version: 2, width: 80, height: 24, timestamp: Math.floor(Date.now() / 1000) };
  return (
    [header, [0.1, "o", "CL-USER 1 > "], [0.4, "o", `${text}\r\n`]].map((l) => JSON.stringify(l)).join("\n") + "\n"
  );
}

test(
  "the monitor page shows a session's user, and replays recordings in the page with asciinema's player, loading nothing from elsewhere",
  { skip, timeout: 60_000 },
  async () => {
    let monitor: MonitorProcess | undefined;
    let context: BrowserContext | undefined;
    let session: Process | undefined;
    const profile = await mkdtemp(join(tmpdir(), "confab-chromium-"));
    const recordings = await mkdtemp(join(tmpdir(), "confab-recordings-"));
    try {
      session = processRunFunction("sess", { properties: { kind: "listener", user: "alice" } }, () => hang());
      const id = session.id;
      const now = Date.now();
      const live = recordingName(new Date(now), id, "sess");
      // Ids start again with every run of a program: yesterday's file with this id is not this session's.
      const earlierRun = recordingName(new Date(now - 86_400_000), id, "sess");
      const ended = recordingName(new Date(now - 3_600_000), 987_654, "bob-s-session");
      await writeFile(join(recordings, live), cast("hello from alice's live session"));
      await writeFile(join(recordings, earlierRun), cast("said in an earlier run"));
      await writeFile(join(recordings, ended), cast("an ended session said goodbye"));
      await writeFile(join(recordings, "notes.txt"), "not a recording");
      monitor = await startMonitor({ port: 0, recordings });
      const origin = new URL(monitor.url).origin;

      context = await chromium.launchPersistentContext(profile, {
        executablePath: CHROMIUM,
        headless: true,
        args: ARGS,
        viewport: { width: 1280, height: 1000 },
        timeout: 20_000,
      });
      const page = context.pages()[0] ?? (await context.newPage());
      page.setDefaultTimeout(10_000);
      const problems: string[] = [];
      const requested: string[] = [];
      page.on("pageerror", (error) => problems.push(`page error: ${error.message}`));
      // A CSP refusal (of a script, a style or WebAssembly) is a console error too.
      page.on("console", (message) => {
        if (message.type() === "error") problems.push(`console error: ${message.text()}`);
      });
      page.on("request", (request) => requested.push(request.url()));

      await page.goto(monitor.url);
      await page.locator("#status.live").waitFor();
      const row = page.locator(`#processes tr[data-id="${id}"]`);
      await row.waitFor();
      const heads = await page.locator("#processes thead th").allInnerTexts();
      const userColumn = heads.findIndex((h) => h.trim().toLowerCase() === "user");
      assert.ok(userColumn > 0, `a User column: ${heads.join(" | ")}`);
      assert.equal((await row.locator("td").nth(userColumn).innerText()).trim(), "alice");

      // The live session's row replays its own recording, not the earlier run's.
      const replay = row.locator("button.replay");
      await replay.waitFor();
      assert.equal(await replay.getAttribute("data-replay"), live);
      await replay.click();
      await page.locator("#replay:not([hidden]) #player .ap-player").waitFor();
      await page.locator("#player .ap-term", { hasText: "hello from alice's live session" }).waitFor();
      assert.equal(await page.locator("#replay-title").innerText(), live);
      await mkdir(join(root, "test-artifacts"), { recursive: true });
      await page.screenshot({ path: REPLAY_SCREENSHOT, fullPage: true });

      // Ended sessions' recordings (and the earlier run's) are listed on their own, newest first.
      const listed = page.locator("#recordings tbody tr");
      await listed.nth(1).waitFor();
      assert.deepEqual(await Promise.all((await listed.all()).map((r) => r.getAttribute("data-file"))), [
        ended,
        earlierRun,
      ]);
      await page.locator(`#recordings tr[data-file="${ended}"] button.replay`).click();
      await page.locator("#player .ap-term", { hasText: "an ended session said goodbye" }).waitFor();
      assert.equal(await page.locator("#player .ap-player").count(), 1, "one player at a time");
      await page.locator("#replay-close").click();
      await page.locator("#replay").waitFor({ state: "hidden" });
      assert.equal(await page.locator("#player .ap-player").count(), 0);

      assert.deepEqual(
        requested.filter((url) => new URL(url).origin !== origin),
        [],
        "nothing is loaded from anywhere but the monitor",
      );
      for (const path of ["/assets/asciinema-player.min.js", "/assets/asciinema-player.css", "/api/recordings"])
        assert.ok(requested.includes(origin + path), `${path} was loaded`);
      assert.deepEqual(problems, []);
    } finally {
      await context?.close();
      if (session !== undefined) processKill(session);
      if (monitor !== undefined) processKill(monitor);
      await rm(profile, { recursive: true, force: true });
      await rm(recordings, { recursive: true, force: true });
    }
  },
);
