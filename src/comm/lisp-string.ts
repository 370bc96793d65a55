/**
 * A string as Common Lisp prints it with `~S` (`prin1`): in double quotes, with each double
 * quote and backslash in it escaped by a backslash. The one writer of the syntax that the
 * listener's reader (`src/listener/lisp-reader.ts`) reads: a server's default name
 * (`"confab" server`) and the name line `confab connect` sends are written with it.
 *
 * @example
 * ```ts
 * lispString('say "hi"'); // "\"say \\\"hi\\\"\""
 * ```
 * @module
 */

/** `text` as a Common Lisp string literal: `"a \"b\""`. */
export function lispString(text: string): string {
  return `"${text.replace(/["\\]/g, "\\$&")}"`;
}
