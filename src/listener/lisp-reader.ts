/**
 * A small Common Lisp reader, just big enough for the listener server's name line: a client's first line
 * must be one Lisp string (`"my listener"`), and anything else (a symbol, a list, an HTTP request line sent
 * by a browser that was tricked into posting to the port) must be refused with a clear one-line message
 * before it can reach the evaluator.
 *
 * It is a hand-written scanner, not a recursive-descent parser: every input is read in time linear in its
 * length and with constant stack depth, so a hostile client cannot make it hang or overflow the stack.
 *
 * @module
 */
import { printable, quoted } from "../comm/printable.js";
import { ConfabError, ErrorCodes } from "../errors.js";

/**
 * A form read by {@link readLispForm}. Only what the name line needs is represented: strings and symbols in
 * full, numbers by value, lists only by their kind (so that they can be refused by name).
 *
 * - `symbol`: `name` is the name as the standard reader (readtable case `:upcase`) interns it: unescaped
 *   characters upcased, characters escaped with `\x` or `|...|` kept as written. Package markers are not
 *   interpreted: `:key` has the name `":KEY"`, `cl:car` the name `"CL:CAR"`.
 * - `number`: base-ten integers (`42`, `-7`, `+3.`), ratios (`1/3`) and decimal floats (`1.5`, `.5`, `1e3`,
 *   `2.5d0`; any of the exponent markers `e s f d l`), as a JavaScript number, so integers beyond 2^53 are
 *   approximate. A number that would be infinite is an error, as is a ratio with denominator zero.
 */
export type LispForm =
  | { readonly kind: "string"; readonly value: string }
  | { readonly kind: "symbol"; readonly name: string }
  | { readonly kind: "number"; readonly value: number }
  | { readonly kind: "list" };

/** The longest listener name {@link readListenerName} accepts, in characters (Unicode code points). */
export const MAX_LISTENER_NAME_LENGTH = 200;

/** Internal: a reader error with its message, turned into a {@link ConfabError} at the public boundary. */
class ReaderFailure extends Error {}

// Whitespace[2] of the standard syntax: Space, Tab, Newline/Linefeed, Return, Page.
function isWhitespace(c: string): boolean {
  return c === " " || c === "\t" || c === "\n" || c === "\r" || c === "\f";
}

// Terminating macro characters end a token; '#' is non-terminating, so it may appear inside one.
function endsToken(c: string): boolean {
  return isWhitespace(c) || c === '"' || c === "'" || c === "(" || c === ")" || c === "," || c === ";" || c === "`";
}

/** 1-based position counted in characters (code points), which is what a person looking at the line counts. */
function position(text: string, index: number): string {
  return `character ${countCodePoints(text, index) + 1}`;
}

/** Code points in `text` before `end`; a lone surrogate counts as one. */
function countCodePoints(text: string, end: number): number {
  let count = 0;
  for (let i = 0; i < end && i < text.length; i++) {
    const isLowAfterHigh = isLowSurrogate(text.charCodeAt(i)) && i > 0 && isHighSurrogate(text.charCodeAt(i - 1));
    if (!isLowAfterHigh) count++;
  }
  return count;
}

function isHighSurrogate(code: number): boolean {
  return code >= 0xd800 && code <= 0xdbff;
}

function isLowSurrogate(code: number): boolean {
  return code >= 0xdc00 && code <= 0xdfff;
}

/** Skips whitespace and `;` comments, as the Lisp reader does between forms. */
function skipBlank(text: string, index: number): number {
  let i = index;
  while (i < text.length) {
    const c = text.charAt(i);
    if (isWhitespace(c)) {
      i++;
    } else if (c === ";") {
      const newline = text.indexOf("\n", i);
      i = newline === -1 ? text.length : newline + 1;
    } else {
      break;
    }
  }
  return i;
}

interface Read {
  readonly form: LispForm;
  readonly end: number;
}

function readForm(text: string, start: number): Read {
  const c = text.charAt(start);
  switch (c) {
    case '"':
      return readString(text, start);
    case "(":
      return { form: { kind: "list" }, end: skipList(text, start) };
    case ")":
      throw new ReaderFailure(`unexpected ')' at ${position(text, start)}`);
    case "'":
      throw new ReaderFailure(`the quote reader macro ' at ${position(text, start)} is not supported`);
    case "`":
      throw new ReaderFailure(`the backquote reader macro \` at ${position(text, start)} is not supported`);
    case ",":
      throw new ReaderFailure(`a comma at ${position(text, start)} is not inside a backquote`);
    case "#":
      throw new ReaderFailure(`the dispatching reader macro # at ${position(text, start)} is not supported`);
    default:
      return readToken(text, start);
  }
}

/** Reads `"..."` where `\x` stands for `x`, whatever `x` is (so `\n` is `n`, as in Common Lisp). */
function readString(text: string, start: number): Read {
  const chunks: string[] = [];
  let runStart = start + 1;
  for (let i = runStart; i < text.length; i++) {
    const c = text.charAt(i);
    if (c === '"') {
      chunks.push(text.slice(runStart, i));
      return { form: { kind: "string", value: chunks.join("") }, end: i + 1 };
    }
    if (c === "\\") {
      if (i + 1 >= text.length) break;
      chunks.push(text.slice(runStart, i), text.charAt(i + 1));
      i++;
      runStart = i + 1;
    }
  }
  throw new ReaderFailure(`unterminated string starting at ${position(text, start)}`);
}

/** Finds the end of a list by counting parentheses; nested strings, `|...|`, escapes and comments are skipped, not parsed. */
function skipList(text: string, start: number): number {
  let depth = 0;
  let i = start;
  while (i < text.length) {
    const c = text.charAt(i);
    if (c === "(") {
      depth++;
      i++;
    } else if (c === ")") {
      depth--;
      i++;
      if (depth === 0) return i;
    } else if (c === '"') {
      i = readString(text, i).end;
    } else if (c === "|") {
      i = endOfMultipleEscape(text, i);
    } else if (c === "\\") {
      if (i + 1 >= text.length)
        throw new ReaderFailure(`input ends after the escape character \\ at ${position(text, i)}`);
      i += 2;
    } else if (c === ";") {
      const newline = text.indexOf("\n", i);
      i = newline === -1 ? text.length : newline + 1;
    } else {
      i++;
    }
  }
  const missing = depth === 1 ? "one ')' is missing" : `${depth} ')' are missing`;
  throw new ReaderFailure(`unterminated list: the '(' at ${position(text, start)} is never closed (${missing})`);
}

/** Index just past the `|` closing the one at `start`; `\` escapes inside. */
function endOfMultipleEscape(text: string, start: number): number {
  for (let i = start + 1; i < text.length; i++) {
    const c = text.charAt(i);
    if (c === "|") return i + 1;
    if (c === "\\") i++;
  }
  throw new ReaderFailure(`unterminated |...| starting at ${position(text, start)}`);
}

const INTEGER = /^[+-]?[0-9]+\.?$/;
const RATIO = /^([+-]?[0-9]+)\/([0-9]+)$/;
const FLOAT = /^[+-]?(?:[0-9]*\.[0-9]+(?:[esfdl][+-]?[0-9]+)?|[0-9]+(?:\.[0-9]*)?[esfdl][+-]?[0-9]+)$/i;

/** Reads a symbol or number token: constituents with `\x` single escapes and `|...|` multiple escapes. */
function readToken(text: string, start: number): Read {
  const parts: string[] = [];
  let escaped = false;
  let runStart = start;
  let i = start;
  // Runs of unescaped characters are upcased whole, so astral letters (surrogate pairs) upcase too.
  const flushRun = (end: number): void => {
    if (end > runStart) parts.push(text.slice(runStart, end).toUpperCase());
  };
  while (i < text.length) {
    const c = text.charAt(i);
    if (endsToken(c)) break;
    if (c === "\\") {
      flushRun(i);
      if (i + 1 >= text.length)
        throw new ReaderFailure(`input ends after the escape character \\ at ${position(text, i)}`);
      const width = isHighSurrogate(text.charCodeAt(i + 1)) && isLowSurrogate(text.charCodeAt(i + 2)) ? 2 : 1;
      parts.push(text.slice(i + 1, i + 1 + width));
      escaped = true;
      i += 1 + width;
      runStart = i;
    } else if (c === "|") {
      flushRun(i);
      const end = endOfMultipleEscape(text, i);
      parts.push(unescapeSingle(text.slice(i + 1, end - 1)));
      escaped = true;
      i = end;
      runStart = i;
    } else {
      i++;
    }
  }
  flushRun(i);
  if (!escaped) {
    const raw = text.slice(start, i);
    if (/^\.+$/.test(raw)) {
      throw new ReaderFailure(`a token made only of dots at ${position(text, start)} is not allowed`);
    }
    const value = parseNumber(raw);
    if (value !== undefined) {
      if (Number.isNaN(value)) throw new ReaderFailure(`division by zero in the ratio at ${position(text, start)}`);
      if (!Number.isFinite(value)) throw new ReaderFailure(`the number at ${position(text, start)} is out of range`);
      return { form: { kind: "number", value }, end: i };
    }
  }
  return { form: { kind: "symbol", name: parts.join("") }, end: i };
}

function unescapeSingle(s: string): string {
  return s.replace(/\\([\s\S])/g, "$1");
}

/** A number by the standard syntax in base ten, `undefined` if the token is not one (so it is a symbol); NaN for a ratio over zero. */
function parseNumber(token: string): number | undefined {
  if (INTEGER.test(token)) {
    const value = Number(token.endsWith(".") ? token.slice(0, -1) : token);
    return value === 0 ? 0 : value; // Lisp integers have no negative zero.
  }
  const ratio = RATIO.exec(token);
  if (ratio !== null) {
    const numerator = Number(ratio[1]);
    const denominator = Number(ratio[2]);
    if (denominator === 0) return Number.NaN;
    // Without this, huge/huge would be NaN and be misreported as a division by zero.
    if (!Number.isFinite(numerator) || !Number.isFinite(denominator)) return Number.POSITIVE_INFINITY;
    const value = numerator / denominator;
    return value === 0 ? 0 : value;
  }
  if (FLOAT.test(token)) return Number(token.replace(/[esfdl]/i, "e"));
  return undefined;
}

interface TopLevel {
  readonly form: LispForm;
  /** Index of the first non-blank character after the form, if any. */
  readonly trailingAt: number | undefined;
}

function readTopLevel(text: string): TopLevel {
  const start = skipBlank(text, 0);
  if (start >= text.length) throw new ReaderFailure("empty input: expected a Lisp form");
  const { form, end } = readForm(text, start);
  const after = skipBlank(text, end);
  return { form, trailingAt: after < text.length ? after : undefined };
}

/**
 * Reads exactly one Common Lisp form from `text`. Whitespace (and `;` comments) may surround it; anything else
 * after it is an error. Supported: strings, symbols (with `\` and `|...|` escapes), numbers (see
 * {@link LispForm}), and lists, which are recognised by balanced parentheses but not parsed. Reader macros
 * (`'`, `` ` ``, `,`, `#...`) are refused rather than read.
 *
 * Runs in linear time with constant stack depth, whatever the input.
 *
 * @throws {ConfabError} `ErrorCodes.BAD_NAME_LINE`, with a one-line message saying what was wrong and at
 *   which character (1-based, counting code points); never any other exception.
 *
 * @example
 * ```ts
 * readLispForm(' "my \\"repl\\"" ');  // => { kind: "string", value: 'my "repl"' }
 * readLispForm("foo");                 // => { kind: "symbol", name: "FOO" }
 * readLispForm("|Foo|");               // => { kind: "symbol", name: "Foo" }
 * readLispForm("POST / HTTP/1.1");     // throws: unexpected text after the symbol POST at character 6
 * ```
 */
export function readLispForm(text: string): LispForm {
  try {
    const { form, trailingAt } = readTopLevel(text);
    if (trailingAt !== undefined) {
      throw new ReaderFailure(`unexpected text after ${describeForm(form)} at ${position(text, trailingAt)}`);
    }
    return form;
  } catch (err) {
    throw asConfabError(err);
  }
}

/**
 * Applies the listener server's rule to the client's first line: it must be exactly one Lisp string, which
 * becomes the listener process's name. The name must not be blank, must not contain control characters other
 * than tab (they would garble process listings and logs), and must be at most
 * {@link MAX_LISTENER_NAME_LENGTH} characters long.
 *
 * @throws {ConfabError} `ErrorCodes.BAD_NAME_LINE` with a one-line message, fit to send back to the client,
 *   that says a string was expected and what came instead.
 *
 * @example
 * ```ts
 * readListenerName('"my listener"');   // => "my listener"
 * readListenerName("foo");             // throws: expected a string naming the listener, such as "my listener", but got the symbol FOO
 * ```
 */
export function readListenerName(line: string): string {
  const expected = 'expected a string naming the listener, such as "my listener"';
  let top: TopLevel;
  try {
    top = readTopLevel(line);
  } catch (err) {
    if (err instanceof ReaderFailure) throw badNameLine(`${expected}: ${err.message}`);
    throw asConfabError(err);
  }
  const { form, trailingAt } = top;
  if (trailingAt !== undefined) {
    throw badNameLine(
      `${expected}, but got ${describeForm(form)} followed by more text at ${position(line, trailingAt)}`,
    );
  }
  if (form.kind !== "string") throw badNameLine(`${expected}, but got ${describeForm(form)}`);
  const name = form.value;
  if (name.trim() === "") throw badNameLine(`${expected}, but the name is blank`);
  const control = /[^\P{Cc}\t]/u.exec(name);
  if (control !== null) {
    const code = control[0].charCodeAt(0).toString(16).toUpperCase().padStart(4, "0");
    throw badNameLine(
      `the listener name must not contain control characters, but it has U+${code} at ${position(name, control.index)} of the name`,
    );
  }
  const length = countCodePoints(name, name.length);
  if (length > MAX_LISTENER_NAME_LENGTH) {
    throw badNameLine(
      `the listener name is ${length} characters long; at most ${MAX_LISTENER_NAME_LENGTH} are allowed`,
    );
  }
  return name;
}

function badNameLine(message: string): ConfabError {
  return new ConfabError(ErrorCodes.BAD_NAME_LINE, message);
}

function asConfabError(err: unknown): ConfabError {
  if (err instanceof ReaderFailure) return badNameLine(err.message);
  // Not expected: a bug here must still surface as the documented error, with the cause kept for debugging.
  return new ConfabError(ErrorCodes.BAD_NAME_LINE, "the line could not be read as a Lisp form", { cause: err });
}

const SHOWN_LENGTH = 40;

/** A short, single-line description of a form for error messages, safe to show whatever the client sent. */
function describeForm(form: LispForm): string {
  switch (form.kind) {
    case "string":
      return `the string ${quoted(shortened(form.value))}`;
    case "symbol":
      return `the symbol ${printSymbol(form.name)}`;
    case "number":
      return `the number ${String(form.value)}`;
    case "list":
      return "a list";
  }
}

// A name printed bare must read back as the same symbol; otherwise it is shown in |...|, as Lisp prints it.
function printSymbol(name: string): string {
  const bare =
    /^(?!#)[A-Z0-9!$%&*+\-./:<=>?@^_~[\]{}#]+$/.test(name) && !/^\.+$/.test(name) && parseNumber(name) === undefined;
  // printable escapes `\` as `\\`, as Lisp does between bars; `|` is escaped here.
  return bare ? printable(shortened(name)) : `|${printable(shortened(name)).replace(/\|/g, "\\|")}|`;
}

/** At most SHOWN_LENGTH characters of `s`, `...` marking a cut, so that a message stays short (see printable for one line). */
function shortened(s: string): string {
  // Slicing first keeps this cheap for a huge token; 2 code units per code point is the worst case.
  const head = s.slice(0, SHOWN_LENGTH * 2 + 2);
  const chars = Array.from(head);
  const truncated = chars.length > SHOWN_LENGTH || head.length < s.length;
  return truncated ? `${chars.slice(0, SHOWN_LENGTH).join("")}...` : head;
}
