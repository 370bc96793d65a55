/**
 * The listener's common inputs, read without a parser: one line of expressions and simple
 * declarations, TypeScript annotations included (`1 + 2`, `app.users.length`,
 * `const n: number = 5; n * 2`, `let a = 1, b: string[] = []`).
 *
 * The exact route (`analyse` and `rewrite` in ./evaluator-compile.ts: a type stripper, a parser
 * and a rewrite) costs several times what V8 takes to compile such a line. This module reads
 * the line's top-level structure by hand and produces what `rewrite` would: the same helper
 * calls, the same assignments. It is conservative: whatever it is not sure of (braces, slashes,
 * templates, functions, a `:` outside an annotation, a type it cannot read, several lines) it
 * declines, and the exact route decides. What it accepts has no loop and no function, so no
 * time check is needed, and no regular expression, `eval` or `Function`, so no watchdog.
 *
 * It does not decide that the input is valid JavaScript: V8 does, when it compiles the result
 * (a failure there sends the input down the exact route, which nothing has run yet).
 * @module
 */
import { HELPER, plainExpression } from "./evaluator-compile.js";

/** One line read by {@link readSimpleInput}: see the module's comment. */
export interface SimpleInput {
  /** Every name the input declares, in order: what `rewrite` creates on the scope first. */
  readonly declared: readonly string[];
  /** The statements before the last expression, as `rewrite` makes them, each ending in `;` ("" if none). */
  readonly statements: string;
  /**
   * The same statements with each declarator one helper call that both declares and assigns
   * (`__confab__.const("n", 5);`), which needs no names created first; `undefined` when a name
   * is mentioned before its declarator ends (`a; let a = 1`, `let b = b`), where the order matters.
   * Every declarator is one call, in order: {@link BOUND} counts them.
   */
  readonly bound: string | undefined;
  /** The last statement when it is an expression (the input's value), else `undefined`. */
  readonly value: string | undefined;
  /** Whether `await` appears: the input then needs an async function. */
  readonly awaits: boolean;
}

/**
 * The helpers that `SimpleInput.bound` calls, each with a name (and a value): `let` defines a
 * variable, `const` a constant, `var` creates the name unless it exists (keeping its value).
 */
export const BOUND = { let: "let", const: "const", var: "var" } as const;

const DECLARATION = /^(const|let|var)\s+/;
const NAME = /[A-Za-z_$][\w$]*/y;
const SPACE = /\s*/y;
/** Characters that take an input off this route at once (see the module's comment). */
const DECLINED = /[{}`/#\\\n\r\u2028\u2029]|=>/;
/** Words that may not be declared (reserved, or bound in a special way), as JavaScript forbids or TypeScript does. */
const RESERVED = new Set(
  (
    "await break case catch class const continue debugger default delete do else enum export extends false " +
    "finally for function if implements import in instanceof interface let new null package private protected " +
    "public return static super switch this throw true try typeof var void while with yield arguments eval"
  ).split(" "),
);
/** Words that begin a statement, never an expression statement. */
const STATEMENT_WORDS =
  /^(?:if|else|export|for|while|do|switch|case|default|try|catch|finally|throw|return|break|continue|with|debugger|async|yield)\b/;
const AWAIT = /\bawait\b/;

/**
 * The input as {@link SimpleInput}, or `undefined` when it is not such a line (see the module's
 * comment). A string literal may hold anything but a backslash or a line break.
 */
export function readSimpleInput(source: string): SimpleInput | undefined {
  if (DECLINED.test(source)) return undefined;
  const pieces = splitTopLevel(source, 0, ";");
  if (pieces === undefined) return undefined;
  // A `;` ending the input ends its last statement; an empty statement anywhere else is declined.
  if (pieces.length > 1 && (pieces[pieces.length - 1] as string).trim() === "") pieces.pop();
  const declared = new Set<string>();
  let statements = "";
  let bound: string | undefined = "";
  let value: string | undefined;
  let before = "";
  for (let i = 0; i < pieces.length; i++) {
    const piece = (pieces[i] as string).trim();
    const last = i === pieces.length - 1;
    if (piece === "") return undefined;
    const kind = DECLARATION.exec(piece)?.[1];
    if (kind !== undefined) {
      const read = readDeclaration(piece, (DECLARATION.exec(piece)?.[0] ?? "").length, kind, declared, before);
      if (read === undefined) return undefined;
      statements += read.hoisted;
      bound = read.bound === undefined || bound === undefined ? undefined : bound + read.bound;
    } else {
      if (!expression(piece) || STATEMENT_WORDS.test(piece)) return undefined;
      if (last) value = piece;
      else {
        statements += `${piece};`;
        if (bound !== undefined) bound += `${piece};`;
      }
    }
    before += `${piece};`;
  }
  return { declared: [...declared], statements, bound, value, awaits: AWAIT.test(source) };
}

/** An expression this route may hand to V8 as it is: see `plainExpression`. */
function expression(text: string): boolean {
  return text !== "" && plainExpression(text);
}

/**
 * `a: T = 1, b = 2` from `at` (after the keyword) as assignments, `rewrite`'s way (`hoisted`:
 * `(a = 1);(b = 2);`, a `let` without a value assigned `void 0`, a `var` without one left as it
 * is, and a `const` sealed) and as helper calls (`bound`, see {@link SimpleInput.bound}).
 * `before` is the input's text before this statement.
 */
function readDeclaration(
  text: string,
  at: number,
  kind: string,
  declared: Set<string>,
  before: string,
): { hoisted: string; bound: string | undefined } | undefined {
  const names: string[] = [];
  let hoisted = "";
  let bound: string | undefined = "";
  let pos = at;
  for (;;) {
    NAME.lastIndex = pos;
    const name = NAME.exec(text)?.[0];
    // Declared twice in one input is an error for `let` and `const`: the exact route says so.
    if (name === undefined || RESERVED.has(name) || declared.has(name)) return undefined;
    pos = skipSpace(text, pos + name.length);
    if (text[pos] === ":") {
      const end = readType(text, skipSpace(text, pos + 1));
      if (end === undefined) return undefined;
      pos = skipSpace(text, end);
    }
    let init: string | undefined;
    if (text[pos] === "=" && text[pos + 1] !== "=") {
      const end = expressionEnd(text, pos + 1);
      if (end === undefined) return undefined;
      init = text.slice(pos + 1, end).trim();
      if (!expression(init)) return undefined;
      pos = end;
    } else if (kind === "const") {
      return undefined; // a const without a value is an error: the exact route says so
    }
    names.push(name);
    declared.add(name);
    if (init !== undefined) hoisted += `(${name} = ${init});`;
    else if (kind === "let") hoisted += `(${name} = void 0);`;
    if (bound !== undefined && mentions(before + text.slice(0, pos), name) === 1) {
      const helper = kind === "const" ? BOUND.const : init === undefined && kind === "var" ? BOUND.var : BOUND.let;
      bound += `${HELPER}.${helper}(${JSON.stringify(name)}${helper === BOUND.var ? "" : `, ${init ?? "void 0"}`});`;
    } else {
      bound = undefined;
    }
    if (pos >= text.length) break;
    if (text[pos] !== ",") return undefined;
    pos = skipSpace(text, pos + 1);
  }
  if (kind === "const") {
    hoisted += `${HELPER}.seal(${JSON.stringify(names)});`;
    // `rewrite` seals a statement's constants together, at its end (`const a = 1, b = a = 2`
    // assigns `a`; if `b`'s value throws, `a` stays assignable): one helper call a constant
    // would not, so only a lone constant is bound by one.
    if (names.length > 1) bound = undefined;
  }
  return { hoisted, bound };
}

/** How many times `name` occurs in `text` as a word (in a string or after a `.` too: it only needs to be safe). */
function mentions(text: string, name: string): number {
  let count = 0;
  for (let at = text.indexOf(name); at >= 0; at = text.indexOf(name, at + name.length)) {
    if (!/[\w$]/.test(text[at - 1] ?? "") && !/[\w$]/.test(text[at + name.length] ?? "")) count++;
  }
  return count;
}

function skipSpace(text: string, pos: number): number {
  SPACE.lastIndex = pos;
  SPACE.exec(text);
  return SPACE.lastIndex;
}

/** Where the expression starting at `from` ends: at the first `,` outside brackets and strings, or the text's end. */
function expressionEnd(text: string, from: number): number | undefined {
  const parts = splitTopLevel(text, from, ",");
  return parts === undefined ? undefined : from + (parts[0] as string).length;
}

/**
 * Splits `text` from `from` at every `separator` outside brackets and string literals; `undefined`
 * when a bracket does not match or a string is left open (the exact route explains what is wrong).
 * With `,` it stops at the first one: the rest is the next declarator's.
 */
function splitTopLevel(text: string, from: number, separator: ";" | ","): string[] | undefined {
  const parts: string[] = [];
  const closers: string[] = [];
  let start = from;
  for (let i = from; i < text.length; i++) {
    const c = text[i];
    if (c === '"' || c === "'") {
      const end = text.indexOf(c, i + 1);
      if (end < 0) return undefined;
      i = end;
    } else if (c === "(") closers.push(")");
    else if (c === "[") closers.push("]");
    else if (c === ")" || c === "]") {
      if (closers.pop() !== c) return undefined;
    } else if (c === separator && closers.length === 0) {
      parts.push(text.slice(start, i));
      if (separator === ",") return parts;
      start = i + 1;
    }
  }
  if (closers.length > 0) return undefined;
  parts.push(text.slice(start));
  return parts;
}

/**
 * A TypeScript type annotation from `pos`, of the kinds people type at a prompt: names
 * (`number`, `Foo.Bar`), literals, unions and intersections, `T[]`, `typeof x` and type
 * arguments (`Map<string, number[]>`). Returns where it ends, or `undefined` for anything else.
 */
function readType(text: string, pos: number): number | undefined {
  let at = skipSpace(text, pos);
  if (text[at] === "|" || text[at] === "&") at = skipSpace(text, at + 1);
  for (;;) {
    const end = readTypeMember(text, at);
    if (end === undefined) return undefined;
    at = skipSpace(text, end);
    if (text[at] !== "|" && text[at] !== "&") return at;
    at = skipSpace(text, at + 1);
  }
}

const TYPE_LITERAL = /-?\d[\d_]*(?:\.\d+)?|"[^"]*"|'[^']*'/y;
const TYPE_WORDS_DECLINED = new Set(["keyof", "readonly", "unique", "infer", "asserts", "is", "new"]);

function readTypeMember(text: string, pos: number): number | undefined {
  let at = pos;
  TYPE_LITERAL.lastIndex = at;
  const literal = TYPE_LITERAL.exec(text)?.[0];
  if (literal !== undefined) {
    at += literal.length;
  } else {
    NAME.lastIndex = at;
    let name = NAME.exec(text)?.[0];
    if (name === undefined || TYPE_WORDS_DECLINED.has(name)) return undefined;
    if (name === "typeof") {
      at = skipSpace(text, at + name.length);
      NAME.lastIndex = at;
      name = NAME.exec(text)?.[0];
      if (name === undefined) return undefined;
    }
    at += name.length;
    while (text[at] === ".") {
      NAME.lastIndex = at + 1;
      const part = NAME.exec(text)?.[0];
      if (part === undefined) return undefined;
      at += 1 + part.length;
    }
    const afterName = skipSpace(text, at);
    if (text[afterName] === "<") {
      at = skipSpace(text, afterName + 1);
      for (;;) {
        const end = readType(text, at);
        if (end === undefined) return undefined;
        at = skipSpace(text, end);
        if (text[at] === ">") break;
        if (text[at] !== ",") return undefined;
        at = skipSpace(text, at + 1);
      }
      at += 1;
    }
  }
  for (;;) {
    const open = skipSpace(text, at);
    if (text[open] !== "[") return at;
    const close = skipSpace(text, open + 1);
    if (text[close] !== "]") return undefined;
    at = close + 1;
  }
}
