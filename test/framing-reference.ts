// A reference for line framing, worked out on the whole input at once, and the inputs and reads
// the property tests of LineFramer and SocketStream draw: shared so that both check the same thing.
import fc from "fast-check";

// Runs of one character, some longer than the 1 KiB window LineFramer decodes at once, so that
// lines start, end and cross window and chunk boundaries in every combination.
export const runsArbitrary = fc.array(
  fc.tuple(fc.constantFrom("a", "b", "é", "€", "\r", "\n", "\r\n"), fc.integer({ min: 0, max: 1500 })),
  { maxLength: 8 },
);
/** A read: a line, some bytes, or a character. */
export type ReadOp = { kind: "line" } | { kind: "bytes"; count: number } | { kind: "char" };
export const readOpArbitrary: fc.Arbitrary<ReadOp> = fc.oneof(
  { weight: 4, arbitrary: fc.constant<ReadOp>({ kind: "line" }) },
  { weight: 1, arbitrary: fc.integer({ min: 0, max: 40 }).map((count): ReadOp => ({ kind: "bytes", count })) },
  { weight: 1, arbitrary: fc.constant<ReadOp>({ kind: "char" }) },
);

/** What the reads should return, worked out on the whole input at once. */
export function expectedReads(
  bytes: Buffer,
  ops: readonly ReadOp[],
  encoding: "utf8" | "latin1",
): (string | Buffer | null)[] {
  let at = 0;
  return ops.map((op) => {
    if (op.kind === "bytes") {
      if (op.count === 0) return Buffer.alloc(0);
      if (at >= bytes.length) return null;
      const taken = bytes.subarray(at, Math.min(at + op.count, bytes.length));
      at += taken.length;
      return taken;
    }
    if (at >= bytes.length) return null;
    if (op.kind === "char") {
      const first = bytes[at] as number;
      let size = encoding === "latin1" ? 1 : first >= 0xf0 ? 4 : first >= 0xe0 ? 3 : first >= 0xc0 ? 2 : 1;
      size = Math.min(size, bytes.length - at);
      const text = bytes.toString(encoding, at, at + size);
      if (size > 1 && text.length > 1 && text.codePointAt(0) === 0xfffd) {
        at += 1;
        return "\ufffd";
      }
      at += size;
      return text;
    }
    const nl = bytes.indexOf(10, at);
    const stop = nl === -1 ? bytes.length : nl;
    const end = nl !== -1 && stop > at && bytes[stop - 1] === 13 ? stop - 1 : stop;
    const line = bytes.toString(encoding, at, end);
    at = nl === -1 ? bytes.length : nl + 1;
    return line;
  });
}

/** The input the runs spell, in `encoding`. */
export function runsBytes(runs: readonly (readonly [string, number])[], encoding: "utf8" | "latin1"): Buffer {
  return Buffer.from(runs.map(([unit, count]) => unit.repeat(count)).join(""), encoding);
}
