import assert from "node:assert/strict";
import { test } from "node:test";
import { runConfab } from "./cli.js";

test("confab talk prints exactly the seed's six lines", async () => {
  const { code, stdout, stderr } = await runConfab(["talk"]);
  assert.equal(stderr, "");
  assert.equal(code, 0);
  assert.equal(
    stdout,
    [
      'I said: "Hello self."',
      `Self replied: "You sent: 'Hello self.'"`,
      `I said: "Why don't you say something original?"`,
      `Self replied: "You sent: 'Why don't you say something original?'"`,
      'I said: "Talk to you later then.  Bye."',
      `Self replied: "You sent: 'Talk to you later then.  Bye.'"`,
      "",
    ].join("\n"),
  );
});
