import assert from "node:assert/strict";
import { describe, test } from "node:test";
import util from "node:util";
import fc from "fast-check";
import { Evaluator, type EvalOutcome } from "./evaluator.js";
import { readSimpleInput } from "./simple-input.js";

void describe("readSimpleInput", () => {
  void test("reads expressions and declarations, annotations stripped, as rewrite would", () => {
    assert.deepEqual(readSimpleInput("1 + 2"), {
      declared: [],
      statements: "",
      bound: "",
      value: "1 + 2",
      awaits: false,
    });
    assert.deepEqual(readSimpleInput("const x5: number = 5; x5 * 2"), {
      declared: ["x5"],
      statements: '(x5 = 5);__confab__.seal(["x5"]);',
      bound: '__confab__.const("x5", 5);',
      value: "x5 * 2",
      awaits: false,
    });
    assert.deepEqual(readSimpleInput("let a = f(1, 2), b: Map<string, number[]> = new Map(); var c; let d"), {
      declared: ["a", "b", "c", "d"],
      statements: "(a = f(1, 2));(b = new Map());(d = void 0);",
      bound:
        '__confab__.let("a", f(1, 2));__confab__.let("b", new Map());__confab__.var("c");__confab__.let("d", void 0);',
      value: undefined,
      awaits: false,
    });
    assert.deepEqual(readSimpleInput("log(\"a, b\", '('); x = [1, 2];"), {
      declared: [],
      statements: "log(\"a, b\", '(');",
      bound: "log(\"a, b\", '(');",
      value: "x = [1, 2]",
      awaits: false,
    });
    // Where the order of creating and assigning shows, only rewrite's order is offered.
    for (const source of ["a; let a = 1", "let b = b + 1", "const c = 1, d = c = 2", "o.e; var e = 1"]) {
      assert.equal(readSimpleInput(source)?.bound, undefined, source);
    }
    assert.equal(readSimpleInput("const n = await db.count(); n")?.awaits, true);
    const types = [
      "string | null",
      "Foo.Bar<T>[]",
      "'a' | 'b'",
      "-1 | 2.5",
      "typeof x",
      "A & B",
      "| A | B",
      "Array<Array<number>>",
    ];
    for (const type of types) {
      assert.deepEqual(readSimpleInput(`let v: ${type} = 1`)?.statements, "(v = 1);", type);
    }
  });

  void test("declines whatever it is not sure of, so that the exact route decides", () => {
    const declined = [
      "{ a: 1 }", // braces: objects, blocks
      "a ? b : c", // a `:` outside an annotation
      "x / 2", // a slash: division or regular expression
      "`t`",
      "f(() => 1)",
      "function f() {}",
      "while (x) x--", // a statement, with a loop no time check would see
      "if (x) y",
      "export default 1",
      "1;;2",
      "1\n+ 2", // several lines: automatic semicolons
      "f(",
      "a)",
      "'open",
      "x as number",
      "f<T>(x)",
      "const c", // a const without a value
      "let a; let a", // declared twice
      "let let = 1",
      "const x: (A) = 1",
      "const x: { a: 1 } = 1",
      "const x: keyof T = 1",
      "const t: [number] = [1]",
      "let x!: number",
      "const café = 1",
      "eval('1')",
      "'a\\'b'", // a backslash
      "#x in o",
    ];
    for (const source of declined) assert.equal(readSimpleInput(source), undefined, source);
  });
});

/** What an outcome shows, for comparing two routes: the value as printed, or the error's kind and message. */
function shown(outcome: EvalOutcome | "incomplete"): string {
  if (outcome === "incomplete") return "incomplete";
  if (outcome.ok) return `value ${util.inspect(outcome.value)}`;
  const error = outcome.error as Error;
  return `error ${error.name}`;
}

/** The listener's call, insisting that the answer came at once, without a promise. */
function atOnce(ev: Evaluator, source: string): EvalOutcome | "incomplete" {
  const answer = ev.evaluateIfComplete(source);
  assert.ok(!(answer instanceof Promise), `${JSON.stringify(source)} is answered at once`);
  return answer;
}

void describe("Evaluator: simple inputs", () => {
  void test("answer as the exact route does, input after input (property)", async () => {
    // Inputs built from the grammar readSimpleInput reads, over a few names so that they meet
    // again: each sequence runs in one evaluator line by line (the simple route, as the listener
    // sends it) and in another with a line break added (which takes the exact route).
    const name = fc.constantFrom("a", "b", "c");
    const operand = fc.constantFrom("1", "'s,t'", "[1, 2]", "a", "b", "c", "undefined", "null", "(1, 2)", "c.length");
    const expression = fc.oneof(
      operand,
      fc.tuple(operand, fc.constantFrom(" + ", " * ", " === ", " ?? ", " && "), operand).map((p) => p.join("")),
      fc.tuple(name, operand).map(([n, o]) => `${n} = ${o}`),
      operand.map((o) => `typeof ${o}`),
    );
    const type = fc.constantFrom("", ": number", ": string | null", ": Array<number>", ": unknown[]");
    const declarator = fc.tuple(name, type, fc.option(expression, { nil: undefined }));
    const declaration = fc
      .tuple(fc.constantFrom("const", "let", "var"), fc.array(declarator, { minLength: 1, maxLength: 2 }))
      .map(
        ([kind, list]) =>
          `${kind} ${list.map(([n, t, e]) => `${n}${t}${e === undefined ? "" : ` = ${e}`}`).join(", ")}`,
      );
    const line = fc
      .array(fc.oneof(declaration, expression), { minLength: 1, maxLength: 3 })
      .chain((parts) => fc.constantFrom(parts.join("; "), `${parts.join("; ")};`));
    await fc.assert(
      fc.asyncProperty(fc.array(line, { minLength: 1, maxLength: 5 }), async (lines) => {
        // Sloppy code assigning an undeclared name makes a global: each run starts without them.
        const global = globalThis as Record<string, unknown>;
        const run = async (input: (ev: Evaluator, source: string) => Promise<string>): Promise<string[]> => {
          const ev = new Evaluator();
          const seen: string[] = [];
          try {
            // Then what each name holds, and whether it is a constant.
            const probes = ["[typeof a, typeof b, typeof c]", "a", "b", "c", "a = 9", "b = 9", "c = 9"];
            for (const source of [...lines, ...probes]) seen.push(await input(ev, source));
          } finally {
            for (const name of ["a", "b", "c"]) Reflect.deleteProperty(global, name);
          }
          return seen;
        };
        const viaSimple = await run(async (ev, source) =>
          // Declined (`const a` without a value): the exact route, as in the other evaluator.
          shown(
            await (readSimpleInput(source) === undefined ? ev.evaluate(`${source}\n`) : ev.evaluateIfComplete(source)),
          ),
        );
        const viaExact = await run(async (ev, source) => shown(await ev.evaluate(`${source}\n`)));
        assert.deepEqual(viaSimple, viaExact, JSON.stringify(lines));
      }),
      { numRuns: 300 },
    );
  });

  void test("an error thrown while running is not run again; a line V8 refuses takes the exact route", async () => {
    const ev = new Evaluator();
    assert.equal(shown(atOnce(ev, "let count = 0")), "value undefined");
    const thrown = atOnce(ev, 'count += 1; JSON.parse("x")');
    assert.equal(shown(thrown), "error SyntaxError");
    assert.equal(shown(atOnce(ev, "count")), "value 1");
    const limit = Error.stackTraceLimit;
    Error.stackTraceLimit = 0;
    try {
      assert.equal(shown(atOnce(ev, 'count += 1; JSON.parse("x")')), "error SyntaxError");
    } finally {
      Error.stackTraceLimit = limit;
    }
    assert.equal(shown(atOnce(ev, "count")), "value 2", "run once, even with no stack to tell by");
    // A declaration whose value throws leaves its name as rewrite's order does: there, unassigned.
    assert.equal(shown(atOnce(ev, "const q = 1, r = nowhere; 1")), "error ReferenceError");
    assert.equal(shown(atOnce(ev, "const s = nowhere")), "error ReferenceError");
    assert.equal(shown(atOnce(ev, "[q, r, s, q = 2, s = 3]")), "value [ 1, undefined, undefined, 2, 3 ]");
    assert.equal(atOnce(ev, "1 +"), "incomplete");
    assert.equal(shown(await ev.evaluateIfComplete(42 as unknown as string)), "error TypeError", "not a string");
    const refused = atOnce(ev, "1 +* 2");
    assert.equal(shown(refused), "error SyntaxError");
    assert.match(ev.format(refused as EvalOutcome), /^SyntaxError: Unexpected token/);
  });

  void test("stack frames and `_` are those of the exact route", async () => {
    const ev = new Evaluator();
    const outcome = atOnce(ev, "null.x");
    assert.match(
      ev.format(outcome as EvalOutcome),
      /^TypeError: Cannot read properties of null \(reading 'x'\)\n {4}at REPL\d+:1:6$/,
    );
    assert.equal(shown(atOnce(ev, "6 * 7")), "value 42");
    assert.equal(shown(atOnce(ev, "_")), "value 42");
    const promised = await ev.evaluateIfComplete("Promise.resolve(5)");
    assert.ok(
      promised !== "incomplete" && promised.ok && promised.value instanceof Promise,
      "a promise is shown, not awaited",
    );
    const awaiting = new Evaluator({ awaitPromiseValues: true });
    assert.equal(shown(await awaiting.evaluateIfComplete("Promise.resolve(5)")), "value 5");
  });

  void test("a scope whose `eval` is not the realm's is served by the compiled route", async () => {
    const ev = new Evaluator();
    assert.equal(shown(await ev.evaluate("var eval = (code) => 'not ' + code\n")), "value undefined");
    assert.equal(shown(atOnce(ev, "1 + 2")), "value 3");
    const own = globalThis.eval;
    try {
      globalThis.eval = () => "replaced";
      assert.equal(shown(atOnce(new Evaluator(), "2 + 2")), "value 4");
    } finally {
      globalThis.eval = own;
    }
  });
});
