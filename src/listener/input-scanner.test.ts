import { describe, test } from "node:test";
import assert from "node:assert/strict";
import * as acorn from "acorn";
import fc from "fast-check";
import { InputScanner } from "./input-scanner.js";

/** What the scanner says after being fed `text`, split at its line breaks as the listener splits it. */
function mayBeComplete(text: string): boolean {
  const scanner = new InputScanner();
  for (const line of text.split("\n")) scanner.push(line);
  return scanner.mayBeComplete;
}

/** Acorn with the options the listener parses with: is `text` a whole script? */
function parses(text: string): boolean {
  try {
    acorn.parse(text, { ecmaVersion: "latest", allowAwaitOutsideFunction: true });
    return true;
  } catch {
    return false;
  }
}

/** Asserts the scanner's answer for each input of a table; an input it calls incomplete must not parse. */
function expectAll(cases: readonly string[], expected: boolean): void {
  for (const text of cases) {
    assert.equal(mayBeComplete(text), expected, JSON.stringify(text));
    if (!expected) assert.equal(parses(text), false, `the table is wrong: acorn parses ${JSON.stringify(text)}`);
  }
}

/** Feeds `lines` one by one and asserts the answer after each. */
function expectProgress(lines: readonly string[], expected: readonly boolean[]): void {
  const scanner = new InputScanner();
  const answers = lines.map((line) => {
    scanner.push(line);
    return scanner.mayBeComplete;
  });
  assert.deepEqual(answers, expected, lines.join("\n"));
}

void describe("InputScanner: brackets", () => {
  void test("an open parenthesis, bracket or brace, on this line or an earlier one, means incomplete", () => {
    expectAll(["f(", "f(\n1,\n2", "[1,\n2", "{\n  a: 1,", "foo(bar[\n0", "x = { a: [ (", "(\n\n"], false);
    expectAll(["f(\n1,\n2\n)", "[1,\n2]", "{\n  a: 1,\n}", "foo(bar[\n0\n])", "x = { a: [ () ] }"], true);
  });

  void test("an object literal fed line by line is incomplete until its last brace", () => {
    expectProgress(
      ["const o = {", "  a: 1,", "  b: [", "    2,", "  ],", '  c: { d: "}" },', "  e: `}`,", "};"],
      [false, false, false, false, false, false, false, true],
    );
  });

  void test("a closing bracket that matches no opener is left to the parser", () => {
    expectAll(["}", ")", "f(]", "[)", "a }\nf(", "`${ ) }`"], true);
  });
});

void describe("InputScanner: template literals", () => {
  void test("an unterminated template literal is incomplete, across any number of lines", () => {
    expectAll(["`abc", "x = `abc\ndef", "`a\\`", "`a\n\n\n"], false);
    expectAll(["`abc\ndef`", "`a\\`b`", "x = `line\n${\n  y\n}\nend`"], true);
  });

  void test("a ${ substitution is open until its own closing brace, whatever it contains", () => {
    expectAll(["`a ${b", "`a ${ {x: 1}", "`a ${ `b ${ c", "`a ${ `b ${ c }`", '`a ${ "}"', "`${ f(`}`"], false);
    expectAll(["`a ${ {x: 1} }`", "`a ${ `b ${ c } d` }`", '`a ${ "}" }`', "`${ f(`}`) }`", "`${`${`${1}`}`}`"], true);
  });

  void test("brackets, quotes, comment markers and an escaped ${ in template text are only text", () => {
    expectAll(["`(`", "`$(`", "`\\${ (`", "`{[\"'`", "`// (`", "`/* (`", "x = `$`"], true);
  });
});

void describe("InputScanner: comments", () => {
  void test("an unterminated block comment is incomplete, across lines", () => {
    expectAll(["/* (", "x /*\n*", "a /* x\n*/ +", "/*/"], false);
    expectAll(["/* (\n[ `\n*/", "f( /* ) */ )", "/**/", "x /* a *\n/ b */"], true);
  });

  void test("a bracket inside a block comment is not counted", () => {
    expectAll(["f( /* ) */"], false);
    expectAll(["f() /* ( */"], true);
  });

  void test("a line comment hides the rest of its line, and only of its line", () => {
    expectAll(["f( // )", "a + // b", "f() // (\ng("], false);
    expectAll(["f() // (", "x = 1 // `", "f( // (\n)", "// {"], true);
  });

  void test("a line comment ends at any JavaScript line terminator, not only at a line feed", () => {
    expectAll(["f( // c\u2028)", "f( // c\r)"], true);
    expectAll(["f() // c\u2028("], false);
  });

  void test("a hashbang on the first line is a comment", () => {
    expectAll(["#!/usr/bin/env node (\n1"], true);
    expectAll(["#!/usr/bin/env node\nf("], false);
  });
});

void describe("InputScanner: strings", () => {
  void test("brackets, backquotes and comment markers inside strings are not counted", () => {
    expectAll(['x = "(" + \'[\' + "`" + "/*" + "//"', 'f("(")', "f('\\')')", 'x = "a\\"b("'], true);
    expectAll(['f("(", ")"', "x = 'it\\'s' + ("], false);
  });

  void test("a backslash at the end of a line continues the string, so the input is incomplete", () => {
    expectAll(['x = "abc\\', "x = 'a\\\nb\\"], false);
    expectAll(['x = "abc\\\ndef"', "'\\\\'", 'x = "abc\\\\"'], true);
  });

  void test("a string cut off by the end of its line is left to the parser, and does not poison later lines", () => {
    // The parser reports the error; the next line is not read as if inside a string.
    expectAll(['x = "abc', 'x = "abc\nf(', "x = '\n'", 'x = "abc\\\n\n"', 'x = "'], true);
  });

  void test("U+2028 and U+2029 may appear in a string", () => {
    expectAll(["x = '\u2028'", 'x = "\u2029(" + 1'], true);
    expectAll(["f('\u2028'"], false);
  });
});

void describe("InputScanner: regular expressions and division", () => {
  void test("a regular expression may contain /, (, quotes and [/] without opening anything", () => {
    expectAll(
      [
        "x = /\\//",
        "x = /[/]/.test(s)",
        "x = /\\(/.test(s)",
        'x = /"/.test(s)',
        "x = /'/g",
        "x = /`/",
        "x = /[(]/",
        "x = /[\\]/(]/",
        "if (/[/(]/.test(s)) {\n}",
        "f(/\\)/)",
        's.replace(/\\s+/g, " ")',
        "typeof /re/",
        "x = a ? /(/ : /)/",
        "[/[/]/, /\\[/]",
      ],
      true,
    );
    expectAll(["if (/[/(]/.test(s)) {", "f(/\\)/", "x = /(/.test(s) + (", "f(/{/, /\\(/, `"], false);
  });

  void test("after a value a / divides, and a trailing division needs its right operand", () => {
    expectAll(
      ["a / b", "(a) / (b)", "x[0] / 2", "1 / 2 / 3", "a /= 2", 'f(a / 2, "/")', "`a` / 2", "a.b / c(d)"],
      true,
    );
    expectAll(["a / b /", "a /\n", "a /=", "(a) /", 'f(a / 2, "/"', "x = a / (b / c"], false);
  });

  void test("after an operator, `(`, `,`, `=`, `:`, `[`, `{`, `;`, or a keyword such as return, a / starts a regex", () => {
    expectAll(
      ["x = a + /(/.source", "f(/(/, /(/)", "x = [/(/]", "x = { a: /(/ }", "x = !/(/.test(s)", "x = 1; /(/"],
      true,
    );
    expectAll(["x = typeof /(/", "x = a in /(/", "x = void /\\(/"], true);
  });

  void test("the ) of an if, for or while header is followed by a regex, not a division", () => {
    expectAll(["if (x) /\\(/.test(y)", "while (x) /\\[/.exec(y)", "for (;;) /[(]/.test(y)"], true);
  });

  void test("a / whose reading is uncertain makes the scanner defer to the parser", () => {
    // After `}` (block or object literal?), at the start of a line after a value (ASI after a TypeScript
    // type?), after TypeScript's `x!`, `yield`, `await` or a generic's `>`: the answer is "maybe complete".
    expectAll(
      ["{}\n/(/.test(s)", "type T = string\n/\\(abc/.test(y)", "x = a\n  / (b", "y = x! / (", "x = a > /(/"],
      true,
    );
    expectAll(["x = a?.return / (", "x = yield / (", "x = await / (", "x = a++ / ("], true);
  });

  void test("an unterminated regular expression is left to the parser", () => {
    expectAll(["x = /abc", "x = /[/]\n(", "x = /\\\n/"], true);
  });
});

void describe("InputScanner: the last token", () => {
  void test("a trailing binary, assignment or other operator needing an operand means incomplete", () => {
    const operators = [
      "+",
      "-",
      "*",
      "/",
      "%",
      "**",
      "=",
      "+=",
      "-=",
      "*=",
      "/=",
      "%=",
      "**=",
      "<<=",
      ">>=",
      ">>>=",
      "&=",
      "|=",
      "^=",
      "&&=",
      "||=",
      "??=",
      "&&",
      "||",
      "??",
      "?.",
      ".",
      ",",
      "?",
      ":",
      "=>",
      "<",
      "<=",
      ">=",
      "==",
      "===",
      "!=",
      "!==",
      "&",
      "|",
      "^",
      "<<",
      "~",
      "...",
      "in",
      "instanceof",
    ];
    expectAll(
      operators.map((op) => `a ${op}`),
      false,
    );
    expectAll(
      operators.map((op) => `a ${op}\n  // a comment`),
      false,
    );
    expectAll(["a ? b :", "x =>", "!", "x = !", "new", "typeof", "delete", "a =\n\n"], false);
  });

  void test("keywords that need something after them mean incomplete", () => {
    expectAll(
      ["if (x) {} else", "do", "x = new", "throw", "class A extends", "switch", "try {} catch", "function"],
      false,
    );
    expectAll(["case", "if (x) {} else if (y)", "try {} finally"], false);
  });

  void test("tokens that can end a statement leave the input possibly complete", () => {
    expectAll(
      ["a++", "a--", "return", "break", "this", "yield", "await x", "x", "1.", ".5", "1e3", "0x1F", "10n"],
      true,
    );
    expectAll(["a > b", "a >> b", "void 0", "null", "'s'", "`t`", "/r/g", "a.b", "f()", "a[0]", "{}", "x;"], true);
  });

  void test("a keyword after a dot is a property name, and can end the input", () => {
    expectAll(["a.if", "a.else", "a.do", "x.new", "a.in", "a.\n  typeof", "a.if(x)", "a?.while(x)", "a.for(x)"], true);
    expectAll(["x = { do: 1 }", "x = { if: 1, else: 2 }"], true);
  });

  void test("the ) of an if, for, with or loop-while header needs a statement after it", () => {
    expectAll(
      ["if (x)", "if (x) // c", "for (;;)", "for (const k in o)", "for await (const x of xs)", "with (o)"],
      false,
    );
    expectAll(["while (x)", "while (f(\n))", "if (a) {} else if (b)"], false);
    expectAll(["if (x)\n  y()", "if (x) {}", "for (;;) {}", "while (x) x--", "with (o) f()"], true);
  });

  void test("the while (...) of a do-while statement may end the input", () => {
    expectAll(["do x(); while (y)", "do {\n} while (y)", "do\n  f()\nwhile (g())"], true);
  });
});

void describe("InputScanner: TypeScript", () => {
  void test("generics, type annotations and assertions are not taken for brackets or trailing operators", () => {
    expectAll(
      [
        "let a: Array<number> = [1]",
        "let a: Array<number>",
        "let m: Map<string, Array<number>>",
        "let m: Map<string, Map<string, Array<number>>>",
        "const f = <T,>(x: T): T => x",
        "function id<T>(x: T): T { return x }",
        "let f: () => void",
        "const y = x!",
        "const z = a!.b!",
        "type A = {\n  a: string;\n}",
        "interface I {\n  m(): void;\n  n?: number;\n}",
        "const c = [1, 2] as const",
        "let u: string | undefined",
        "class A<T> implements B<T> {\n  #x?: T;\n}",
        "enum E { A = 1 << 2 }",
        "f<string>(x)",
        "let x = a as unknown as Foo<Bar>",
        "type U =\n  | A\n  | B",
        "let t: [a: string, b?: number]",
        "abstract class S { abstract area(): number }",
      ],
      true,
    );
  });

  void test("an unfinished type is incomplete", () => {
    expectAll(
      ["let a: Array<", "type A =", "type A = B |", "let x:", "function f(a: number,", "let a: Array<{"],
      false,
    );
    expectAll(["type F = (a: string) =>", "interface I {", "let o: { a: number; b:"], false);
  });
});

void describe("InputScanner: everything else", () => {
  void test("reset starts a new input", () => {
    const scanner = new InputScanner();
    scanner.push("f(");
    assert.equal(scanner.mayBeComplete, false);
    scanner.reset();
    scanner.push("1");
    assert.equal(scanner.mayBeComplete, true);
    scanner.push("}"); // gives up on this input...
    scanner.reset();
    scanner.push("[");
    assert.equal(scanner.mayBeComplete, false); // ...but not on the next
    scanner.reset();
    scanner.push("#!/usr/bin/env node");
    assert.equal(scanner.mayBeComplete, true, "a hashbang is recognised again after a reset");
  });

  void test("nothing at all, or only spaces and comments, may be complete", () => {
    assert.equal(new InputScanner().mayBeComplete, true);
    expectAll(["", "   ", "\t\n  ", "// c", "/* c */", "\u00a0\ufeff"], true);
  });

  void test("Unicode identifiers, numeric separators and identifier escapes do not confuse it", () => {
    expectAll(
      ["const élan = 1", "let a = 1_000_000", "x = \\u0061bc", "x = \\u{62}", "const 𝒳 = 2", "a.\\u0069f"],
      true,
    );
    expectAll(["const 𝒳 = (", "x = \\u{62} +", "y = 1_0 *"], false);
  });

  void test("HTML-like comments, stray backslashes and control characters are left to the parser", () => {
    expectAll(["x = 1 <!-- (", "x\n--> (", "a \\ (", "a \u0001 ("], true);
  });
});

// ---------------------------------------------------------------------------------------------------------
// Property tests: random complete programs, split into lines at random places where a line break is legal.

/** Marks a place between two tokens where a line break (or a comment) may go. */
const GAP = "\u0001";

/** Joins tokens with gaps between them. */
function gapped(...parts: string[]): string {
  return parts.join(GAP);
}

/** What a gap may become: spaces, line breaks, and comments with brackets, quotes and markers in them. */
const GAP_FILLS = [" ", " ", "\n", "\n  ", ' /* ( ` " [ */ ', " /* two\n lines { */ ", ' // line ( { ` "\n'];

/** Replaces the gaps of `text`, cycling through `choices`. */
function fillGaps(text: string, choices: readonly number[]): string {
  let k = 0;
  return text.replace(/\u0001/g, () => {
    return GAP_FILLS[(choices[k++ % choices.length] ?? 0) % GAP_FILLS.length] ?? " ";
  });
}

const identifier = fc.constantFrom("a", "b", "foo", "_x", "$y", "élan", "of", "async", "get");
const numberLiteral = fc.constantFrom("0", "1", "42", "3.14", "1e3", "2e-3", "0x1F", "1_000", ".5", "10n", "5.");
const propertyName = fc.constantFrom("length", "x", "if", "else", "do", "return", "new", "while", "for", "in", "of");

const BINARY_OPERATORS = [
  "+",
  "-",
  "*",
  "/",
  "%",
  "**",
  "==",
  "===",
  "!=",
  "!==",
  "<",
  ">",
  "<=",
  ">=",
  "&&",
  "||",
  "??",
  "&",
  "|",
  "^",
  "<<",
  ">>",
  ">>>",
  "in",
  "instanceof",
  ",",
];

const stringLiteral = fc
  .tuple(
    fc.constantFrom('"', "'"),
    fc.array(
      fc.constantFrom(
        "a",
        " ",
        "(",
        ")",
        "{",
        "}",
        "[",
        "`",
        "/",
        "*",
        "${",
        "\\n",
        "\\\\",
        "\\'",
        '\\"',
        "'",
        '"',
        "\\\n",
        "//",
        "/*",
      ),
      { maxLength: 8 },
    ),
  )
  .map(([quote, parts]) => quote + parts.filter((p) => p !== quote).join("") + quote);

const regexLiteral = fc
  .tuple(
    fc.array(
      fc.constantFrom("a", "\\/", "[/]", "[(]", "\\(", '"', "'", "`", "x*", "[\\]/]", "(?:ab)", "\\d+", "a{2}", "[{]"),
      { minLength: 1, maxLength: 5 },
    ),
    fc.constantFrom("", "g", "gi", "u"),
  )
  .map(([parts, flags]) => `/${parts.join("")}/${flags}`);

// A type, not an interface: fc.letrec wants a record type.
type Grammar = {
  expr: string;
  template: string;
  statement: string;
  block: string;
  statements: string;
};

const grammar = fc.letrec<Grammar>((tie) => {
  const expr = tie("expr");
  const paren = expr.map((e) => gapped("(", e, ")"));
  const args = fc.array(expr, { maxLength: 3 }).map((list) => list.join(`,${GAP}`));
  const params = fc.constantFrom("", "a", "a, b", "a = 1, ...rest");
  return {
    expr: fc.oneof(
      { depthSize: "small", maxDepth: 3, depthIdentifier: "expr" },
      identifier,
      numberLiteral,
      stringLiteral,
      regexLiteral,
      tie("template"),
      identifier.map((name) => `${name}++`),
      // objects, with keywords as keys and methods
      fc
        .array(
          fc.oneof(
            fc
              .tuple(fc.oneof(identifier, propertyName, stringLiteral, numberLiteral), expr)
              .map(([k, v]) => gapped(`${k}:`, v)),
            fc.tuple(fc.oneof(identifier, propertyName), tie("block")).map(([k, body]) => gapped(`${k}()`, body)),
            fc.tuple(expr, expr).map(([k, v]) => gapped("[", k, "]:", v)),
            identifier,
            expr.map((e) => gapped("...", e)),
          ),
          { maxLength: 3 },
        )
        .map((entries) => gapped("{", entries.join(`,${GAP}`), "}")),
      args.map((list) => gapped("[", list, "]")),
      fc.tuple(identifier, fc.constantFrom("(", "?.("), args).map(([f, open, list]) => gapped(f + open, list, ")")),
      fc
        .tuple(paren, fc.constantFrom(...BINARY_OPERATORS), paren)
        // A comma expression is parenthesized, so that it can go wherever an expression can.
        .map(([l, op, r]) => (op === "," ? gapped("(", l, op, r, ")") : gapped(l, op, r))),
      fc.tuple(fc.constantFrom("!", "~", "-", "+", "typeof", "void"), paren).map(([op, e]) => gapped(op, e)),
      fc.tuple(paren, paren, paren).map(([c, t, f]) => gapped(c, "?", t, ":", f)),
      fc.tuple(params, fc.oneof(paren, tie("block"))).map(([p, body]) => gapped("(", `(${p}) =>`, body, ")")),
      fc.tuple(identifier, paren).map(([p, body]) => gapped("(", `${p} =>`, body, ")")),
      fc
        .tuple(paren, fc.constantFrom(".", "?."), propertyName, fc.option(args))
        .map(([o, dot, p, call]) => gapped(o, dot, p) + (call === null ? "" : gapped("(", call, ")"))),
      fc.tuple(paren, expr).map(([o, k]) => gapped(o, "[", k, "]")),
      fc.tuple(identifier, args).map(([c, list]) => gapped("new", c, "(", list, ")")),
      fc.tuple(params, tie("block")).map(([p, body]) => gapped("(function", `(${p})`, body, ")")),
      fc.tuple(identifier, tie("template")).map(([tag, t]) => gapped(tag, t)),
      // a class, with a private field, a method named `if`, a getter and a method
      fc
        .tuple(expr, expr)
        .map(([field, value]) =>
          gapped(
            ...["(class", "{", "#p = (", field, ");", "static if() {", "return this.#p", "}"],
            ...["get y()", "{", "return /[/(]/;", "}", "m() {", `return ${value}`, "}", "}", ")"],
          ),
        ),
    ),
    template: fc
      .array(
        fc.oneof(
          fc.constantFrom("a", " ", "\n", "$a", "{", "}", "\\`", "\\${", "'", '"', "/", "//", "/*", "(", ")", "\\\\"),
          expr.map((e) => gapped("${", e, "}")),
        ),
        { maxLength: 5 },
      )
      .map((parts) => `\`${parts.join("")}\``),
    statement: fc.oneof(
      { depthSize: "small", maxDepth: 2, depthIdentifier: "statement" },
      expr.map((e) => `${/^[{]/.test(e) ? `(${e})` : e};`),
      fc.tuple(fc.constantFrom("v1", "v2"), expr).map(([v, e]) => gapped("var", v, "=", e) + ";"),
      fc.constant(";"),
      fc.tuple(regexLiteral, expr).map(([r, e]) => gapped(`${r}.test(`, e, ");")),
      tie("block"),
      fc
        .tuple(
          expr,
          fc.oneof(
            tie("block"),
            expr.map((e) => gapped("(", e, ");")),
          ),
          fc.option(tie("statement")),
        )
        .map(([c, then, otherwise]) =>
          otherwise === null ? gapped("if", "(", c, ")", then) : gapped("if", "(", c, ")", then, "else", otherwise),
        ),
      tie("block").map((body) => gapped("for", "(var i = 0;", "i < 3;", "i++)", body)),
      fc
        .tuple(fc.constantFrom("in", "of"), paren, tie("block"))
        .map(([kind, e, body]) => gapped("for", `(var k ${kind}`, e, ")", body)),
      fc.tuple(expr, tie("block")).map(([c, body]) => gapped("while", "(", c, ")", body)),
      fc
        .tuple(tie("block"), expr, fc.boolean())
        .map(([body, c, semicolon]) => gapped("do", body, "while", "(", c, ")") + (semicolon ? ";" : "")),
      fc
        .tuple(expr, expr, tie("statements"))
        .map(([d, c, body]) => gapped("switch", "(", d, ")", "{", "case", c, ":", body, "break;", "default:", "}")),
      fc
        .tuple(tie("block"), tie("block"), fc.boolean())
        .map(([body, handler, binding]) =>
          gapped("try", body, binding ? "catch (err)" : "catch", handler, "finally", "{}"),
        ),
      expr.map((e) => `throw ${gapped("(", e, ")")};`),
    ),
    block: tie("statements").map((body) => gapped("{", body, "}")),
    statements: fc.array(tie("statement"), { maxLength: 3 }).map((list) => list.join(GAP)),
  };
});

/** A complete program: statements (function declarations only at top level), maybe a last expression without `;`. */
const program = fc
  .tuple(
    fc.array(
      fc.oneof(
        grammar.statement,
        fc
          .tuple(fc.constantFrom("fa", "fb"), fc.constantFrom("", "a", "a, b"), grammar.statements, grammar.expr)
          .map(([name, p, body, result]) =>
            gapped("function", name, `(${p})`, "{", body, `return ${result}`, ";", "}"),
          ),
      ),
      { maxLength: 4 },
    ),
    fc.option(grammar.expr.filter((e) => !e.startsWith("{"))),
  )
  .map(([statements, last]) => gapped(GAP, ...statements, ...(last === null ? [] : [last]), GAP));

/** A program with its gaps filled in. */
const filledProgram = fc
  .tuple(program, fc.array(fc.nat({ max: GAP_FILLS.length - 1 }), { minLength: 1, maxLength: 40 }))
  .map(([text, choices]) => fillGaps(text, choices));

void describe("InputScanner: properties", () => {
  void test("the generator makes complete programs (else the properties below would prove nothing)", () => {
    fc.assert(
      fc.property(filledProgram, (text) => {
        assert.ok(parses(text), text);
      }),
      { numRuns: 300 },
    );
  });

  void test("a complete program, split at any legal line breaks, is never reported incomplete", () => {
    let readToTheEnd = 0;
    fc.assert(
      fc.property(filledProgram, (text) => {
        const scanner = new InputScanner();
        for (const line of text.split("\n")) scanner.push(line);
        const complete = scanner.mayBeComplete;
        assert.equal(complete, true, text);
        // Had it given up on the program (and said "maybe" to anything), a `(` more would not make it say no.
        scanner.push("(");
        if (!scanner.mayBeComplete) readToTheEnd++;
      }),
      { numRuns: 1000 },
    );
    // Soundness by giving up on everything would be worthless: most programs must be read to their end.
    assert.ok(readToTheEnd > 600, `only ${readToTheEnd} of 1000 programs were read to their end`);
  });

  void test("whenever the scanner says incomplete for a prefix of a program, acorn fails to parse that prefix", () => {
    let checked = 0;
    fc.assert(
      fc.property(filledProgram, fc.array(fc.nat(), { minLength: 1, maxLength: 12 }), (text, picks) => {
        // Prefixes ending at a line break, read incrementally as the listener reads them...
        const lines = text.split("\n");
        const scanner = new InputScanner();
        const incomplete: string[] = [];
        lines.forEach((line, index) => {
          scanner.push(line);
          if (!scanner.mayBeComplete) incomplete.push(lines.slice(0, index + 1).join("\n"));
        });
        // ...and prefixes cut anywhere, mid-token included.
        for (const pick of picks) {
          const prefix = text.slice(0, pick % (text.length + 1));
          if (!mayBeComplete(prefix)) incomplete.push(prefix);
        }
        // Parsing every incomplete prefix would be quadratic: a sample of them is parsed.
        for (const pick of picks) {
          const prefix = incomplete[pick % Math.max(1, incomplete.length)];
          if (prefix === undefined) continue;
          checked++;
          assert.equal(parses(prefix), false, `said incomplete, but acorn parses:\n${prefix}`);
        }
      }),
      { numRuns: 400 },
    );
    // The scanner is of use only if it does say "incomplete" for prefixes.
    assert.ok(checked > 1000, `only ${checked} prefixes were found incomplete`);
  });
});

// ---------------------------------------------------------------------------------------------------------
// Linearity, measured as work done rather than time: every read the scanner makes of a line is counted.

/**
 * A stand-in for a line that counts every character read from it. The scanner reads its argument only
 * through `length`, `charCodeAt` and `slice`, so this is enough for it (anything else would throw); and
 * since all stand-ins share one counter, a scanner that kept earlier lines and read them again would be
 * caught as well.
 */
function countingLine(text: string, reads: { count: number }): string {
  const standIn = {
    length: text.length,
    charCodeAt(index: number): number {
      reads.count++;
      return text.charCodeAt(index);
    },
    slice(start?: number, end?: number): string {
      const part = text.slice(start, end);
      reads.count += part.length;
      return part;
    },
  };
  return standIn as unknown as string;
}

/** Feeds every line through a counting stand-in; returns the reads each push made and the answer after it. */
function countReads(lines: readonly string[]): { reads: number[]; answers: boolean[] } {
  const scanner = new InputScanner();
  const counter = { count: 0 };
  const reads: number[] = [];
  const answers: boolean[] = [];
  for (const line of lines) {
    const before = counter.count;
    scanner.push(countingLine(line, counter));
    reads.push(counter.count - before);
    answers.push(scanner.mayBeComplete);
  }
  return { reads, answers };
}

void describe("InputScanner: linear work", () => {
  const LINES = 20_000;
  const row = (i: number): string => String(i).padStart(5, "0");

  void test("a 20,000-line object literal costs the same reads per line at its end as at its start", () => {
    const body = Array.from({ length: LINES }, (_, i) => `  key${row(i)}: ${i % 10}, // entry ${row(i)}`);
    const { reads, answers } = countReads(["const big = {", ...body, "};"]);
    const perLine = reads.slice(1, -1);
    assert.ok(
      perLine.every((n) => n === perLine[0]),
      "every body line costs the same",
    );
    assert.ok((perLine[0] ?? Infinity) <= 4 * (body[0]?.length ?? 0), `reads per line: ${perLine[0]}`);
    assert.deepEqual(answers.slice(0, -1), Array<boolean>(LINES + 1).fill(false), "incomplete until the end");
    assert.equal(answers.at(-1), true);
  });

  void test("a 20,000-line template literal costs the same reads per line at its end as at its start", () => {
    const body = Array.from({ length: LINES }, (_, i) => `row ${row(i)}: \${f(${i % 10}, "}")} and \\\` { ( [`);
    const { reads, answers } = countReads(["const text = `", ...body, "`;"]);
    const perLine = reads.slice(1, -1);
    assert.ok(
      perLine.every((n) => n === perLine[0]),
      "every body line costs the same",
    );
    assert.ok((perLine[0] ?? Infinity) <= 4 * (body[0]?.length ?? 0), `reads per line: ${perLine[0]}`);
    assert.deepEqual(answers.slice(0, -1), Array<boolean>(LINES + 1).fill(false), "incomplete until the end");
    assert.equal(answers.at(-1), true);
  });
});
