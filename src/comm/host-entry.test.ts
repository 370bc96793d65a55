import assert from "node:assert/strict";
import { test } from "node:test";
import { ConfabError } from "../errors.js";
import { getHostEntry } from "./host-entry.js";

test("a host's entry names it and lists its addresses, from the system's resolver", async () => {
  const entry = await getHostEntry("localhost");
  assert.equal(entry.name, "localhost");
  assert.ok(entry.addresses.includes("127.0.0.1") || entry.addresses.includes("::1"), entry.addresses.join(", "));
  assert.deepEqual(entry.aliases, []);
});

test("an address's entry holds the address and the name it maps back to", async () => {
  const entry = await getHostEntry("127.0.0.1");
  assert.deepEqual(entry.addresses, ["127.0.0.1"]);
  assert.equal(typeof entry.name, "string");
  assert.notEqual(entry.name, "");
  const bare = await getHostEntry("127.0.0.1", { fields: ["addresses"] });
  assert.deepEqual(bare, { name: "127.0.0.1", aliases: [], addresses: ["127.0.0.1"] }, "no reverse lookup asked for");
});

test("an unknown host is refused with the resolver's code and a message naming it", async () => {
  await assert.rejects(
    getHostEntry("no-such-host.invalid"),
    (error: unknown) =>
      error instanceof ConfabError &&
      (error.code === "ENOTFOUND" || error.code === "EAI_AGAIN") &&
      error.message.includes("no-such-host.invalid"),
  );
});
