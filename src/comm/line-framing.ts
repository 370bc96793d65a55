// The input side of a socket stream, apart from the socket: chunks go in as they arrive, lines,
// characters and byte counts come out. It knows nothing of sockets, timers or processes, so its
// framing is tested by feeding it chunks (as ws tests its Receiver), and a SocketStream only
// decides when to read and what a failure means.
import { isAscii } from "node:buffer";

/** What a {@link LineFramer} needs to know: how text is decoded and how long a line may be. */
export interface LineFramingOptions {
  /** `"utf8"` (a character stream) or `"latin1"` (a base-char stream: one byte per character). */
  readonly encoding: "utf8" | "latin1";
  /** Longest line in bytes, terminator excluded: a longer one makes {@link LineFramer.takeLine} return `false`. */
  readonly maxLine: number;
}

/** Most input decoded at once for takeLine (see #textOfHead). */
export const TEXT_WINDOW = 1024;

// Buffer's own slicers (`latin1Slice`, `utf8Slice`), present on every Node confab supports but
// undocumented: called directly they skip `toString`'s argument checks and encoding lookup, a
// measurable share of the per-line cost. Feature-checked, with `toString` as the fallback.
type Slicer = (this: Buffer, start: number, end: number) => string;
const slicers = Buffer.prototype as unknown as { latin1Slice?: Slicer; utf8Slice?: Slicer };
const latin1Slice = typeof slicers.latin1Slice === "function" ? slicers.latin1Slice : undefined;
const utf8Slice = typeof slicers.utf8Slice === "function" ? slicers.utf8Slice : undefined;

function decodeSlice(chunk: Buffer, encoding: "utf8" | "latin1", start: number, end: number): string {
  const slice = encoding === "latin1" ? latin1Slice : utf8Slice;
  return slice === undefined ? chunk.toString(encoding, start, end) : slice.call(chunk, start, end);
}

// What an idle framer holds instead of an array of its own (never written to): an idle
// connection then costs no array.
const NO_CHUNKS: Buffer[] = Object.freeze([]) as unknown as Buffer[];

const LF = 10;
const CR = 13;

/**
 * Unread input as a list of the chunks it came in, and the framing of lines, characters and
 * byte counts out of it.
 *
 * - A line ends with LF; a CR just before the LF goes with it. A line may span any number of
 *   chunks, and each byte is scanned for LF once, however many chunks the line takes to come.
 * - A UTF-8 character split across chunks is decoded whole (lines and bytes are cut at LF and
 *   counts, and only then decoded).
 * - After {@link end}, what is left is the last line (without newline) or the last bytes, then
 *   `null`.
 * - A line over `maxLine` bytes is refused (`false`), not buffered on without bound.
 *
 * The takers return `undefined` when what is buffered is not enough yet: push more and ask
 * again.
 */
export class LineFramer {
  readonly #options: LineFramingOptions;
  // Unread input: chunks[0] starts at #head. Bytes before (#scanIdx, #scanOff) are known to
  // hold no LF, so a line that spans many chunks is scanned once, not once per chunk.
  #chunks: Buffer[] = NO_CHUNKS;
  #head = 0;
  #length = 0;
  #scanIdx = 0;
  #scanOff = 0;
  #ended = false;
  // chunks[0] decoded from byte #textStart on (see #textOfHead).
  #text: string | undefined;
  #textChunk: Buffer | undefined;
  #textStart = 0;
  #textEnd = 0;

  /** `options` is kept, not copied: streams made with the same settings share one object. */
  constructor(options: LineFramingOptions) {
    this.#options = options;
  }

  /** Bytes buffered and not yet taken. */
  get length(): number {
    return this.#length;
  }

  /** `true` once {@link end} was called: no more input will come. */
  get ended(): boolean {
    return this.#ended;
  }

  /** Appends a chunk of input. The chunk is kept, not copied: the caller must not reuse it. */
  push(chunk: Buffer): void {
    if (this.#chunks.length === 0) this.#chunks = [chunk];
    else this.#chunks.push(chunk);
    this.#length += chunk.length;
  }

  /** Marks the end of input: what is buffered can still be taken, then the takers return `null`. */
  end(): void {
    this.#ended = true;
  }

  /**
   * The next line, without its LF or CRLF; `null` at the end of input. A last line without a
   * newline is returned (after {@link end}) before `null`. `undefined`: no whole line yet.
   * `false`: the line passes `maxLine` bytes (asking again gives `false` again; the caller
   * usually {@link clear}s the input and stops reading).
   *
   * Lines that came in together are decoded together, up to 1 KiB at a time, and each line is
   * a slice of that text (as `node:readline`'s are of each chunk): a line kept for long keeps
   * at most 1 KiB of its neighbours with it.
   */
  takeLine(): string | null | undefined | false {
    const chunks = this.#chunks;
    let idx = this.#scanIdx;
    let off = this.#scanOff;
    if (idx === 0 && chunks.length > 0) {
      const chunk = chunks[0] as Buffer;
      const text = this.#textOfHead(chunk);
      if (text !== undefined) {
        const nl = text.indexOf("\n", off - this.#textStart);
        if (nl !== -1) return this.#cutTextLine(chunk, text, nl);
        // No LF in the window: the byte scan goes on after it.
        if (this.#textEnd === chunk.length) {
          idx = 1;
          off = 0;
        } else {
          off = this.#textEnd;
        }
      }
    }
    while (idx < chunks.length) {
      const nl = (chunks[idx] as Buffer).indexOf(LF, off);
      if (nl !== -1) return this.#cutLine(idx, nl);
      idx++;
      off = 0;
    }
    this.#scanIdx = idx;
    this.#scanOff = 0;
    // No LF in what is buffered: all of it is one line so far, at the end of input too.
    if (this.#length > this.#options.maxLine) return false;
    if (this.#ended) return this.#length > 0 ? this.#take(this.#length).toString(this.#options.encoding) : null;
    return undefined;
  }

  /**
   * The next character (a whole code point in UTF-8); `null` at the end of input, `undefined`
   * while its bytes have not all come. An invalid sequence is one U+FFFD for its first byte,
   * and the bytes after it are read again as characters of their own; a sequence cut short by
   * the end of input is one U+FFFD.
   */
  takeChar(): string | null | undefined {
    if (this.#length === 0) return this.#ended ? null : undefined;
    const first = (this.#chunks[0] as Buffer)[this.#head] as number;
    let size = 1;
    if (this.#options.encoding === "utf8") size = first >= 0xf0 ? 4 : first >= 0xe0 ? 3 : first >= 0xc0 ? 2 : 1;
    if (size > this.#length) {
      if (!this.#ended) return undefined;
      size = this.#length; // a truncated sequence at the end of input decodes as U+FFFD
    }
    const bytes = this.#take(size);
    const text = bytes.toString(this.#options.encoding);
    // An invalid sequence decodes to several replacement characters: consume only the first
    // byte so the rest is read again as characters of their own.
    if (size > 1 && text.length > 1 && text.codePointAt(0) === 0xfffd) {
      this.#unshift(bytes.subarray(1));
      return "\ufffd";
    }
    return text;
  }

  /**
   * The next `count` bytes, copied (the caller may keep them); fewer after {@link end} when
   * fewer are left, `null` when none are; `undefined` while fewer than `count` have come.
   */
  takeBytes(count: number): Buffer | null | undefined {
    if (count === 0) return Buffer.alloc(0);
    if (this.#length >= count) return Buffer.from(this.#take(count));
    if (!this.#ended) return undefined;
    return this.#length === 0 ? null : Buffer.from(this.#take(this.#length));
  }

  /**
   * Drops the bytes after the last LF: input that stops there (a reset connection) never
   * finished its last line, and the whole lines before it can still be taken.
   */
  dropPartialLine(): void {
    const chunks = this.#chunks;
    for (let i = chunks.length - 1; i >= 0; i--) {
      const chunk = chunks[i] as Buffer;
      const from = i === 0 ? this.#head : 0;
      const nl = chunk.lastIndexOf(LF);
      if (nl >= from) {
        let dropped = chunk.length - (nl + 1);
        for (let j = i + 1; j < chunks.length; j++) dropped += (chunks[j] as Buffer).length;
        chunks.length = i + 1;
        chunks[i] = chunk.subarray(0, nl + 1);
        this.#length -= dropped;
        this.#scanIdx = 0;
        this.#scanOff = this.#head;
        return;
      }
    }
    this.clear();
  }

  /** Forgets everything buffered (the end of input, if marked, stays marked). */
  clear(): void {
    this.#chunks = NO_CHUNKS;
    this.#forgetText();
    this.#length = 0;
    this.#head = 0;
    this.#scanIdx = 0;
    this.#scanOff = 0;
  }

  /**
   * Bytes #textStart to #textEnd of chunks[0] (a window around the head), decoded at once when
   * one byte is one character there (Latin-1, or UTF-8 that is all ASCII): lines are then
   * sliced out of it instead of decoded one by one, which saves a call into C++ per line. The
   * window is at most TEXT_WINDOW bytes, so a line the caller keeps (a slice keeps its parent
   * string alive) holds at most that much of its neighbours' input with it.
   */
  #textOfHead(chunk: Buffer): string | undefined {
    const head = this.#head;
    if (this.#textChunk === chunk && head >= this.#textStart && head < this.#textEnd) return this.#text;
    const end = Math.min(chunk.length, head + TEXT_WINDOW);
    const oneBytePerChar = this.#options.encoding === "latin1" || isAscii(chunk.subarray(head, end));
    this.#text = oneBytePerChar ? decodeSlice(chunk, "latin1", head, end) : undefined;
    this.#textChunk = chunk;
    this.#textStart = head;
    this.#textEnd = end;
    return this.#text;
  }

  #cutTextLine(chunk: Buffer, text: string, nl: number): string | false {
    const base = this.#textStart;
    const start = this.#head - base;
    const end = nl > start && text.charCodeAt(nl - 1) === CR ? nl - 1 : nl;
    if (end - start > this.#options.maxLine) return false;
    const line = text.slice(start, end);
    this.#head = base + nl + 1;
    if (this.#head === chunk.length) this.#shiftChunk();
    this.#consumed(nl + 1 - start);
    return line;
  }

  #forgetText(): void {
    this.#text = undefined;
    this.#textChunk = undefined;
  }

  #cutLine(idx: number, nl: number): string | false {
    const chunks = this.#chunks;
    let line: string;
    let consumed: number;
    if (idx === 0) {
      const chunk = chunks[0] as Buffer;
      const start = this.#head;
      const end = nl > start && chunk[nl - 1] === CR ? nl - 1 : nl;
      if (end - start > this.#options.maxLine) return false;
      line = decodeSlice(chunk, this.#options.encoding, start, end);
      consumed = nl + 1 - start;
    } else {
      const parts: Buffer[] = [(chunks[0] as Buffer).subarray(this.#head)];
      for (let i = 1; i < idx; i++) parts.push(chunks[i] as Buffer);
      parts.push((chunks[idx] as Buffer).subarray(0, nl));
      let joined = Buffer.concat(parts);
      consumed = joined.length + 1;
      if (joined.length > 0 && joined[joined.length - 1] === CR) joined = joined.subarray(0, joined.length - 1);
      if (joined.length > this.#options.maxLine) return false;
      line = joined.toString(this.#options.encoding);
      chunks.splice(0, idx);
    }
    this.#head = nl + 1;
    if (this.#head === (chunks[0] as Buffer).length) this.#shiftChunk();
    this.#consumed(consumed);
    return line;
  }

  /** Removes `count` buffered bytes (count <= length); may return a view into a chunk. */
  #take(count: number): Buffer {
    const first = this.#chunks[0] as Buffer;
    let out: Buffer;
    if (first.length - this.#head >= count) {
      out = first.subarray(this.#head, this.#head + count);
      this.#head += count;
      if (this.#head === first.length) this.#shiftChunk();
    } else {
      out = Buffer.allocUnsafe(count);
      let filled = 0;
      while (filled < count) {
        const chunk = this.#chunks[0] as Buffer;
        const n = Math.min(count - filled, chunk.length - this.#head);
        chunk.copy(out, filled, this.#head, this.#head + n);
        filled += n;
        this.#head += n;
        if (this.#head === chunk.length) this.#shiftChunk();
      }
    }
    this.#consumed(count);
    return out;
  }

  #unshift(bytes: Buffer): void {
    if (bytes.length === 0) return;
    if (this.#head >= bytes.length) this.#head -= bytes.length;
    else {
      this.#chunks = [Buffer.from(bytes), ...this.#chunks];
      this.#head = 0;
    }
    this.#length += bytes.length;
    this.#scanIdx = 0;
    this.#scanOff = this.#head;
  }

  /** Drops chunks[0], all read. */
  #shiftChunk(): void {
    // The shared empty array for the common last chunk: cheaper than shift() (a call into
    // C++), and unlike an array emptied by shift() on Node 20, it holds no storage while idle.
    if (this.#chunks.length === 1) this.#chunks = NO_CHUNKS;
    else this.#chunks.shift();
    this.#head = 0;
    this.#forgetText();
  }

  #consumed(count: number): void {
    this.#length -= count;
    this.#scanIdx = 0;
    this.#scanOff = this.#head;
    if (this.#length === 0) this.#forgetText();
  }
}
