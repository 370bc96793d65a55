/**
 * A cheap, incremental pre-check of whether a multi-line listener input may be complete.
 *
 * The listener's exact test (`analyse` in ./evaluator-compile.ts: type stripping and a full parse) costs time
 * proportional to the whole input, so asking it after every line of an n-line paste costs O(n²). This module
 * reads each line once, carrying from line to line just enough state (the open brackets; whether the text is
 * inside a template literal, a block comment or a continued string; the last significant token) to tell when
 * the text so far certainly cannot be a complete program. The listener then runs the exact parser only where
 * the scanner cannot rule completeness out.
 *
 * Soundness comes first: "incomplete" is answered only when it is certain. Wherever this scanner's reading of
 * the text could differ from the parser's (a `/` that could be a division or a regular expression, a bracket
 * that closes the wrong opener, a stray backslash, an HTML-like comment, a string or regular expression cut
 * off by the end of its line), it gives up and answers "may be complete" until the next {@link InputScanner.reset}.
 * Giving up costs only speed: the exact parser decides.
 */

/** How a `/` would read after the last significant token: as JavaScript tokenizers decide it. */
type Slash = "regex" | "division" | "unsure";

// What the end of the text so far is inside of.
const CODE = 0;
const TEMPLATE = 1;
const BLOCK_COMMENT = 2;
const STRING = 3;
type Mode = typeof CODE | typeof TEMPLATE | typeof BLOCK_COMMENT | typeof STRING;

// The open brackets, as kept on the stack. A parenthesis remembers what opened it, because its `)` decides
// whether a `/` after it is a regular expression (`if (x) /re/`) and whether the text may end there.
const PAREN = 0;
/** `if (`, `for (`, `with (`: the `)` needs a statement after it. */
const HEADER_PAREN = 1;
/** `while (`: needs a body, unless it ends a `do ... while (...)`. */
const WHILE_PAREN = 2;
/** `for await (`: a header, but acorn reads a `/` after its `)` as a division. */
const FOR_AWAIT_PAREN = 3;
/** `x.if(`: a method call, but acorn's tokenizer may take the `(` for a statement header. */
const KEYWORD_NAME_PAREN = 4;
const BRACKET = 5;
const BRACE = 6;
/** `${` inside a template literal: its `}` returns to the template. */
const SUBSTITUTION = 7;

/** The kind of `(` the last token asks for. */
type Pending = "none" | "header" | "for" | "while" | "forAwait" | "keywordName";

const TAB = 0x09;
const LF = 0x0a;
const VT = 0x0b;
const FF = 0x0c;
const CR = 0x0d;
const SPACE = 0x20;
const BANG = 0x21;
const DOUBLE_QUOTE = 0x22;
const HASH = 0x23;
const DOLLAR = 0x24;
const SINGLE_QUOTE = 0x27;
const LPAREN = 0x28;
const RPAREN = 0x29;
const STAR = 0x2a;
const PLUS = 0x2b;
const MINUS = 0x2d;
const DOT = 0x2e;
const SLASH = 0x2f;
const ZERO = 0x30;
const NINE = 0x39;
const EQUALS = 0x3d;
const LESS = 0x3c;
const GREATER = 0x3e;
const QUESTION = 0x3f;
const LBRACKET = 0x5b;
const BACKSLASH = 0x5c;
const RBRACKET = 0x5d;
const UNDERSCORE = 0x5f;
const BACKTICK = 0x60;
const LBRACE = 0x7b;
const RBRACE = 0x7d;
const LOWER_B = 0x62;
const LOWER_E = 0x65;
const LOWER_O = 0x6f;
const LOWER_U = 0x75;
const LOWER_X = 0x78;

/** One punctuator: how a `/` after it reads, and whether a complete program can end with it. */
interface Punctuator {
  readonly text: string;
  readonly slash: Slash;
  readonly cannotEnd: boolean;
}

/**
 * Operators that need an operand after them, so no program ends with them. `>`, `>>` and `>>>` are not among
 * them: they also close TypeScript type arguments (`let a: Array<Array<number>>`). `!` is handled apart (it
 * is also TypeScript's non-null assertion, `x!`), and so are `/` and `/=`.
 */
const OPERATORS = [
  ">>>=",
  "...",
  "===",
  "!==",
  "**=",
  "<<=",
  ">>=",
  "&&=",
  "||=",
  "??=",
  "=>",
  "==",
  "!=",
  "<=",
  ">=",
  "&&",
  "||",
  "??",
  "?.",
  "+=",
  "-=",
  "*=",
  "%=",
  "&=",
  "|=",
  "^=",
  "**",
  "<<",
  "=",
  "<",
  "+",
  "-",
  "*",
  "%",
  "&",
  "|",
  "^",
  "~",
  "?",
  ":",
  ",",
  ".",
];

const PUNCTUATORS: readonly Punctuator[] = [
  ...OPERATORS.map((text): Punctuator => ({ text, slash: "regex", cannotEnd: true })),
  // A TypeScript generic may close here, after which a `/` is a division; in JavaScript it is a regex.
  { text: ">>>", slash: "unsure", cannotEnd: false },
  { text: ">>", slash: "unsure", cannotEnd: false },
  { text: ">", slash: "unsure", cannotEnd: false },
  // Postfix (`a++ / 2`) or prefix after a line break (`a\n++/re/.lastIndex`).
  { text: "++", slash: "unsure", cannotEnd: false },
  { text: "--", slash: "unsure", cannotEnd: false },
  { text: ";", slash: "regex", cannotEnd: false },
  // Decorators: not JavaScript acorn reads, so nothing to be sure of.
  { text: "@", slash: "unsure", cannotEnd: false },
];

/** Punctuators by their first character, longest first, for maximal munch. */
const PUNCTUATORS_BY_FIRST: ReadonlyMap<number, readonly Punctuator[]> = (() => {
  const map = new Map<number, Punctuator[]>();
  for (const p of PUNCTUATORS) {
    const first = p.text.charCodeAt(0);
    const list = map.get(first) ?? [];
    list.push(p);
    map.set(first, list);
  }
  for (const list of map.values()) list.sort((a, b) => b.text.length - a.text.length);
  return map;
})();

/** Keywords after which a `/` starts a regular expression (acorn's `beforeExpr` keywords, and V8 agrees). */
const REGEX_AFTER = new Set([
  "return",
  "typeof",
  "instanceof",
  "in",
  "new",
  "delete",
  "throw",
  "case",
  "do",
  "else",
  "extends",
  "default",
]);

/**
 * Words after which a `/` cannot be classified with certainty: `yield`, `await` and `of` are keywords only in
 * some places; `void` ends TypeScript types (`x as void / 2`); after `break`, `const` (`as const`) and the
 * rest, a `/` is either an error or depends on the parser.
 */
const UNSURE_AFTER = new Set([
  "break",
  "continue",
  "debugger",
  "if",
  "for",
  "while",
  "with",
  "switch",
  "try",
  "catch",
  "finally",
  "function",
  "class",
  "const",
  "var",
  "import",
  "export",
  "enum",
  "void",
  "yield",
  "await",
  "of",
]);

/** Words acorn reads as keyword tokens (its tokenizer treats them differently after `?.` than after `.`). */
const RESERVED = new Set([
  "break",
  "case",
  "catch",
  "continue",
  "debugger",
  "default",
  "do",
  "else",
  "finally",
  "for",
  "function",
  "if",
  "return",
  "switch",
  "throw",
  "try",
  "var",
  "const",
  "while",
  "with",
  "new",
  "this",
  "super",
  "class",
  "extends",
  "export",
  "import",
  "null",
  "true",
  "false",
  "in",
  "instanceof",
  "typeof",
  "void",
  "delete",
]);

/**
 * Reserved words no complete program, JavaScript or TypeScript, ends with (unless after `.`, as a property
 * name). Not `return`, `break`, `yield` or `await` (complete statements or identifiers), nor `void` (a
 * TypeScript type, `() => void`) or `const` (`[1] as const`).
 */
const CANNOT_END = new Set([
  "case",
  "catch",
  "class",
  "delete",
  "do",
  "else",
  "extends",
  "finally",
  "for",
  "function",
  "if",
  "in",
  "instanceof",
  "new",
  "switch",
  "throw",
  "try",
  "typeof",
  "var",
  "while",
  "with",
]);

/** Longest word in the tables above: longer identifiers need not be looked up. */
const LONGEST_KEYWORD = 10;

function isLineTerminator(c: number): boolean {
  return c === LF || c === CR || c === 0x2028 || c === 0x2029;
}

/** JavaScript's WhiteSpace, line terminators excluded. */
function isSpace(c: number): boolean {
  return (
    c === SPACE ||
    c === TAB ||
    c === VT ||
    c === FF ||
    c === 0xa0 ||
    c === 0x1680 ||
    (c >= 0x2000 && c <= 0x200a) ||
    c === 0x202f ||
    c === 0x205f ||
    c === 0x3000 ||
    c === 0xfeff
  );
}

function isDigit(c: number): boolean {
  return c >= ZERO && c <= NINE;
}

/** ASCII letters, `$`, `_`, and any non-ASCII character that is not a space (close enough: not a parser). */
function isIdentifierStart(c: number): boolean {
  const lower = c | 0x20;
  return (
    (lower >= 0x61 && lower <= 0x7a) ||
    c === DOLLAR ||
    c === UNDERSCORE ||
    (c >= 0x80 && !isSpace(c) && !isLineTerminator(c))
  );
}

function isIdentifierPart(c: number): boolean {
  return isIdentifierStart(c) || isDigit(c);
}

/** The character code at `i`, or -1 past the end. */
function codeAt(line: string, i: number): number {
  return i < line.length ? line.charCodeAt(i) : -1;
}

/** Where a `//` comment whose text starts at `from` ends: at the next line terminator, or the end of the line. */
function lineCommentEnd(line: string, from: number): number {
  const n = line.length;
  let j = from;
  while (j < n && !isLineTerminator(line.charCodeAt(j))) j++;
  return j;
}

/**
 * Tells, line by line and in time proportional to each line, whether the text fed so far may be a complete
 * JavaScript or TypeScript input. It exists so that the listener can skip its exact (whole-text) parse after
 * lines that certainly leave the input open, which turns a long paste from quadratic into linear work.
 *
 * {@link InputScanner.mayBeComplete} is `false` only when more text is certainly needed: a bracket, template
 * literal (or `${`), block comment or backslash-continued string is still open, or the last significant
 * token needs something after it (a binary or assignment operator, `=>`, `,`, `.`, `?`, `:`, a prefix `!`,
 * `~`, `new`, `typeof`, `else`, `do` and other such keywords, or the `)` of an `if (...)`, `for (...)`,
 * `with (...)` or loop `while (...)` header). Everything else, including every input it cannot read with
 * certainty, is "may be complete": the caller then parses exactly.
 *
 * @example
 * ```ts
 * const scanner = new InputScanner();
 * scanner.push("const point = {");
 * scanner.mayBeComplete; // false: the brace is open, no need to parse
 * scanner.push("  x: 1,");
 * scanner.push("};");
 * scanner.mayBeComplete; // true: parse it to know
 * scanner.reset(); // the next input
 * ```
 */
export class InputScanner {
  #mode: Mode = CODE;
  /** Open brackets, innermost last. */
  #stack: number[] = [];
  /** The quote character of the string being read (or continued onto the next line by a backslash). */
  #quote = 0;
  /** How a `/` reads after the last significant token; `regex` at the start. */
  #slash: Slash = "regex";
  /** The last significant token needs something after it. */
  #cannotEnd = false;
  /** The last significant token was `.` (1) or `?.` (2): a keyword after it is a property name. */
  #dot = 0;
  /** What a `(` right after the last significant token would open (a statement header after `if`, ...). */
  #pending: Pending = "none";
  /** A `do` keyword has been seen, so a `while (...)` may end a do-while statement. */
  #sawDo = false;
  /** No token since the last line break (what makes `-->` a comment and `/` at a line's start suspect). */
  #lineStart = true;
  /** Some text has been pushed (a hashbang is recognised only at the very start). */
  #started = false;
  /** Reading is no longer certain: the answer is "may be complete" until reset. */
  #unsure = false;

  /**
   * Feeds the next line of the input, without its line terminator: the scanner accounts for the line break
   * between two pushed lines itself. Only `line` is read, each character a bounded number of times.
   */
  push(line: string): void {
    if (this.#unsure) return;
    const n = line.length;
    let i = 0;
    this.#lineStart = true;
    if (!this.#started) {
      this.#started = true;
      if (codeAt(line, 0) === HASH && codeAt(line, 1) === BANG) i = lineCommentEnd(line, 2);
    }
    // A string continued by a backslash, then an empty line: cut off, like the string below.
    if (n === 0 && this.#mode === STRING) this.#giveUp();
    while (i < n) {
      switch (this.#mode) {
        case CODE:
          i = this.#code(line, i);
          break;
        case TEMPLATE:
          i = this.#template(line, i);
          break;
        case BLOCK_COMMENT:
          i = this.#blockComment(line, i);
          break;
        case STRING:
          i = this.#string(line, i);
          break;
      }
    }
  }

  /**
   * `false` when the text fed so far is certainly not a complete input, so that parsing it would be wasted
   * work; `true` when it may be complete and only the exact parser can tell.
   */
  get mayBeComplete(): boolean {
    if (this.#unsure) return true;
    if (this.#mode !== CODE || this.#stack.length > 0) return false;
    return !this.#cannotEnd;
  }

  /** Forgets everything fed so far, to start reading a new input. */
  reset(): void {
    this.#mode = CODE;
    this.#stack = [];
    this.#quote = 0;
    this.#slash = "regex";
    this.#cannotEnd = false;
    this.#dot = 0;
    this.#pending = "none";
    this.#sawDo = false;
    this.#lineStart = true;
    this.#started = false;
    this.#unsure = false;
  }

  /** Stops reading for good (until reset); returns an index past any line, which ends the current one. */
  #giveUp(): number {
    this.#unsure = true;
    this.#stack = [];
    return Number.POSITIVE_INFINITY;
  }

  /** Records a significant token. */
  #token(slash: Slash, cannotEnd: boolean, dot = 0): void {
    this.#slash = slash;
    this.#cannotEnd = cannotEnd;
    this.#dot = dot;
    this.#pending = "none";
    this.#lineStart = false;
  }

  /** Reads one token, space or comment of code starting at `start`; returns where the next one starts. */
  #code(line: string, start: number): number {
    const c = line.charCodeAt(start);
    const next = codeAt(line, start + 1);
    if (isSpace(c)) return start + 1;
    if (isLineTerminator(c)) {
      this.#lineStart = true;
      return start + 1;
    }
    if (isIdentifierStart(c) || (c === BACKSLASH && next === LOWER_U)) return this.#word(line, start);
    if (isDigit(c) || (c === DOT && isDigit(next))) return this.#number(line, start);
    switch (c) {
      case DOUBLE_QUOTE:
      case SINGLE_QUOTE:
        this.#token("division", false);
        this.#quote = c;
        this.#mode = STRING;
        return this.#string(line, start + 1);
      case BACKTICK:
        this.#token("regex", true);
        this.#mode = TEMPLATE;
        return start + 1;
      case SLASH:
        return this.#slashToken(line, start, next);
      case LPAREN:
        this.#stack.push(this.#parenKind());
        this.#token("regex", true);
        return start + 1;
      case LBRACKET:
        this.#stack.push(BRACKET);
        this.#token("regex", true);
        return start + 1;
      case LBRACE:
        this.#stack.push(BRACE);
        this.#token("regex", true);
        return start + 1;
      case RPAREN:
        return this.#closeParen(start + 1);
      case RBRACKET:
        if (this.#stack.pop() !== BRACKET) return this.#giveUp();
        this.#token("division", false);
        return start + 1;
      case RBRACE:
        return this.#closeBrace(start + 1);
      case HASH:
        // A private name, `#x`; anything else is an error.
        if (!isIdentifierStart(next)) return this.#giveUp();
        return this.#word(line, start + 1, true);
      case BANG:
        if (next !== EQUALS) {
          // Prefix `!x` needs an operand; TypeScript's postfix `x!` does not, and a `/` after it divides.
          const prefix = this.#slash === "regex";
          this.#token(prefix ? "regex" : "unsure", prefix);
          return start + 1;
        }
        break;
      case LESS:
        // `<!--` starts a comment in scripts but not in modules: no certainty either way.
        if (next === BANG && codeAt(line, start + 2) === MINUS && codeAt(line, start + 3) === MINUS) {
          return this.#giveUp();
        }
        break;
      case MINUS:
        // `-->` at the start of a line is a comment in scripts but not in modules.
        if (this.#lineStart && next === MINUS && codeAt(line, start + 2) === GREATER) return this.#giveUp();
        break;
      case QUESTION:
        // `a?.5:1` is `a ? .5 : 1`.
        if (next === DOT && isDigit(codeAt(line, start + 2))) {
          this.#token("regex", true);
          return start + 1;
        }
        break;
    }
    const candidates = PUNCTUATORS_BY_FIRST.get(c);
    if (candidates !== undefined) {
      for (const p of candidates) {
        if (!startsWithAt(line, start, p.text)) continue;
        this.#token(p.slash, p.cannotEnd, p.text === "." ? 1 : p.text === "?." ? 2 : 0);
        return start + p.text.length;
      }
    }
    // A stray backslash, a control character: not JavaScript as this scanner knows it.
    return this.#giveUp();
  }

  /** An identifier or keyword (or, with `privateName`, the part of `#name` after the `#`). */
  #word(line: string, start: number, privateName = false): number {
    const n = line.length;
    let j = start;
    let escaped = false;
    while (j < n) {
      const c = line.charCodeAt(j);
      if (isIdentifierPart(c)) {
        j++;
      } else if (c === BACKSLASH && codeAt(line, j + 1) === LOWER_U) {
        // `\u0061` or `\u{61}`: the braces belong to the name.
        escaped = true;
        j += 2;
        if (codeAt(line, j) === LBRACE) {
          while (j < n && line.charCodeAt(j) !== RBRACE) j++;
          j++;
        }
      } else {
        break;
      }
    }
    const dot = this.#dot;
    const pending = this.#pending;
    // An escaped or long word is never a keyword, nor is a private name.
    const word = escaped || privateName || j - start > LONGEST_KEYWORD ? "" : line.slice(start, j);
    if (word === "" || dot === 1 || (dot === 2 && !RESERVED.has(word))) {
      // A name, or a property name after `.`: `a.if(x)`, `a.return / 2`.
      this.#token("division", false);
      if (dot !== 0 && (word === "if" || word === "for" || word === "while" || word === "with")) {
        this.#pending = "keywordName";
      }
      return j;
    }
    if (dot === 2) {
      // `a?.return`: acorn's tokenizer reads what follows as if after the keyword.
      this.#token("unsure", false);
      if (word === "if" || word === "for" || word === "while" || word === "with") this.#pending = "keywordName";
      return j;
    }
    const slash: Slash = REGEX_AFTER.has(word) ? "regex" : UNSURE_AFTER.has(word) ? "unsure" : "division";
    this.#token(slash, CANNOT_END.has(word));
    if (word === "do") this.#sawDo = true;
    else if (word === "if" || word === "with") this.#pending = "header";
    else if (word === "for") this.#pending = "for";
    else if (word === "while") this.#pending = "while";
    else if (word === "await" && pending === "for") this.#pending = "forAwait";
    return j;
  }

  /** A numeric literal (digits, separators, fraction, exponent, radix prefixes, bigint suffix). */
  #number(line: string, start: number): number {
    const n = line.length;
    let j = start;
    const radix = codeAt(line, start + 1) | 0x20;
    if (line.charCodeAt(start) === ZERO && (radix === LOWER_X || radix === LOWER_O || radix === LOWER_B)) {
      j += 2;
    } else {
      while (j < n && (isDigit(line.charCodeAt(j)) || line.charCodeAt(j) === UNDERSCORE)) j++;
      if (codeAt(line, j) === DOT) {
        j++;
        while (j < n && (isDigit(line.charCodeAt(j)) || line.charCodeAt(j) === UNDERSCORE)) j++;
      }
      if ((codeAt(line, j) | 0x20) === LOWER_E) {
        j++;
        const sign = codeAt(line, j);
        if (sign === PLUS || sign === MINUS) j++;
      }
    }
    // The rest of the digits, a bigint's `n`, or letters glued on (an error the parser reports).
    while (j < n && isIdentifierPart(line.charCodeAt(j))) j++;
    this.#token("division", false);
    return j;
  }

  /** A `/`: a comment, a division, or a regular expression literal, as the previous token decides. */
  #slashToken(line: string, start: number, next: number): number {
    if (next === SLASH) return lineCommentEnd(line, start + 2);
    if (next === STAR) {
      this.#mode = BLOCK_COMMENT;
      return start + 2;
    }
    let slash = this.#slash;
    // A division opening a line may really be a regex after automatic semicolon insertion, which the
    // TypeScript parser applies after a type (`type T = string` / `/re/.test(s)`).
    if (slash === "division" && this.#lineStart) slash = "unsure";
    if (slash === "unsure") return this.#giveUp();
    if (slash === "division") {
      this.#token("regex", true);
      return next === EQUALS ? start + 2 : start + 1;
    }
    const n = line.length;
    let inClass = false;
    for (let j = start + 1; j < n; j++) {
      const c = line.charCodeAt(j);
      if (isLineTerminator(c)) break;
      if (c === BACKSLASH) {
        j++;
        if (j < n && isLineTerminator(line.charCodeAt(j))) break;
      } else if (c === LBRACKET) {
        inClass = true;
      } else if (c === RBRACKET) {
        inClass = false;
      } else if (c === SLASH && !inClass) {
        j++;
        while (j < n && isIdentifierPart(line.charCodeAt(j))) j++;
        this.#token("division", false);
        return j;
      }
    }
    // A regular expression cannot span lines: the input is an error for the parser to report.
    return this.#giveUp();
  }

  /** What the `(` about to be opened is, from the tokens before it. */
  #parenKind(): number {
    switch (this.#pending) {
      case "header":
      case "for":
        return HEADER_PAREN;
      case "while":
        return WHILE_PAREN;
      case "forAwait":
        return FOR_AWAIT_PAREN;
      case "keywordName":
        return KEYWORD_NAME_PAREN;
      case "none":
        return PAREN;
    }
  }

  /** A `)`; returns `next`, where reading goes on, unless it closes no parenthesis. */
  #closeParen(next: number): number {
    switch (this.#stack.pop()) {
      case PAREN:
        this.#token("division", false);
        return next;
      case HEADER_PAREN:
        this.#token("regex", true);
        return next;
      case WHILE_PAREN:
        this.#token("regex", !this.#sawDo);
        return next;
      case FOR_AWAIT_PAREN:
        this.#token("unsure", true);
        return next;
      case KEYWORD_NAME_PAREN:
        this.#token("unsure", false);
        return next;
      default:
        return this.#giveUp();
    }
  }

  /** A `}`; returns `next`, where reading goes on, unless it closes neither a brace nor a `${`. */
  #closeBrace(next: number): number {
    const top = this.#stack.pop();
    if (top === SUBSTITUTION) {
      this.#mode = TEMPLATE;
      this.#lineStart = false;
    } else if (top === BRACE) {
      // The end of a block (a `/` after it is a regex) or of an object literal (a division): no telling.
      this.#token("unsure", false);
    } else {
      return this.#giveUp();
    }
    return next;
  }

  /** The text of a template literal, up to its closing backquote, a `${`, or the end of the line. */
  #template(line: string, start: number): number {
    const n = line.length;
    for (let j = start; j < n; j++) {
      const c = line.charCodeAt(j);
      if (c === BACKSLASH) {
        j++; // at the end of the line, the escaped character is the line break
      } else if (c === BACKTICK) {
        this.#mode = CODE;
        this.#token("division", false);
        return j + 1;
      } else if (c === DOLLAR && codeAt(line, j + 1) === LBRACE) {
        this.#stack.push(SUBSTITUTION);
        this.#mode = CODE;
        this.#token("regex", true);
        return j + 2;
      }
    }
    return n;
  }

  #blockComment(line: string, start: number): number {
    const n = line.length;
    for (let j = start; j < n; j++) {
      const c = line.charCodeAt(j);
      if (c === STAR && codeAt(line, j + 1) === SLASH) {
        this.#mode = CODE;
        return j + 2;
      }
      if (isLineTerminator(c)) this.#lineStart = true;
    }
    return n;
  }

  /**
   * The rest of a single- or double-quoted string. A backslash ending the line continues it on the next;
   * a string otherwise cut off by the end of its line is a syntax error, not an open input: the scanner
   * gives up, so that the parser runs and reports it, and no later line is read as inside a string.
   */
  #string(line: string, start: number): number {
    const n = line.length;
    for (let j = start; j < n; j++) {
      const c = line.charCodeAt(j);
      if (c === this.#quote) {
        this.#mode = CODE;
        return j + 1;
      }
      if (c === BACKSLASH) {
        if (j + 1 === n || (j + 2 === n && line.charCodeAt(j + 1) === CR)) return n;
        j++;
      }
    }
    return this.#giveUp();
  }
}

/** `line.startsWith(text, at)`, reading the line only through `charCodeAt`. */
function startsWithAt(line: string, at: number, text: string): boolean {
  if (at + text.length > line.length) return false;
  for (let k = 0; k < text.length; k++) if (line.charCodeAt(at + k) !== text.charCodeAt(k)) return false;
  return true;
}
