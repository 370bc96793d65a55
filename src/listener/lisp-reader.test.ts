import { test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { ConfabError, ErrorCodes } from "../errors.js";
import { lispString } from "../comm/lisp-string.js";
import { MAX_LISTENER_NAME_LENGTH, readLispForm, readListenerName } from "./lisp-reader.js";

/** Asserts a BAD_NAME_LINE error on one line, optionally matching its message. */
function badNameLine(pattern?: RegExp) {
  return (err: unknown): boolean => {
    assert.ok(err instanceof ConfabError, `expected a ConfabError, got ${String(err)}`);
    assert.equal(err.code, ErrorCodes.BAD_NAME_LINE);
    assert.ok(!/[\r\n\u2028\u2029]/.test(err.message), `message spans lines: ${JSON.stringify(err.message)}`);
    if (pattern !== undefined) assert.match(err.message, pattern);
    return true;
  };
}

void test("backslash escapes any character inside a string", () => {
  assert.deepEqual(readLispForm('"a \\"quoted\\" \\\\ name"'), { kind: "string", value: 'a "quoted" \\ name' });
  assert.deepEqual(readLispForm('"\\n\\a"'), { kind: "string", value: "na" });
  assert.equal(readListenerName('"a \\"quoted\\" \\\\ name"'), 'a "quoted" \\ name');
});

void test("whitespace and a trailing comment around the form are allowed", () => {
  assert.deepEqual(readLispForm(' \t"my listener"\r\n'), { kind: "string", value: "my listener" });
  assert.equal(readListenerName('  "my listener"  ; the REPL I use'), "my listener");
});

void test("symbols are upcased unless escaped with |...| or backslash", () => {
  assert.deepEqual(readLispForm("foo"), { kind: "symbol", name: "FOO" });
  assert.deepEqual(readLispForm("|Mixed Case|"), { kind: "symbol", name: "Mixed Case" });
  assert.deepEqual(readLispForm("a\\bc|De|f"), { kind: "symbol", name: "AbCDeF" });
  assert.deepEqual(readLispForm(":key"), { kind: "symbol", name: ":KEY" });
  assert.deepEqual(readLispForm("1+"), { kind: "symbol", name: "1+" });
  assert.deepEqual(readLispForm("\\123"), { kind: "symbol", name: "123" });
});

void test("integers, ratios and decimals read as numbers", () => {
  const cases: [string, number][] = [
    ["42", 42],
    ["-7", -7],
    ["+3.", 3],
    ["-0", 0],
    ["1/4", 0.25],
    ["1.5", 1.5],
    [".5", 0.5],
    ["1e3", 1000],
    ["2.5d0", 2.5],
  ];
  for (const [text, value] of cases) assert.deepEqual(readLispForm(text), { kind: "number", value }, text);
  assert.throws(() => readLispForm("1/0"), badNameLine(/division by zero/));
  assert.throws(() => readLispForm("1e999"), badNameLine(/out of range/));
});

void test("a symbol, number or list is refused as a listener name with a message saying a string is expected", () => {
  assert.throws(
    () => readListenerName("foo"),
    badNameLine(/^expected a string naming the listener, such as "my listener", but got the symbol FOO$/),
  );
  assert.throws(() => readListenerName("|foo|"), badNameLine(/but got the symbol \|foo\|$/));
  assert.throws(() => readListenerName("42"), badNameLine(/but got the number 42$/));
  assert.throws(() => readListenerName('(make-listener "x")'), badNameLine(/but got a list$/));
  assert.deepEqual(readLispForm('(a (b "c)") |)| \\) ; )\n)'), { kind: "list" });
});

void test("unbalanced parentheses are errors", () => {
  assert.throws(() => readLispForm("(a (b)"), badNameLine(/'\(' at character 1 is never closed/));
  assert.throws(() => readLispForm(")"), badNameLine(/unexpected '\)' at character 1/));
  assert.throws(() => readLispForm("(a))"), badNameLine(/unexpected text after a list at character 4/));
});

void test("reader macros and a lone # are refused", () => {
  assert.throws(() => readLispForm("#"), badNameLine(/reader macro # at character 1/));
  assert.throws(() => readLispForm("#'car"), badNameLine(/reader macro #/));
  assert.throws(() => readLispForm("'x"), badNameLine(/quote/));
  assert.throws(() => readLispForm("`x"), badNameLine(/backquote/));
  assert.throws(() => readLispForm(",x"), badNameLine(/comma/));
  assert.throws(() => readListenerName('\'"quoted"'), badNameLine(/^expected a string naming the listener/));
});

void test("text after the form is refused, naming where it starts", () => {
  assert.throws(
    () => readLispForm('"name" extra'),
    badNameLine(/unexpected text after the string "name" at character 8/),
  );
  assert.throws(() => readListenerName('"name" "other"'), badNameLine(/followed by more text at character 8/));
  // Positions count characters, not UTF-16 code units.
  assert.throws(() => readLispForm('"\u{1F600}" x'), badNameLine(/at character 5$/));
});

void test("an HTTP request line is refused before it can be evaluated", () => {
  assert.throws(
    () => readLispForm("POST / HTTP/1.1"),
    badNameLine(/unexpected text after the symbol POST at character 6/),
  );
  assert.throws(
    () => readListenerName("GET /index.html HTTP/1.1"),
    badNameLine(/^expected a string naming the listener, .* but got the symbol GET followed by more text/),
  );
});

void test("an unterminated string, a dangling escape and empty input are errors", () => {
  assert.throws(() => readLispForm('"my listener'), badNameLine(/unterminated string starting at character 1/));
  assert.throws(() => readLispForm('"ends in escape\\'), badNameLine(/unterminated string/));
  assert.throws(() => readLispForm("abc\\"), badNameLine(/escape character/));
  assert.throws(() => readLispForm("|abc"), badNameLine(/unterminated \|\.\.\.\|/));
  assert.throws(() => readLispForm(""), badNameLine(/empty/));
  assert.throws(() => readLispForm("   ; only a comment"), badNameLine(/empty/));
  assert.throws(() => readLispForm("."), badNameLine(/dots/));
});

void test("listener names with control characters, blank names and over-long names are refused", () => {
  assert.equal(readListenerName('"tab\there"'), "tab\there");
  assert.throws(
    () => readListenerName('"line\nbreak"'),
    badNameLine(/control characters.*U\+000A at character 5 of the name/),
  );
  assert.throws(() => readListenerName('"nul\u0000"'), badNameLine(/U\+0000/));
  assert.throws(() => readListenerName('"del\u007f"'), badNameLine(/U\+007F/));
  assert.throws(() => readListenerName('""'), badNameLine(/blank/));
  assert.throws(() => readListenerName('"   "'), badNameLine(/blank/));
  const longest = "\u{1F600}".repeat(MAX_LISTENER_NAME_LENGTH);
  assert.equal(readListenerName(lispString(longest)), longest);
  assert.throws(() => readListenerName(lispString(`${longest}x`)), badNameLine(/201 characters long/));
});

void test("error messages quote what the client sent on one short line", () => {
  const hostile = `|${"\n".repeat(5)}${"x".repeat(10_000)}| more`;
  assert.throws(
    () => readListenerName(hostile),
    badNameLine(
      /^expected a string naming the listener, such as "my listener", but got the symbol \|\\n.{0,80}\.\.\.\| followed/,
    ),
  );
});

// --- properties -------------------------------------------------------------------------------

const anyString = fc.string({ unit: "binary", maxLength: 300 });
const lispyString = fc.string({
  unit: fc.constantFrom(...Array.from("()\"\\|#';`, \t\n\r.+-/1e9aZé\u0000\u2028"), "\u{1F600}", "\ud800", "\udc00"),
  maxLength: 100,
});

void test("property: any string rendered as a Lisp string reads back as itself", () => {
  fc.assert(
    fc.property(anyString, (s) => {
      assert.deepEqual(readLispForm(lispString(s)), { kind: "string", value: s });
    }),
    { numRuns: 500 },
  );
});

void test("property: any acceptable name rendered as a Lisp string is read back by readListenerName", () => {
  const acceptable = fc
    .string({ unit: "grapheme", maxLength: MAX_LISTENER_NAME_LENGTH })
    .filter((s) => !/[^\P{Cc}\t]/u.test(s) && s.trim() !== "" && Array.from(s).length <= MAX_LISTENER_NAME_LENGTH);
  fc.assert(
    fc.property(acceptable, (s) => {
      assert.equal(readListenerName(lispString(s)), s);
    }),
    { numRuns: 500 },
  );
});

void test("property: arbitrary input reads as a form or fails with a one-line BAD_NAME_LINE, never anything else", () => {
  fc.assert(
    fc.property(fc.oneof(anyString, lispyString), (text) => {
      for (const read of [readLispForm, readListenerName]) {
        try {
          read(text);
        } catch (err) {
          badNameLine()(err);
        }
      }
    }),
    { numRuns: 2000 },
  );
});

void test("property: reading takes time linear in the input, without deep recursion", () => {
  const n = 100_000;
  const inputs = [
    "(".repeat(n),
    `${"(".repeat(n)}${")".repeat(n)}`,
    `${"(".repeat(n)}${")".repeat(n + 1)}`,
    ")".repeat(n),
    '"'.repeat(n + 1),
    "\\".repeat(n),
    "|".repeat(n + 1),
    "1".repeat(n),
    `${"a".repeat(n)} x`,
    `"${'\\"'.repeat(n)}`,
    `(${'"("'.repeat(n)}`,
    `${" ".repeat(n)};${"(".repeat(n)}`,
    `${"1".repeat(n)}/${"2".repeat(n)}`,
    `.${"5".repeat(n)}e`,
  ];
  const started = performance.now();
  for (const text of inputs) {
    for (const read of [readLispForm, readListenerName]) {
      try {
        read(text);
      } catch (err) {
        badNameLine()(err);
      }
    }
  }
  const elapsed = performance.now() - started;
  assert.ok(elapsed < 2000, `took ${elapsed.toFixed(0)} ms for ${inputs.length} inputs of ~${n} characters`);
  fc.assert(
    fc.property(fc.constantFrom(...Array.from('()"\\|#.1 ')), fc.integer({ min: 1, max: 20_000 }), (unit, count) => {
      const t0 = performance.now();
      try {
        readLispForm(unit.repeat(count));
      } catch (err) {
        badNameLine()(err);
      }
      assert.ok(performance.now() - t0 < 500);
    }),
    { numRuns: 50 },
  );
});
