// The monitor page in a real browser: headless Chromium (Debian's package) driven by
// playwright-core. A raw TCP client connects to the talk server; its process appears on the
// page; the page's kill button kills it; the row goes and the client gets end of file.
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { mkdir, mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { chromium, type BrowserContext } from "playwright-core";
import { makeStreamAndTalk } from "../examples/talk.js";
import { startUpServer, serverTerminate, type ServerProcess } from "../src/index.js";
import { monitorOf } from "../src/monitor/attach.js";
import { findProcessFromName } from "../src/mp/registry.js";
import { root } from "./cli.js";
import { LineClient } from "./support.js";

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
      // Bytes in and out: "Hello self.\n", and "You sent: 'Hello self.'\n" (within a second).
      await row.filter({ hasText: "24 B" }).waitFor();
      assert.match(
        (await row.innerText()).replace(/\s+/g, " "),
        new RegExp(
          `^#\\d+ ${name} connection running \\d+s #${server.id} ${server.name} 127\\.0\\.0\\.1:\\d+ 12 B 24 B Kill$`,
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
