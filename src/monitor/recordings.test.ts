import assert from "node:assert/strict";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { DEFAULT_MAX_RECORDINGS, listRecordings, parseRecordingName } from "./recordings.js";

test("a recording's file name gives its process id, name slug and start time, or nothing", () => {
  assert.deepEqual(parseRecordingName("2026-12-02T14-40-00.123Z-17-my-listener.cast"), {
    id: 17,
    name: "my-listener",
    startedAt: "2026-12-02T14:40:00.123Z",
  });
  assert.deepEqual(parseRecordingName("2026-12-02T14-40-00Z-1-.cast"), {
    id: 1,
    name: "",
    startedAt: "2026-12-02T14:40:00.000Z",
  });
  for (const bad of [
    "2026-12-02T14:40:00.123Z-17-colons.cast",
    "2026-12-02T14-40-00.123Z-17-my-listener.txt",
    "2026-12-02T14-40-00.123Z--no-id.cast",
    "2026-12-02T14-40-00.123Z-1234567890123456-too-long-an-id.cast",
    "2026-12-02T24-00-00.000Z-1-no-such-hour.cast",
    "2026-02-30T10-00-00.000Z-1-no-such-day.cast",
    "2026-12-02T14-40-00.12Z-1-two-digit-fraction.cast",
    "2026-12-02T14-40-00.123Z-1-a slug with spaces.cast",
    "x2026-12-02T14-40-00.123Z-1-prefixed.cast",
  ])
    assert.equal(parseRecordingName(bad), undefined, bad);
});

test("a listing keeps the newest max recordings, by the time in their names", async () => {
  const dir = await mkdtemp(join(tmpdir(), "confab-recordings-"));
  try {
    const names = Array.from(
      { length: 12 },
      (_, i) => `2026-12-02T10-${String(i).padStart(2, "0")}-00.000Z-${i}-s.cast`,
    );
    // Written newest first, so that the order on disk is not the answer.
    for (const name of [...names].reverse()) await writeFile(join(dir, name), "x");
    const list = await listRecordings(dir, 5);
    assert.deepEqual(
      list.map((r) => r.id),
      [11, 10, 9, 8, 7],
    );
    assert.equal((await listRecordings(dir)).length, 12);
    assert.equal(DEFAULT_MAX_RECORDINGS, 1000);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
