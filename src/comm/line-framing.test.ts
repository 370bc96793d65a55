import assert from "node:assert/strict";
import { test } from "node:test";
import fc from "fast-check";
import { expectedReads, readOpArbitrary, runsArbitrary, runsBytes } from "../../test/framing-reference.js";
import { LineFramer, TEXT_WINDOW, type LineFramingOptions } from "./line-framing.js";

const UTF8: LineFramingOptions = { encoding: "utf8", maxLine: 1024 * 1024 };
const LATIN1: LineFramingOptions = { encoding: "latin1", maxLine: 1024 * 1024 };

function framerOf(text: string | Buffer, options = UTF8, end = true): LineFramer {
  const framer = new LineFramer(options);
  framer.push(typeof text === "string" ? Buffer.from(text) : text);
  if (end) framer.end();
  return framer;
}

/** Every line until the end of input. */
function allLines(framer: LineFramer): (string | false | undefined)[] {
  const lines: (string | false | undefined)[] = [];
  for (let line; (line = framer.takeLine()) !== null;) {
    lines.push(line);
    if (typeof line !== "string") break;
  }
  return lines;
}

test("lines lose their LF or CRLF; a last line without newline comes before null, and only after end()", () => {
  const framer = framerOf("one\ntwo\r\n\nthree\r\nlast", UTF8, false);
  assert.deepEqual(
    [framer.takeLine(), framer.takeLine(), framer.takeLine(), framer.takeLine()],
    ["one", "two", "", "three"],
  );
  assert.equal(framer.takeLine(), undefined, "no whole line yet");
  assert.equal(framer.length, 4);
  framer.end();
  assert.equal(framer.ended, true);
  assert.equal(framer.takeLine(), "last");
  assert.equal(framer.takeLine(), null);
  assert.equal(framer.takeLine(), null, "the end stays the end");
  assert.equal(framer.length, 0);
});

test("a lone CR is part of the line; a CR split from its LF by a chunk boundary still goes with it", () => {
  const framer = new LineFramer(UTF8);
  framer.push(Buffer.from("a\rb\r"));
  assert.equal(framer.takeLine(), undefined);
  framer.push(Buffer.from("\nnext\n"));
  assert.equal(framer.takeLine(), "a\rb");
  assert.equal(framer.takeLine(), "next");
});

test("a UTF-8 character split across chunks, one byte per chunk, is decoded whole", () => {
  const framer = new LineFramer(UTF8);
  const lines: (string | false | null | undefined)[] = [];
  for (const b of Buffer.from("zwölf € 🎉\nß\n")) {
    framer.push(Buffer.from([b]));
    for (let line; (line = framer.takeLine()) !== undefined;) lines.push(line);
  }
  assert.deepEqual(lines, ["zwölf € 🎉", "ß"]);
});

test("base-char input is one byte per character", () => {
  assert.deepEqual(allLines(framerOf(Buffer.from([0x63, 0x61, 0x66, 0xe9, 0x0a, 0xff]), LATIN1)), ["café", "ÿ"]);
});

test("lines are sliced out of the 1 KiB decoded window, across its edges and in UTF-8 past it", () => {
  // ASCII lines around the window's edge, then a non-ASCII one: the window is decoded again
  // at each new head, and text that is not one byte per character is decoded line by line.
  const a = "a".repeat(TEXT_WINDOW - 3);
  const b = "b".repeat(10);
  const c = "c".repeat(TEXT_WINDOW * 2);
  const text = `${a}\n${b}\r\n${c}\nü${"x".repeat(TEXT_WINDOW)}\n\n`;
  assert.deepEqual(allLines(framerOf(text)), [a, b, c, "ü" + "x".repeat(TEXT_WINDOW), ""]);
});

test("each byte is scanned for LF once, however many chunks a line takes to come", () => {
  const framer = new LineFramer(UTF8);
  // Count the bytes Buffer#indexOf looks at: a rescan of the line so far per chunk would
  // look at n²/2 of them.
  const proto = Buffer.prototype as { indexOf: (this: Buffer, ...args: unknown[]) => number };
  const indexOf = proto.indexOf;
  let scanned = 0;
  proto.indexOf = function (this: Buffer, ...args: unknown[]): number {
    scanned += this.length - (typeof args[1] === "number" ? args[1] : 0);
    return indexOf.apply(this, args);
  };
  const chunks = 2000;
  try {
    for (let i = 0; i < chunks; i++) {
      framer.push(Buffer.from("é".repeat(8))); // not ASCII: the window does not serve it
      assert.equal(framer.takeLine(), undefined);
    }
    framer.push(Buffer.from("\n"));
    assert.equal(framer.takeLine(), "é".repeat(8 * chunks));
  } finally {
    proto.indexOf = indexOf;
  }
  assert.ok(scanned <= 2 * 16 * chunks + 16, `${scanned} bytes scanned for ${16 * chunks}`);
});

test("a line over maxLine is refused with false, however it arrives, and stays refused", () => {
  const options: LineFramingOptions = { encoding: "utf8", maxLine: 4 };
  assert.deepEqual(allLines(framerOf("abcd\r\nabcde\n", options)), ["abcd", false]);
  const waiting = new LineFramer(options);
  waiting.push(Buffer.from("abc"));
  assert.equal(waiting.takeLine(), undefined, "not too long yet");
  waiting.push(Buffer.from("de"));
  assert.equal(waiting.takeLine(), false, "too long before its LF comes");
  assert.equal(waiting.takeLine(), false);
  waiting.clear();
  assert.equal(waiting.length, 0);
  assert.equal(waiting.takeLine(), undefined);
});

test("takeChar reads whole characters, waits for a split one, and turns an invalid byte into U+FFFD", () => {
  const framer = new LineFramer(UTF8);
  framer.push(Buffer.from([0x61, 0xc3]));
  assert.equal(framer.takeChar(), "a");
  assert.equal(framer.takeChar(), undefined, "half of é");
  framer.push(Buffer.from([0xa9, 0xe2, 0x28, 0x41, 0xf0, 0x9f]));
  assert.equal(framer.takeChar(), "é");
  assert.equal(framer.takeChar(), "\ufffd", "0xe2 does not start a valid sequence here");
  assert.equal(framer.takeChar(), "(");
  assert.equal(framer.takeChar(), "A");
  assert.equal(framer.takeChar(), undefined, "half of an emoji");
  framer.end();
  assert.equal(framer.takeChar(), "\ufffd", "cut short by the end of input");
  assert.equal(framer.takeChar(), null);
});

test("takeBytes copies exactly count bytes across chunks, fewer at the end, then null", () => {
  const framer = new LineFramer(UTF8);
  framer.push(Buffer.from([1, 2, 3]));
  assert.equal(framer.takeBytes(5), undefined);
  const chunk = Buffer.from([4, 5, 6, 7]);
  framer.push(chunk);
  assert.deepEqual([...(framer.takeBytes(5) ?? [])], [1, 2, 3, 4, 5]);
  assert.deepEqual(framer.takeBytes(0), Buffer.alloc(0));
  const taken = framer.takeBytes(1);
  chunk.fill(0);
  assert.deepEqual([...(taken ?? [])], [6], "a copy, not a view of the chunk");
  framer.end();
  assert.deepEqual([...(framer.takeBytes(10) ?? [])], [0]);
  assert.equal(framer.takeBytes(1), null);
});

test("dropPartialLine keeps the whole lines and drops what follows the last LF", () => {
  const framer = new LineFramer(UTF8);
  for (const part of ["wh", "ole\nsec", "ond\npar", "ti", "al"]) framer.push(Buffer.from(part));
  assert.equal(framer.takeLine(), "whole");
  framer.dropPartialLine();
  assert.equal(framer.length, "second\n".length);
  framer.end();
  assert.deepEqual(allLines(framer), ["second"]);

  const none = framerOf("no newline at all", UTF8, false);
  none.dropPartialLine();
  assert.equal(none.length, 0);
  none.end();
  assert.equal(none.takeLine(), null);
});

// ---------------------------------------------------------------- properties

const lineArbitrary = fc.string({
  unit: fc.constantFrom("a", "é", "€", "🎉", " ", "\r", "x", "\u0000"),
  maxLength: 30,
});

test("property: any split of a byte stream into chunks yields the same lines", () => {
  fc.assert(
    fc.property(
      fc.array(lineArbitrary, { maxLength: 12 }),
      fc.boolean(),
      fc.boolean(),
      fc.array(fc.nat(), { maxLength: 20 }),
      (lines, crlf, finalNewline, cutPoints) => {
        const text = lines
          .map((l, i) => l + (i < lines.length - 1 || finalNewline ? (crlf ? "\r\n" : "\n") : ""))
          .join("");
        const bytes = Buffer.from(text);
        const cuts = [...new Set(cutPoints.map((c) => (bytes.length === 0 ? 0 : c % bytes.length)))].sort(
          (a, b) => a - b,
        );
        const framer = new LineFramer(UTF8);
        const got: string[] = [];
        const drain = (): void => {
          for (let line; typeof (line = framer.takeLine()) === "string";) got.push(line);
        };
        let from = 0;
        for (const cut of [...cuts, bytes.length]) {
          if (cut > from) framer.push(bytes.subarray(from, cut));
          from = Math.max(from, cut);
          drain();
        }
        framer.end();
        drain();
        assert.equal(framer.takeLine(), null);
        // A terminated line loses its LF or CRLF (so a CR just before a bare LF goes too);
        // an empty unterminated last line is no line at all.
        const expected = lines
          .map((l, i) => (i < lines.length - 1 || finalNewline ? (crlf ? l : l.replace(/\r$/, "")) : l))
          .filter((l, i) => i < lines.length - 1 || finalNewline || l !== "");
        assert.deepEqual(got, expected);
      },
    ),
    { numRuns: 500 },
  );
});

test("property: lines, characters and byte reads match a reference over any chunking, in both encodings", () => {
  fc.assert(
    fc.property(
      runsArbitrary,
      fc.array(readOpArbitrary, { maxLength: 30 }),
      fc.array(fc.integer({ min: 1, max: 3000 }), { minLength: 1, maxLength: 10 }),
      fc.boolean(),
      (runs, ops, chunkSizes, latin1) => {
        const encoding = latin1 ? "latin1" : "utf8";
        const bytes = runsBytes(runs, encoding);
        const framer = new LineFramer(latin1 ? LATIN1 : UTF8);
        let at = 0;
        let i = 0;
        const got = ops.map((op) => {
          for (;;) {
            const value =
              op.kind === "line"
                ? framer.takeLine()
                : op.kind === "char"
                  ? framer.takeChar()
                  : framer.takeBytes(op.count);
            assert.notEqual(value, false);
            if (value !== undefined) return value;
            if (at >= bytes.length) framer.end();
            else {
              const size = chunkSizes[i++ % chunkSizes.length] as number;
              framer.push(bytes.subarray(at, at + size));
              at += size;
            }
          }
        });
        assert.deepEqual(got, expectedReads(bytes, ops, encoding));
      },
    ),
    { numRuns: 500 },
  );
});

test("property: a line longer than maxLine is refused however it is split, and the lines before it are not", () => {
  fc.assert(
    fc.property(fc.integer({ min: 1, max: 64 }), fc.integer({ min: 1, max: 40 }), (limit, chunkSize) => {
      const framer = new LineFramer({ encoding: "utf8", maxLine: limit });
      const ok = "y".repeat(limit);
      const data = Buffer.from(`${ok}\n${"x".repeat(limit + 1)}\nafter\n`);
      const got: (string | false | null | undefined)[] = [];
      for (let i = 0; i < data.length && got.at(-1) !== false; i += chunkSize) {
        framer.push(data.subarray(i, i + chunkSize));
        for (let line; (line = framer.takeLine()) !== undefined;) {
          got.push(line);
          if (line === false) break;
        }
      }
      assert.deepEqual(got, [ok, false]);
    }),
    { numRuns: 300 },
  );
});
