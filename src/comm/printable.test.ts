import assert from "node:assert/strict";
import { test } from "node:test";
import fc from "fast-check";
import { printable, printableJson, quoted } from "./printable.js";

test("printable escapes C0 and C1 controls, bidi controls, zero-width characters and line separators", () => {
  const cases: [string, string][] = [
    ["\t", "\\t"],
    ["\n", "\\n"],
    ["\r", "\\r"],
    ["\u0000", "\\u0000"],
    ["\u001b", "\\u001b"],
    ["\u007f", "\\u007f"],
    ["\u0085", "\\u0085"],
    ["\u009b", "\\u009b"],
    ["\u061c", "\\u061c"],
    ["\u200e", "\\u200e"],
    ["\u200f", "\\u200f"],
    ...["\u202a", "\u202b", "\u202c", "\u202d", "\u202e", "\u2066", "\u2067", "\u2068", "\u2069"].map(
      (c): [string, string] => [c, `\\u${c.charCodeAt(0).toString(16)}`],
    ),
    ["\u200b", "\\u200b"],
    ["\u200c", "\\u200c"],
    ["\u200d", "\\u200d"],
    ["\u2060", "\\u2060"],
    ["\ufeff", "\\ufeff"],
    ["\u2028", "\\u2028"],
    ["\u2029", "\\u2029"],
    ["\u3164", "\\u3164"],
    ["\ud800", "\\ud800"],
    ["\u{e0041}", "\\u{e0041}"],
    ["\\", "\\\\"],
  ];
  for (const [raw, shown] of cases) assert.equal(printable(`a${raw}b`), `a${shown}b`, JSON.stringify(raw));
});

test("printable keeps ordinary text as it is, letters of any script and emoji included", () => {
  for (const text of ["ada@laptop", '"confab" server', "10243 server", "zwölf 日本語 🎉 é", "talk 5000", "a b"]) {
    assert.equal(printable(text), text);
  }
});

test("quoted puts text between double quotes with its quotes and backslashes escaped", () => {
  assert.equal(quoted('say "hi"\t\\'), '"say \\"hi\\"\\t\\\\"');
});

test("property: printable text has no control, format or separator character left, and different texts stay different", () => {
  fc.assert(
    fc.property(fc.string({ unit: "binary", maxLength: 50 }), fc.string({ unit: "binary", maxLength: 50 }), (a, b) => {
      assert.doesNotMatch(printable(a), /[\p{Cc}\p{Cf}\p{Zl}\p{Zp}\p{Cs}]/u);
      if (a !== b) assert.notEqual(printable(a), printable(b));
    }),
  );
});

test("property: printableJson is JSON of the same value with nothing invisible left raw", () => {
  fc.assert(
    fc.property(fc.string({ unit: "binary", maxLength: 50 }), (s) => {
      const json = printableJson({ s });
      assert.doesNotMatch(json, /[\p{Cc}\p{Cf}\p{Zl}\p{Zp}\p{Cs}]/u);
      assert.deepEqual(JSON.parse(json), { s });
    }),
  );
});
