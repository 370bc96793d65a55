/**
 * Text that came from outside (a process name sent on a listener's name line, a peer address
 * from a PROXY header, an error message) shown so that it cannot hide, reorder or break what is
 * around it: `ps()`'s table, a server's log lines, the monitor page, a connection's last line.
 *
 * Escaped, in JavaScript string-literal syntax: C0 and C1 controls (tab, CR, LF and ESC
 * included: `\t`, `\r`, `\n`, `\u001b`), every format character (`\p{Cf}`: the bidi controls
 * U+202A–U+202E, U+2066–U+2069, U+200E/U+200F and U+061C, the zero-width U+200B–U+200D, U+2060
 * and U+FEFF, the soft hyphen, tag characters), the line and paragraph separators U+2028/U+2029,
 * lone surrogates, the Hangul fillers that print as blank letters, and the backslash itself
 * (`\\`), so that escaped text is never mistaken for text that merely looks escaped. Everything
 * else, accented letters, CJK and emoji among it, is kept as it is.
 *
 * Only what is shown is escaped: `process.name`, `ps()[i].name`, `ServerEvent.process` keep the
 * real name. Pasted between quotes into a listener input, a name shown escaped reads back as the
 * real name.
 *
 * @module
 */

// What must not reach a terminal, a log file or a page unescaped.
const UNSAFE = /[\p{Cc}\p{Cf}\p{Zl}\p{Zp}\p{Cs}\u115f\u1160\u3164\uffa0\\]/u;
const UNSAFE_ALL = new RegExp(UNSAFE.source, "gu");
// What JSON.stringify leaves as it is although it is unsafe to show (it escapes C0, `"`, `\` and lone surrogates).
const JSON_UNSAFE_ALL = /[\u007f-\u009f\p{Cf}\p{Zl}\p{Zp}\u115f\u1160\u3164\uffa0]/gu;

const SHORT: Readonly<Record<string, string>> = { "\t": "\\t", "\n": "\\n", "\r": "\\r", "\\": "\\\\" };

function hex4(code: number): string {
  return `\\u${code.toString(16).padStart(4, "0")}`;
}

function escapeOne(c: string): string {
  const short = SHORT[c];
  if (short !== undefined) return short;
  const code = c.codePointAt(0) as number;
  return code > 0xffff ? `\\u{${code.toString(16)}}` : hex4(code);
}

// In JSON only `\uXXXX` is an escape: a character past U+FFFF is written as its two surrogates.
function escapeOneJson(c: string): string {
  let out = "";
  for (let i = 0; i < c.length; i++) out += hex4(c.charCodeAt(i));
  return out;
}

/**
 * `text` with controls, bidi and zero-width characters, line separators and backslashes
 * escaped (`evil\tname\u202e`), so that it shows on one line, in its own order, and nothing
 * in it is invisible. Text with none of them is returned as it is.
 *
 * @example
 * ```ts
 * printable("evil\tname\u202e"); // => "evil\\tname\\u202e"
 * ```
 */
export function printable(text: string): string {
  return UNSAFE.test(text) ? text.replace(UNSAFE_ALL, escapeOne) : text;
}

/**
 * `text` between double quotes, escaped as {@link printable} does and with its double quotes
 * escaped too (`"say \"hi\"\t"`), as Lisp's `~S` and JavaScript print a string.
 */
export function quoted(text: string): string {
  return `"${printable(text).replace(/"/g, '\\"')}"`;
}

/**
 * `JSON.stringify(value)`, with the characters JSON leaves raw but {@link printable} would
 * escape (C1 controls, bidi and zero-width characters, U+2028/U+2029) written as `\uXXXX`:
 * the same JSON value, safe to `cat` or `tail -f`.
 */
export function printableJson(value: unknown): string {
  const json = JSON.stringify(value);
  return json.replace(JSON_UNSAFE_ALL, escapeOneJson);
}
