import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { transform } from "sucrase";
import fc from "fast-check";
import { ConfabError, ErrorCodes } from "../errors.js";
import { Evaluator, type EvalOutcome } from "./evaluator.js";

/** Evaluates and insists on success, returning the value. */
async function value(ev: Evaluator, source: string): Promise<unknown> {
  const outcome = await ev.evaluate(source);
  if (!outcome.ok) assert.fail(`${JSON.stringify(source)} failed: ${ev.format(outcome)}`);
  return outcome.value;
}

/** Evaluates and insists on failure, returning the error. */
async function failure(ev: Evaluator, source: string): Promise<unknown> {
  const outcome = await ev.evaluate(source);
  if (outcome.ok) assert.fail(`${JSON.stringify(source)} succeeded with ${ev.format(outcome)}`);
  return outcome.error;
}

/** What is written to process.stdout while `fn` runs (and is kept from reaching it). */
async function capturingStdout(fn: () => unknown): Promise<string[]> {
  const written: string[] = [];
  const own = Object.getOwnPropertyDescriptor(process.stdout, "write");
  process.stdout.write = (chunk: string | Uint8Array): boolean => {
    written.push(String(chunk));
    return true;
  };
  try {
    await fn();
  } finally {
    if (own) Object.defineProperty(process.stdout, "write", own);
    else Reflect.deleteProperty(process.stdout, "write");
  }
  return written;
}

void describe("Evaluator: values", () => {
  void test("an expression evaluates to its value", async () => {
    const ev = new Evaluator();
    assert.equal(await value(ev, "1 + 2"), 3);
    assert.equal(await value(ev, "'a' + 'b'"), "ab");
  });

  void test("the value of an input is its last statement when that is an expression, else undefined", async () => {
    const ev = new Evaluator();
    assert.equal(await value(ev, "const x = 5"), undefined);
    assert.equal(await value(ev, "x"), 5);
    assert.equal(await value(ev, "let y = 1; y + 1"), 2);
    assert.equal(await value(ev, "1; function f() {}"), undefined);
    assert.equal(await value(ev, "if (true) { 7 }"), undefined);
    assert.equal(await value(ev, ""), undefined);
    assert.equal(await value(ev, "// only a comment"), undefined);
    assert.equal(await value(ev, "const two = 2 // a comment\n  two * 2"), 4);
    assert.equal(await value(ev, "two\n/* block */\n  + 1 // trailing"), 3);
    assert.equal(await value(ev, "1;\r\ntwo + 3"), 5);
  });

  void test("a declaration's value in parentheses keeps them: `const b = (1, 2)` holds 2", async () => {
    const ev = new Evaluator();
    // The line break takes the parser's route, where the parentheses were once lost (b was 1).
    assert.equal(await value(ev, "const b = (1, 2), c = 3\nb + c"), 5);
    assert.equal(await value(ev, "var d\nfor (var i = (0, 1); i < 2; i++) d = i\nd"), 1);
  });

  void test("an object literal typed alone is an object, as in Node's REPL; a block ending in ; stays a block", async () => {
    const ev = new Evaluator();
    assert.deepEqual(await value(ev, "{ a: 1, b: [2] }"), { a: 1, b: [2] });
    assert.deepEqual(await value(ev, "{}"), {});
    assert.equal(await value(ev, "{ let inner = 1; inner };"), undefined);
    assert.equal(await value(ev, "{ let inner = 1; inner }"), undefined);
  });

  void test("a promise typed without await is the value, and a rejected one does not crash the program", async () => {
    const ev = new Evaluator();
    // (ev.evaluate directly: returning a promise from an async helper would adopt it)
    const resolved = await ev.evaluate("Promise.resolve(4)");
    assert.ok(resolved.ok && resolved.value instanceof Promise);
    assert.match(ev.format(resolved), /^Promise \{\s+4\b/);
    const rejected = await ev.evaluate("Promise.reject(new Error('later'))");
    assert.ok(rejected.ok && rejected.value instanceof Promise);
    assert.match(ev.format(rejected), /^Promise \{\s+<rejected> Error: later/);
    await sleep(10); // an unhandled rejection would have surfaced by now (npm test runs with strict mode)
  });

  void test("_ holds the last successful value and failures leave it alone", async () => {
    const ev = new Evaluator();
    await value(ev, "21 * 2");
    assert.equal(await value(ev, "_"), 42);
    await failure(ev, "throw new Error('no')");
    assert.equal(await value(ev, "_ + 1"), 43);
    assert.equal(await value(ev, "_"), 43);
  });

  void test("evaluating JSON text gives back the same value (property)", async () => {
    const ev = new Evaluator();
    await fc.assert(
      fc.asyncProperty(fc.jsonValue(), async (v) => {
        const text = JSON.stringify(v);
        fc.pre(!text.includes("__proto__"));
        const outcome = await ev.evaluate(text);
        assert.ok(outcome.ok, text);
        assert.deepEqual(outcome.value, JSON.parse(text));
      }),
      { numRuns: 150 },
    );
  });
});

void describe("Evaluator: the program's own realm", () => {
  void test("globalThis and built-ins are the program's, and context objects are the program's own objects", async () => {
    const app = { hits: 0, items: [1, 2] };
    const ev = new Evaluator({ context: { app } });
    assert.equal(await value(ev, "globalThis"), globalThis);
    assert.equal(await value(ev, "this === globalThis"), true);
    assert.equal(await value(ev, "app"), app);
    await value(ev, "app.hits++; app.items.push(3)");
    assert.equal(app.hits, 1);
    assert.deepEqual(app.items, [1, 2, 3]);
    const arr = await value(ev, "[1, 2]");
    assert.ok(arr instanceof Array);
    (globalThis as Record<string, unknown>).__evaluatorTestGlobal = "seen";
    try {
      assert.equal(await value(ev, "__evaluatorTestGlobal"), "seen");
    } finally {
      delete (globalThis as Record<string, unknown>).__evaluatorTestGlobal;
    }
  });

  void test("context names are read through and assigning one rebinds it in this evaluator only", async () => {
    const context: Record<string, unknown> = { db: "first" };
    const ev = new Evaluator({ context });
    const other = new Evaluator({ context });
    assert.equal(await value(ev, "db"), "first");
    context.db = "second"; // the program swaps it
    assert.equal(await value(ev, "db"), "second");
    await value(ev, "db = 'mine'");
    assert.equal(await value(ev, "db"), "mine");
    assert.equal(context.db, "second");
    assert.equal(await value(other, "db"), "second");
    assert.equal(await value(ev, "typeof toString"), "function"); // Object.prototype is not in scope via context
    assert.equal(
      await value(ev, "typeof hasOwnProperty"),
      typeof (globalThis as Record<string, unknown>).hasOwnProperty,
    );
  });
});

void describe("Evaluator: TypeScript", () => {
  void test("type annotations, interfaces, aliases, casts, generics, satisfies and non-null assertions are stripped", async () => {
    const ev = new Evaluator();
    await value(ev, "interface Point { x: number; y: number }");
    await value(ev, "type Pair<T> = [T, T]");
    assert.equal(await value(ev, "const p: Point = { x: 1, y: 2 }; p.x + p.y"), 3);
    assert.equal(await value(ev, "(p as unknown as { x: number }).x"), 1);
    assert.equal(await value(ev, "function first<T>(xs: T[]): T { return xs[0]! }\nfirst<number>([9, 8])"), 9);
    assert.equal(await value(ev, "const id = <T,>(v: T): T => v; id<string>('s')"), "s");
    assert.deepEqual(await value(ev, "const cfg = { port: 1 } satisfies Record<string, number>; cfg"), { port: 1 });
    assert.deepEqual(await value(ev, "const pair: Pair<string> = ['a', 'b']; pair"), ["a", "b"]);
    assert.ok((await value(ev, "new Map<string, number>([['k', 1]])")) instanceof Map);
    assert.equal(await value(ev, "declare const ambient: number; typeof ambient"), "undefined");
  });

  void test("enums, parameter properties and abstract classes work", async () => {
    const ev = new Evaluator();
    assert.equal(await value(ev, "enum Color { Red, Green = 5 } Color.Green"), 5);
    assert.equal(await value(ev, "Color[5]"), "Green");
    await value(ev, "abstract class Shape { abstract area(): number; describe() { return `area ${this.area()}` } }");
    await value(
      ev,
      "class Sq extends Shape { constructor(private readonly side: number) { super() } area() { return this.side ** 2 } }",
    );
    assert.equal(await value(ev, "new Sq(3).describe()"), "area 9");
  });

  void test("plain JavaScript comes out of the type stripper as the very same text", () => {
    const samples = [
      "a < b > c",
      "const f = async function* (x = 1, ...r) { yield* r; }",
      "class A { #p = 1; static s = 2; get p() { return this.#p } }",
      "x?.y ?? z?.[0]?.(1)",
      "label: for (const k in o) { if (k) continue label; }",
      "`t ${a} ${`n ${b}`}`",
      "/re[/]gex/giu.test(s) && 1_000n",
      "({ a, b: [c] } = obj)",
      "let { a = 1, ...rest } = o; var [x, , y] = arr;",
    ];
    for (const code of samples) {
      const out = transform(code, {
        transforms: ["typescript"],
        disableESTransforms: true,
        keepUnusedImports: true,
      }).code;
      assert.equal(out, code);
    }
  });

  void test("value-carrying TypeScript namespaces are refused instead of silently dropped", async () => {
    const ev = new Evaluator();
    const err = await failure(ev, "namespace NS { export const v = 1 }");
    assert.ok(err instanceof SyntaxError);
    assert.match(err.message, /namespace/);
    assert.equal(ev.status("namespace NS { export const v = 1 }"), "error");
    assert.equal(await value(ev, "declare namespace Types { type T = string }"), undefined);
  });
});

void describe("Evaluator: top-level await", () => {
  void test("await works at top level and declarations made with it persist", async () => {
    const ev = new Evaluator();
    assert.equal(await value(ev, "await Promise.resolve(3)"), 3);
    await value(ev, "async function f() { await null; return 'done' }");
    assert.equal(await value(ev, "const x = await f()"), undefined);
    assert.equal(await value(ev, "x"), "done");
    assert.equal(await value(ev, "const [a, b] = await Promise.all([1, 2]); let c = a + b; await null; c"), 3);
    assert.equal(await value(ev, "a + b + c"), 6);
    assert.deepEqual(
      await value(
        ev,
        "const out = []; for await (const v of (async function* () { yield 1; yield 2 })()) out.push(v); out",
      ),
      [1, 2],
    );
  });

  void test("static imports become awaited dynamic imports whose bindings persist", async () => {
    const ev = new Evaluator();
    assert.equal(await value(ev, "import path, { join as j } from 'node:path'"), undefined);
    assert.equal(await value(ev, "j('a', 'b')"), "a/b".replace("/", (await import("node:path")).sep));
    assert.equal(await value(ev, "typeof path.resolve"), "function");
    assert.ok((await failure(ev, "j = null")) instanceof TypeError);
    assert.equal(await value(ev, "import * as os from 'node:os'; typeof os.platform()"), "string");
    assert.equal(await value(ev, "(await import('node:os')).EOL"), (await import("node:os")).EOL);
    assert.equal(await value(ev, "import type { Foo } from 'nowhere'"), undefined);
  });
});

void describe("Evaluator: declarations persist", () => {
  void test("const, let, var, function and class declarations persist from one input to the next", async () => {
    const ev = new Evaluator();
    await value(ev, "const c = 1");
    await value(ev, "let l = 2");
    await value(ev, "var v = 3");
    await value(ev, "function fn() { return c + l + v }");
    await value(ev, "class K { get six() { return fn() } }");
    assert.equal(await value(ev, "new K().six"), 6);
    await value(ev, "l = 10");
    assert.equal(await value(ev, "fn()"), 14);
  });

  void test("destructuring declarations persist every name they bind", async () => {
    const ev = new Evaluator({ context: { obj: { a: 1, b: [2, 3], d: 4 }, arr: [1, 2, 3] } });
    await value(ev, "const { a, b: [c], ...others } = obj");
    await value(ev, "let [x, ...rest] = arr");
    await value(ev, "var { z = 'dflt' } = {}");
    assert.deepEqual(await value(ev, "[a, c, others, x, rest, z]"), [1, 2, { d: 4 }, 1, [2, 3], "dflt"]);
  });

  void test("var in top-level blocks and loops persists, block-scoped let does not", async () => {
    const ev = new Evaluator();
    await value(
      ev,
      "for (var i = 0; i < 3; i++) {}\nif (true) { var inIf = 'y' }\nfor (var k in { key: 1 }) {}\n{ let hidden = 1 }",
    );
    assert.deepEqual(await value(ev, "[i, inIf, k, typeof hidden]"), [3, "y", "key", "undefined"]);
  });

  void test("re-declaring a name in a later input replaces it, whatever it was declared as", async () => {
    const ev = new Evaluator();
    await value(ev, "const x = 1");
    await value(ev, "const x = 'two'");
    assert.equal(await value(ev, "x"), "two");
    await value(ev, "let x = 3");
    await value(ev, "x = 4");
    assert.equal(await value(ev, "x"), 4);
    await value(ev, "function x() { return 5 }");
    assert.equal(await value(ev, "x()"), 5);
    await value(ev, "class x { static v = 6 }");
    assert.equal(await value(ev, "x.v"), 6);
  });

  void test("assigning to a const throws a TypeError, as in JavaScript", async () => {
    const ev = new Evaluator();
    await value(ev, "const k = 1");
    const err = await failure(ev, "k = 2");
    assert.ok(err instanceof TypeError);
    assert.equal(await value(ev, "k"), 1);
    assert.ok((await failure(ev, "const same = 1; same = 2")) instanceof TypeError);
  });

  void test("a function declaration is hoisted within its input and later inputs see redefinitions", async () => {
    const ev = new Evaluator();
    await value(ev, "const result = early()\nfunction early() { return 'hoisted' }");
    assert.equal(await value(ev, "result"), "hoisted");
    await value(ev, "function helper() { return 1 }");
    await value(ev, "function main() { return helper() }");
    await value(ev, "function helper() { return 2 }");
    assert.equal(await value(ev, "main()"), 2);
    assert.equal(await value(ev, "helper.name"), "helper");
  });

  void test("two evaluators have separate scopes", async () => {
    const one = new Evaluator();
    const two = new Evaluator();
    await value(one, "const onlyInOne = 1");
    assert.equal(await value(two, "typeof onlyInOne"), "undefined");
    assert.ok((await failure(two, "onlyInOne")) instanceof ReferenceError);
    await value(two, "const onlyInOne = 2");
    assert.equal(await value(one, "onlyInOne"), 1);
  });

  void test("declarations never leak onto globalThis", async () => {
    const ev = new Evaluator();
    const names = ["leakC", "leakL", "leakV", "leakF", "leakK", "leakD", "leakN", "leakI", "leakAw"];
    await value(
      ev,
      "const leakC = 1; let leakL = 2; var leakV = 3; function leakF() {} class leakK {}\n" +
        "const { leakD } = { leakD: 4 }; for (var leakN = 0; leakN < 1; leakN++) {}\n" +
        "import { sep as leakI } from 'node:path'; const leakAw = await Promise.resolve(5)",
    );
    assert.deepEqual(await value(ev, `[${names.join(", ")}].length`), names.length);
    for (const name of names) assert.equal(Object.hasOwn(globalThis, name), false, name);
    assert.equal(
      Object.getOwnPropertyNames(globalThis).some((n) => n.startsWith("__confab")),
      false,
      "no helper left behind on globalThis",
    );
  });
});

void describe("Evaluator: errors", () => {
  void test("thrown errors and rejected promises come back as failures and the evaluator carries on", async () => {
    const ev = new Evaluator();
    const thrown = await failure(ev, "throw new RangeError('bad')");
    assert.ok(thrown instanceof RangeError);
    assert.equal(thrown.message, "bad");
    const rejected = await failure(ev, "await Promise.reject(new Error('rejected'))");
    assert.equal((rejected as Error).message, "rejected");
    assert.equal(await failure(ev, "throw 42"), 42);
    assert.ok((await failure(ev, "notDefinedAnywhere")) instanceof ReferenceError);
    assert.equal(await value(ev, "'still fine'"), "still fine");
  });

  void test("syntax errors come back as failures holding a SyntaxError", async () => {
    const ev = new Evaluator();
    for (const bad of ["1 + )", "let let = 1", "let a; let a;", "}", "export const e = 1", "import.meta"]) {
      const err = await failure(ev, bad);
      assert.ok(err instanceof SyntaxError, bad);
    }
    assert.equal(await value(ev, "1"), 1);
  });

  void test("a busy loop times out with a ConfabError naming the limit, and the next input works", async () => {
    const ev = new Evaluator({ timeout: 100 });
    const started = Date.now();
    const err = await failure(ev, "let spins = 0; while (true) { spins++ }");
    const elapsed = Date.now() - started;
    assert.ok(err instanceof ConfabError);
    assert.equal(err.code, ErrorCodes.EVAL_TIMEOUT);
    assert.equal(err.message, "evaluation timed out after 100 ms (the listener's timeout option)");
    assert.ok(elapsed < 2000, `took ${elapsed} ms`);
    assert.equal(await value(ev, "2 + 2"), 4);
    assert.match(
      ev.format({ ok: false, error: err }),
      /^ConfabError: evaluation timed out after 100 ms.*ERR_EVAL_TIMEOUT/s,
    );
  });

  void test("the time limit stops user code that catches the timeout, recurses, or was defined by an earlier input", async () => {
    const ev = new Evaluator({ timeout: 50 });
    const timedOut = async (source: string): Promise<void> => {
      const err = await failure(ev, source);
      assert.ok(err instanceof ConfabError && err.code === ErrorCodes.EVAL_TIMEOUT, `${source}: ${String(err)}`);
    };
    await timedOut("for (;;) { try { for (;;) {} } catch {} }");
    await timedOut("for (;;) { try { while (true) ; } finally { continue } }");
    await value(ev, "function spin(): number { let n = 0; while (true) n++; }");
    await timedOut("spin()");
    await value(ev, "const fib = (n: number): number => n < 2 ? n : fib(n - 1) + fib(n - 2)");
    await timedOut("fib(60)");
    await timedOut("[1, 2, 3].map(() => { do {} while (true) })");
    // Code the compiled checks cannot see is stopped by vm's watchdog.
    await timedOut("eval('while (true) {}')");
    await timedOut("/(a+)+$/.test('a'.repeat(40) + 'b')");
    assert.equal(await value(ev, "fib(10)"), 55);
  });

  void test("printing a value and completing a name run user code under the time limit", async () => {
    const ev = new Evaluator({ timeout: 50 });
    const looping = await value(ev, "({ [Symbol.for('nodejs.util.inspect.custom')]() { while (true) {} } })");
    assert.equal(
      ev.format({ ok: true, value: looping }),
      "<unprintable: printing the value timed out after 50 ms (the listener's timeout option)>",
    );
    const err = await failure(ev, "throw Object.defineProperty(new Error('e'), 'stack', { get() { for (;;) {} } })");
    assert.match(ev.format({ ok: false, error: err }), /^<unprintable: printing the value timed out/);
    await value(ev, "const trap = { get deep() { while (true) {} } }");
    assert.deepEqual(ev.complete("trap.deep.x"), { completions: [], prefix: "x" });
    assert.ok(ev.complete("trap.d").completions.includes("deep"));
    assert.equal(await value(ev, "1 + 1"), 2);
  });

  void test("abandon() lets the next input run at once; what the abandoned one settles to is dropped", async () => {
    const ev = new Evaluator();
    await value(ev, "let release: (v: number) => void");
    const abandoned = ev.evaluate("await new Promise<number>((r) => { release = r })");
    ev.abandon();
    assert.equal(await value(ev, "1 + 1"), 2, "not queued behind the abandoned input");
    await value(ev, "release(99)");
    assert.deepEqual(await abandoned, { ok: true, value: 99 });
    assert.equal(
      await value(ev, "_"),
      undefined,
      "`_` was not set by the abandoned input (release() returned undefined)",
    );
  });

  void test("a timeout of 0 or Infinity disables the limit, and a bad one is refused", async () => {
    const loop = "const until = Date.now() + 30; while (Date.now() < until) {} 'finished'";
    assert.equal(await value(new Evaluator({ timeout: 0 }), loop), "finished");
    assert.equal(await value(new Evaluator({ timeout: Infinity }), loop), "finished");
    assert.ok((await failure(new Evaluator({ timeout: 5 }), loop)) instanceof ConfabError);
    assert.throws(() => new Evaluator({ timeout: -1 }), ConfabError);
  });
});

void describe("Evaluator: console", () => {
  void test("console methods inside evaluated code write to writeOutput, not to standard output", async () => {
    const out: string[] = [];
    const ev = new Evaluator({ writeOutput: (text) => out.push(text) });
    const written = await capturingStdout(async () => {
      await value(
        ev,
        "console.log('log', { a: 1 }); console.info('info'); console.warn('warn'); console.error('error')",
      );
      await value(ev, "console.debug('debug'); console.dir([1]); console.table([{ c: 1 }])");
    });
    assert.deepEqual(written, []);
    const text = out.join("");
    for (const piece of ["log { a: 1 }\n", "info\n", "warn\n", "error\n", "debug\n", "[ 1 ]\n", "│ c │"]) {
      assert.ok(text.includes(piece), `missing ${JSON.stringify(piece)} in ${JSON.stringify(text)}`);
    }
    assert.ok(out.every((chunk) => chunk.endsWith("\n")));
  });

  void test("the program's own console is untouched, even while an evaluation is awaiting", async () => {
    const out: string[] = [];
    const ev = new Evaluator({ writeOutput: (text) => out.push(text) });
    const originalConsole = globalThis.console;
    const originalLog = console.log;
    const pending = ev.evaluate("await new Promise((r) => setTimeout(r, 30)); console.log('from the listener')");
    await sleep(5);
    assert.equal(globalThis.console, originalConsole);
    assert.equal(console.log, originalLog);
    const written = await capturingStdout(() => {
      console.log("from the program");
    });
    assert.ok((await pending).ok);
    assert.deepEqual(written, ["from the program\n"]);
    assert.deepEqual(out, ["from the listener\n"]);
  });

  void test("inspectOptions are read on every use, so a live getter (colours switched on later) takes effect", async () => {
    let colors = false;
    const out: string[] = [];
    const ev = new Evaluator({
      writeOutput: (t) => out.push(t),
      inspectOptions: {
        get colors() {
          return colors;
        },
      },
    });
    assert.equal(ev.format({ ok: true, value: 1 }), "1");
    colors = true;
    assert.equal(ev.format({ ok: true, value: 1 }), "\u001b[33m1\u001b[39m");
    await value(ev, "console.log(2)");
    assert.deepEqual(out, ["\u001b[33m2\u001b[39m\n"]);
  });

  void test("console output honours inspectOptions", async () => {
    const out: string[] = [];
    const ev = new Evaluator({ writeOutput: (t) => out.push(t), inspectOptions: { depth: 0 } });
    await value(ev, "console.log({ a: { b: 1 } })");
    assert.deepEqual(out, ["{ a: [Object] }\n"]);
  });
});

void describe("Evaluator: ordering", () => {
  void test("evaluate() queues calls, so results come back in call order even when one awaits", async () => {
    const ev = new Evaluator();
    const order: number[] = [];
    const calls = [
      ev.evaluate("await new Promise((r) => setTimeout(r, 30)); const slow = 'slow'; 1"),
      ev.evaluate("slow + '!'"),
      ev.evaluate("throw new Error('third')"),
      ev.evaluate("4"),
    ].map((p, i) => p.then((o) => (order.push(i), o)));
    const outcomes: EvalOutcome[] = await Promise.all(calls);
    assert.deepEqual(order, [0, 1, 2, 3]);
    assert.deepEqual(
      outcomes.map((o) => (o.ok ? o.value : "error")),
      [1, "slow!", "error", 4],
    );
  });
});

void describe("Evaluator: status", () => {
  void test("whole inputs are complete, open ones incomplete, hopeless ones errors", () => {
    const ev = new Evaluator();
    const expected: Array<[string, "complete" | "incomplete" | "error"]> = [
      ["1 + 2", "complete"],
      ["", "complete"],
      ["const x: Array<number> = []", "complete"],
      ["interface I { a: string }", "complete"],
      ["await f()", "complete"],
      ["f()\n  .then(g)", "complete"],
      ["{", "incomplete"],
      ["function f(a: number) {", "incomplete"],
      ["[1, 2,", "incomplete"],
      ["foo(", "incomplete"],
      ["const o = {\n  a: 1,", "incomplete"],
      ["`template ${", "incomplete"],
      ["`multi\nline", "incomplete"],
      ["/* comment", "incomplete"],
      ["1 +", "incomplete"],
      ["x =", "incomplete"],
      ["a.", "incomplete"],
      ["if (x) {} else", "incomplete"],
      ["let t: Map<string,", "incomplete"],
      ["interface I {", "incomplete"],
      ["'continued \\", "incomplete"],
      ["1 + // trailing comment\n", "incomplete"],
      ['{\n  "a": 1,', "incomplete"],
      ['{ "a": [1', "incomplete"],
      ["{ a: 1 } }", "error"],
      ["1 + )", "error"],
      ["}", "error"],
      ["'unterminated", "error"],
      ["/unterminated", "error"],
      ["let let = 1", "error"],
    ];
    for (const [source, status] of expected) assert.equal(ev.status(source), status, JSON.stringify(source));
  });

  void test("every proper prefix of a multi-line object literal cut at a line end is incomplete (property)", () => {
    const ev = new Evaluator();
    fc.assert(
      fc.property(
        fc.dictionary(fc.string({ minLength: 1, maxLength: 5 }), fc.jsonValue(), { minKeys: 1 }),
        fc.constantFrom("const o = ", "f(", ""),
        (obj, lead) => {
          const text = `${lead}${JSON.stringify(obj, null, 2)}${lead === "f(" ? ")" : ""}`;
          const lines = text.split("\n");
          for (let n = 1; n < lines.length; n++) {
            assert.equal(ev.status(lines.slice(0, n).join("\n")), "incomplete", lines.slice(0, n).join("\n"));
          }
          assert.equal(ev.status(text), "complete");
        },
      ),
      { numRuns: 100 },
    );
  });
});

void describe("Evaluator: completion", () => {
  void test("a bare prefix completes to declarations, context names, globals (non-enumerable too) and keywords", async () => {
    const ev = new Evaluator({ context: { app: {}, apple: 1 } });
    await value(ev, "const applesauce = 1; function apply2() {}");
    assert.deepEqual(ev.complete("ap"), { completions: ["app", "apple", "applesauce", "apply2"], prefix: "ap" });
    assert.deepEqual(ev.complete("x = Obj").completions, ["Object"]);
    assert.ok(ev.complete("aw").completions.includes("await"));
    const { completions } = ev.complete("");
    assert.deepEqual(completions, [...new Set(completions)].sort());
  });

  void test("a member chain completes to own and inherited property names of its value", async () => {
    const ev = new Evaluator({ context: { app: { config: { port: 1, portal: 2 } } } });
    await value(ev, "const local = { nested: { deep: true } }");
    assert.deepEqual(ev.complete("app.config.po"), { completions: ["port", "portal"], prefix: "po" });
    assert.deepEqual(ev.complete("local?.nested.de").completions, ["deep"]);
    assert.ok(ev.complete("local.has").completions.includes("hasOwnProperty"));
    assert.ok(ev.complete("Math.").completions.includes("max"));
    assert.ok(ev.complete("'s'.length.toFi").completions.length === 0); // a literal is not a chain
    assert.deepEqual(ev.complete("nothing.here.").completions, []);
  });

  void test("completion never calls functions or proxy traps", () => {
    let called = 0;
    const trapped: string[] = [];
    const proxy = new Proxy(
      {},
      { get: (_t, k) => (trapped.push(String(k)), undefined), ownKeys: () => (trapped.push("ownKeys"), []) },
    );
    const ev = new Evaluator({ context: { fn: () => (called++, { x: 1 }), proxy } });
    assert.deepEqual(ev.complete("fn().").completions, []);
    assert.deepEqual(ev.complete("proxy.").completions, []);
    assert.deepEqual(ev.complete("proxy.a.").completions, []);
    assert.equal(called, 0);
    assert.deepEqual(trapped, []);
  });
});

void describe("Evaluator: format", () => {
  void test("values print as util.inspect does, with inspectOptions", () => {
    const ev = new Evaluator({ inspectOptions: { depth: 0 } });
    assert.equal(ev.format({ ok: true, value: { a: { b: 1 } } }), "{ a: [Object] }");
    assert.equal(ev.format({ ok: true, value: "s" }), "'s'");
    assert.equal(ev.format({ ok: true, value: undefined }), "undefined");
  });

  void test("errors print their stack without the evaluator's frames, other thrown values as Uncaught", async () => {
    const ev = new Evaluator();
    const err = await failure(ev, "function boom() {\n  throw new Error('kaput')\n}\nboom()");
    const text = ev.format({ ok: false, error: err });
    assert.match(text, /^Error: kaput\n {4}at boom \(REPL\d+:2:9\)\n {4}at REPL\d+:4:1$/);
    assert.doesNotMatch(text, /evaluator|node:vm/);
    assert.equal(ev.format({ ok: false, error: 42 }), "Uncaught 42");
    const noStack = new Error("plain");
    noStack.stack = undefined;
    assert.equal(ev.format({ ok: false, error: noStack }), "Error: plain");
    assert.match(ev.format({ ok: false, error: await failure(ev, "1 + )") }), /^SyntaxError: Unexpected token/);
  });
});

test("types are stripped silently, enums included, on every Node line", async () => {
  // In a child, so that a one-time warning would show however the tests before it ran.
  const { spawnSync } = await import("node:child_process");
  const script = [
    "import { Evaluator } from './src/listener/evaluator.ts';",
    "const e = new Evaluator();",
    "const r = await e.evaluate('enum Color { Red = 1 }\\nconst n: number = Color.Red as number; n + 1');",
    "console.log(JSON.stringify(r));",
  ].join("\n");
  const child = spawnSync(process.execPath, ["--import", "tsx", "--input-type=module", "-e", script], {
    encoding: "utf8",
    cwd: new URL("../..", import.meta.url).pathname,
  });
  assert.equal(child.stderr, "", "no warning reaches the program's standard error");
  assert.deepEqual(JSON.parse(child.stdout), { ok: true, value: 2 }, "an enum (which strip-only mode refuses) works");
});
