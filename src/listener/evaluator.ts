/**
 * The listener's evaluation engine: a TypeScript/JavaScript REPL that runs inside the program itself.
 *
 * No networking here. The listener feeds an {@link Evaluator} one input at a time (asking
 * {@link Evaluator.status} whether the lines read so far make a whole input), prints what
 * {@link Evaluator.format} makes of each outcome, and offers {@link Evaluator.complete} for Tab completion.
 *
 * How it works, in short: each input is type-stripped (sucrase), parsed (acorn), and rewritten so that its
 * top-level declarations become properties of a per-evaluator scope object; the result is compiled as
 * `async function () { with (scope) { ... } }` in the program's own realm (`vm.Script#runInThisContext`) and
 * called at once, under the time limit, with `this` bound to `globalThis`. Code without `await` gets a plain
 * function, which answers without a promise. The common one-line inputs (`1 + 2`,
 * `const n: number = 5; n * 2`) skip the stripper and the parser (see `simple-input.ts`), and the listener
 * runs them by a direct `eval` inside the scope, which compiles only the input's own text.
 */
import { Console } from "node:console";
import { randomUUID } from "node:crypto";
import path from "node:path";
import { Writable } from "node:stream";
import { fileURLToPath, pathToFileURL } from "node:url";
import util from "node:util";
import vm from "node:vm";
import { ConfabError, ErrorCodes } from "../errors.js";
import { HELPER, analyse, rewrite, type Analysis, type CompiledInput } from "./evaluator-compile.js";
import { readSimpleInput, type SimpleInput } from "./simple-input.js";
import { timeCheck, timeoutError, withinTimeLimit } from "./time-limit.js";

/** How an {@link Evaluator} is set up; every field is optional. */
export interface EvaluatorOptions {
  /**
   * Objects exposed to the code as free variables (e.g. `{ app, db, mp, comm }`). They are the program's own
   * objects, not copies, and are read through on every use, so the program may swap `context.db` and the
   * listener sees the new one. Assigning to such a name from the REPL rebinds it in this evaluator's scope
   * only; the context object itself is never written.
   */
  context?: Record<string, unknown>;
  /**
   * Time limit in ms for the code typed at the listener while the listener runs it (default 5000; 0 or
   * Infinity disables it): the synchronous part of an input (before its first `await`), the printing of its
   * value (custom inspectors, getters) and Tab completion (getters). It is enforced by checks compiled into
   * every loop and function of that code (see `time-limit.ts`), and by `vm`'s watchdog for inputs that use
   * `eval`, `Function` or regular expressions. The program's own functions are not interrupted, and code
   * that runs after an `await` (or in a callback) is not limited, so `await null; while (true) {}` hangs the
   * program, as any busy loop in it would.
   */
  timeout?: number;
  /**
   * Where `console.log` & co. inside evaluated code write, called with already-formatted text ending in
   * "\n". The listener passes its client's stream, as a Lisp listener binds `*standard-output*`.
   * Defaults to the program's standard output.
   */
  writeOutput?: (text: string) => void;
  /** Await a promise that is the value of an input, as if the input began with `await` (default false, as in Node's REPL). */
  awaitPromiseValues?: boolean;
  /** Passed to `util.inspect` for results and for console output, e.g. `{ colors: true, depth: 4 }`. */
  inspectOptions?: util.InspectOptions;
}

/**
 * The result of one evaluation. It is a value rather than a throw so that the listener can print
 * it and carry on reading, whatever the input did.
 */
export type EvalOutcome = { ok: true; value: unknown } | { ok: false; error: unknown };

/**
 * The compiled input: a function of the helpers, called with `this` bound to `globalThis`. It
 * returns `[value]` for an input that ends in an expression (the array keeps a promise value from
 * being adopted), `undefined` otherwise, or a promise of either when it is an async function.
 */
type CompiledFunction = (helpers: Helpers) => unknown;

/** What a script run under vm's watchdog calls with its function, before user code runs. */
type Launcher = (input: CompiledFunction) => unknown;

/** The functions generated code calls through the {@link HELPER} parameter. */
interface Helpers {
  scope: Record<string, unknown>;
  check(): void;
  declare(names: readonly string[]): void;
  define(name: string, value: unknown): void;
  seal(names: string[]): void;
  // What a simple input's `bound` statements call (see simple-input.ts), one call a declarator.
  let(name: string, value: unknown): void;
  const(name: string, value: unknown): void;
  var(name: string): void;
  import(specifier: unknown, options?: unknown): Promise<unknown>;
  importInto(specifier: string, options: unknown, bindings: Array<[string, string | null]>): Promise<void>;
}

/** A compiled input and the name of the one-shot global through which it finds its launcher. */
interface CompiledScript {
  /** The one-shot global through which a script run under vm's watchdog finds its launcher. */
  key: string | undefined;
  script: vm.Script;
  /** Compiled as a plain function: the input has no `await`, so it finishes before it returns. */
  sync: boolean;
}

const DEFAULT_TIMEOUT_MS = 5000;

/** Numbers the inputs across all evaluators, so that each stack frame's `REPLn` names one input. */
let inputCounter = 0;

const SELF_URL = import.meta.url;
const SELF_PATH = fileURLToPath(import.meta.url);

/** Reserved words offered by completion: they are what a user most often starts typing. */
const KEYWORDS = [
  "async",
  "await",
  "break",
  "case",
  "catch",
  "class",
  "const",
  "continue",
  "debugger",
  "default",
  "delete",
  "do",
  "else",
  "enum",
  "export",
  "extends",
  "false",
  "finally",
  "for",
  "function",
  "if",
  "import",
  "in",
  "instanceof",
  "interface",
  "let",
  "new",
  "null",
  "of",
  "return",
  "satisfies",
  "static",
  "super",
  "switch",
  "this",
  "throw",
  "true",
  "try",
  "type",
  "typeof",
  "undefined",
  "var",
  "void",
  "while",
  "with",
  "yield",
];

/** The word that makes an input asynchronous (also in `for await`); as a name it merely costs the fast path. */
const AWAIT = /\bawait\b/;

const IDENTIFIER = /^[\p{ID_Start}$_][\p{ID_Continue}$\u200c\u200d]*$/u;

function constantAssignment(): never {
  throw new TypeError("Assignment to constant variable.");
}

function defineVariable(scope: object, name: string, value: unknown): void {
  Object.defineProperty(scope, name, { value, writable: true, enumerable: true, configurable: true });
}

/** A `const` on the scope: reading gives `value`, assigning throws as JavaScript's does. */
function defineConstant(scope: object, name: string, value: unknown): void {
  Object.defineProperty(scope, name, {
    get: () => value,
    set: constantAssignment,
    enumerable: true,
    configurable: true,
  });
}

/**
 * A simple input as the body of the compiled function: as `rewrite` makes it. A lone expression
 * starts on the wrapper's line, so that stack frames give the columns the user typed.
 */
function simpleToFunction(simple: SimpleInput): CompiledInput {
  const { declared, statements, value } = simple;
  if (declared.length === 0 && statements === "" && value !== undefined) {
    return { prologue: ";return [(", body: `${value}\n)];`, needsWatchdog: false };
  }
  return {
    prologue: declared.length > 0 ? `${HELPER}.declare(${JSON.stringify(declared)});` : "",
    body: value === undefined ? statements : `${statements}return [(${value})];`,
    needsWatchdog: false,
  };
}

/** The realm's `eval`: a call to `eval` is a direct eval only while the name resolves to it. */
const REALM_EVAL = globalThis.eval;
/** Where {@link evalInScope} lives, for stack frames (see isMachineryFrame). */
const EVAL_IN_SCOPE_FILE = "confab:evaluator";

/**
 * Runs code by a direct `eval` inside `with (helpers.scope)`: V8 compiles the code alone (no
 * function around it) and its value is that of its last expression statement, as at a REPL. It
 * is compiled as a script of its own, at the top level, so that the code sees the scope, the
 * helpers and the globals, and none of this module's names.
 */
const evalInScope = new vm.Script(
  `(function (${HELPER}, __confab_code__) { with (${HELPER}.scope) { return eval(__confab_code__); } })`,
  { filename: EVAL_IN_SCOPE_FILE },
).runInThisContext() as (helpers: Helpers, code: string) => unknown;

/**
 * Whether a SyntaxError from {@link evalInScope} was thrown by code that ran (`JSON.parse`,
 * `throw new SyntaxError()`), not by V8 refusing to compile the input: in the latter case its
 * first stack frame is evalInScope's own. Without frames (`Error.stackTraceLimit = 0`) it
 * counts as having run, so that nothing is ever run twice.
 */
function ranInEval(error: SyntaxError): boolean {
  const stack = typeof error.stack === "string" ? error.stack : "";
  const frame = /^ {4}at .*$/m.exec(stack)?.[0];
  return frame === undefined || !frame.includes(EVAL_IN_SCOPE_FILE);
}

/** Resolves a module specifier typed at the listener: relative paths are relative to the working directory. */
function resolveSpecifier(specifier: string): string {
  if (specifier.startsWith("./") || specifier.startsWith("../") || specifier === "." || specifier === "..") {
    return pathToFileURL(path.resolve(process.cwd(), specifier)).href;
  }
  if (path.isAbsolute(specifier)) return pathToFileURL(specifier).href;
  return specifier;
}

/** `at eval (REPL7:1:5)`: a frame of an input run by {@link evalInScope}. */
const EVAL_FRAME = /\beval \((REPL\d+:\d+:\d+)\)$/;

/** True for frames that belong to the evaluator's machinery rather than to the user's code or the program's. */
function isMachineryFrame(line: string): boolean {
  return (
    line.includes(SELF_URL) ||
    line.includes(SELF_PATH) ||
    line.includes("node:vm") ||
    line.includes(EVAL_IN_SCOPE_FILE) ||
    // The wrapper's own frames sit on line 0, which V8 prints with no position at all.
    /\bREPL\d+(:0:\d+)?\)?$/.test(line)
  );
}

/** A stack without the frames of the evaluator, `vm` and Node internals, which only add noise at a prompt. */
function cleanStack(stack: string): string {
  const out: string[] = [];
  for (const line of stack.split("\n")) {
    const frame = /^\s+at /.test(line);
    if (frame && isMachineryFrame(line)) break;
    if (frame && line.includes("(node:internal/")) continue;
    // A frame of an input run by direct eval reads as one of a compiled input does.
    out.push(frame ? line.replace(EVAL_FRAME, "$1") : line);
  }
  return out.join("\n");
}

/**
 * A live TypeScript/JavaScript REPL over the program's own realm: what the listener server runs for each
 * client. Each Evaluator has its own scope, so two clients' declarations never meet, and nothing it declares
 * lands on `globalThis`, so the program is not polluted.
 *
 * Known limitations, all consequences of running user code in the program's own realm through `with`:
 * - the time limit covers only the synchronous part of an input, up to its first `await` (see
 *   {@link EvaluatorOptions.timeout}); and an input whose promise never settles holds up the inputs queued
 *   behind it, as at any REPL;
 * - code runs in sloppy mode (`"use strict"` is ignored): assigning to a name declared nowhere creates a
 *   global, as it would in a script; `let`/`const` have no temporal dead zone (the names exist, undefined,
 *   from the start of the input that declares them);
 * - a plain `function` called by its bare name from a later input gets the scope object as `this`
 *   (the `with` statement's base object) rather than `globalThis`;
 * - the value of an input is its last top-level statement's only when that is an expression statement, so
 *   `if (c) { 1 }` gives undefined;
 * - TypeScript is parsed as TypeScript: `f < a > (b)` is a generic call, as tsc reads it; namespaces with
 *   values are refused (the type stripper would drop them); `export` and `import.meta` are refused;
 *   `import` works (bare specifiers resolve from confab's own location, relative ones from the working
 *   directory);
 * - only the value shown is protected from "unhandled rejection": a promise the code rejects and drops
 *   meets the program's own `unhandledRejection` policy (on Node 20 by default, a crash).
 *
 * @example
 * ```ts
 * const ev = new Evaluator({ context: { app }, writeOutput: (s) => stream.writeString(s) });
 * if (ev.status(input) === "complete") stream.writeLine(ev.format(await ev.evaluate(input)));
 * ```
 */
export class Evaluator {
  readonly #scope: Record<string, unknown>;
  readonly #context: Record<string, unknown>;
  readonly #timeout: number | undefined;
  readonly #inspectOptions: util.InspectOptions;
  readonly #awaitValues: boolean;
  readonly #helpers: Helpers;
  // The listener asks status() and then evaluates the same text: one parse serves both.
  #analysed: { readonly source: string; readonly analysis: Analysis } | undefined;
  #prepared: { readonly source: string; readonly compiled: CompiledScript | undefined } | undefined;
  #queue: Promise<unknown> = Promise.resolve();
  // Evaluations queued or running (of this generation: abandon() starts afresh).
  #running = 0;
  #generation = 0;
  // Declarators bound so far by the simple input being run directly (see #evalDirectly).
  #bindings = 0;

  /**
   * Makes a fresh scope holding `console` (bound to `writeOutput`) over the context's names. Throws a
   * ConfabError for a timeout that is not a number >= 0, because a typo there would otherwise surface
   * only as every later evaluation failing.
   */
  constructor(options: EvaluatorOptions = {}) {
    const timeout = options.timeout ?? DEFAULT_TIMEOUT_MS;
    if (typeof timeout !== "number" || Number.isNaN(timeout) || timeout < 0) {
      throw new ConfabError(
        ErrorCodes.INVALID_ARGUMENT,
        `evaluator timeout must be a number of ms >= 0 (0 or Infinity disables it), not ${String(timeout)}`,
      );
    }
    // vm takes a uint32; anything beyond that is as good as no limit.
    this.#timeout = timeout === 0 || timeout > 0xffffffff ? undefined : Math.max(1, Math.ceil(timeout));
    // Kept by reference, not copied: a caller may hand in live getters (e.g. `colors` switched on once the
    // client says its terminal has them), and both util.inspect and the Console read them on every use.
    this.#inspectOptions = options.inspectOptions ?? {};
    this.#awaitValues = options.awaitPromiseValues ?? false;
    const context = options.context ?? {};
    this.#context = context;

    // Context names sit one level below the scope: reads go through to the context object every time, and
    // an assignment from the REPL lands as an own property of the scope (the receiver), shadowing it there.
    const has = (key: string | symbol): key is string => typeof key === "string" && Object.hasOwn(context, key);
    const contextLayer = new Proxy(Object.create(null) as object, {
      has: (_target, key) => has(key),
      get: (_target, key) => (has(key) ? context[key] : undefined),
      set: (_target, key, value, receiver: object) =>
        Reflect.defineProperty(receiver, key, { value, writable: true, enumerable: true, configurable: true }),
    });
    const scope = Object.create(contextLayer) as Record<string, unknown>;
    this.#scope = scope;

    const writeOutput = options.writeOutput ?? ((text: string) => void process.stdout.write(text));
    const sink = new Writable({
      decodeStrings: false,
      write(chunk: unknown, _encoding, callback) {
        try {
          writeOutput(typeof chunk === "string" ? chunk : String(chunk));
        } catch {
          // A failing sink must not turn into an 'error' event nobody listens to.
        }
        callback();
      },
    });
    defineVariable(scope, "console", new Console({ stdout: sink, stderr: sink, inspectOptions: this.#inspectOptions }));
    // Node 20 and 22 lose the async context of a queueMicrotask callback that throws, so the
    // listener could not tell its error from the program's: thrown there, it is rejected here.
    defineVariable(scope, "queueMicrotask", (callback: () => void) => {
      if (typeof callback !== "function") {
        queueMicrotask(callback); // Node's own error for a bad argument
        return;
      }
      queueMicrotask(() => {
        try {
          callback();
        } catch (error) {
          // eslint-disable-next-line @typescript-eslint/prefer-promise-reject-errors -- rethrown as it was thrown
          void Promise.reject(error);
        }
      });
    });

    // Creates each name on the scope, keeping the value of one that exists (unsealing a constant).
    const declare = (names: readonly string[]): void => {
      for (const name of names) {
        const descriptor = Object.getOwnPropertyDescriptor(scope, name);
        if (!descriptor) defineVariable(scope, name, undefined);
        else if (descriptor.get) defineVariable(scope, name, descriptor.get.call(scope));
      }
    };
    this.#helpers = {
      scope,
      check: timeCheck,
      declare,
      define: (name, value) => {
        defineVariable(scope, name, value);
      },
      seal: (names) => {
        for (const name of names) defineConstant(scope, name, scope[name]);
      },
      let: (name, value) => {
        this.#bindings++;
        defineVariable(scope, name, value);
      },
      const: (name, value) => {
        this.#bindings++;
        defineConstant(scope, name, value);
      },
      var: (name) => {
        this.#bindings++;
        declare([name]);
      },
      import: (specifier, importOptions) =>
        import(resolveSpecifier(String(specifier)), importOptions as ImportCallOptions | undefined),
      importInto: async (specifier, importOptions, bindings) => {
        const namespace = (await import(
          resolveSpecifier(specifier),
          importOptions as ImportCallOptions | undefined
        )) as Record<string, unknown>;
        for (const [local, imported] of bindings) {
          // Live, read-only bindings, like an ES module's imports.
          const get = imported === null ? () => namespace : () => namespace[imported];
          Object.defineProperty(scope, local, { get, set: constantAssignment, enumerable: true, configurable: true });
        }
      },
    };
  }

  /**
   * Tells the listener whether to evaluate what it has read or read another line. `"incomplete"` means more
   * lines could make it whole (unclosed brackets, braces, template literals or comments, a trailing operator,
   * `if (...) {} else`); `"error"` means no further input can fix it, so the listener should report it at once
   * (evaluate it to get the SyntaxError). TypeScript syntax is accepted. An ordinary string literal cannot span
   * lines, so `'abc` is an error unless the line ends with a backslash continuation.
   */
  status(source: string): "complete" | "incomplete" | "error" {
    if (source.trim() === "") return "complete";
    if (this.#expression(source) !== undefined) return "complete";
    return this.#analyse(source).kind;
  }

  /**
   * A simple input (see `simple-input.ts`) compiled without the parser, which would cost more
   * than the compilation; `undefined` for anything else. The listener asks status() and then
   * evaluates the same text: one compilation serves both.
   */
  #expression(source: string): CompiledScript | undefined {
    const cached = this.#prepared;
    if (cached?.source === source) return cached.compiled;
    const simple = readSimpleInput(source);
    if (simple === undefined) return undefined;
    let compiled: CompiledScript | undefined;
    try {
      compiled = this.#wrap(simpleToFunction(simple));
    } catch {
      compiled = undefined; // not what it seemed: the parser decides
    }
    this.#prepared = { source, compiled };
    return compiled;
  }

  #analyse(source: string): Analysis {
    const cached = this.#analysed;
    if (cached?.source === source) return cached.analysis;
    const analysis = analyse(source);
    this.#analysed = { source, analysis };
    return analysis;
  }

  /**
   * Evaluates one complete input and settles with its outcome; it never rejects, so a bad input cannot take
   * the listener down. Calls are queued: each starts after the previous one has settled, so outcomes come
   * back in call order even when a client pipes many inputs and one of them awaits.
   *
   * The value is that of the input's last statement when it is an expression statement (`1 + 2` -> 3,
   * `const x = 5` -> undefined). On success `_` is set to it. A promise typed without `await` is the value
   * itself (shown as `Promise { ... }`), as in Node's REPL.
   */
  evaluate(source: string): Promise<EvalOutcome> {
    return this.#enqueue((generation) => this.#run(source, generation));
  }

  #enqueue(run: (generation: number) => Promise<EvalOutcome>): Promise<EvalOutcome> {
    const generation = this.#generation;
    // #run never rejects, so its promise is the queue itself. With nothing running, the input
    // starts at once: each promise hop costs a turn of the async hooks that track processes.
    const outcome = this.#running === 0 ? run(generation) : this.#queue.then(() => run(generation));
    this.#running++;
    this.#queue = outcome;
    return outcome;
  }

  /**
   * Stops waiting for the input being evaluated, as Ctrl-C does in Node's REPL: the next
   * `evaluate` starts at once, and whatever the abandoned input later settles to is dropped (it
   * does not become `_`). A synchronous input cannot be abandoned (nothing else runs meanwhile):
   * the time limit stops it.
   */
  abandon(): void {
    this.#generation++;
    this.#running = 0;
    this.#queue = Promise.resolve();
  }

  /**
   * What the listener calls with the lines read so far: `"incomplete"` when more lines could
   * make them whole (as {@link status} says), else their evaluation, as {@link evaluate} gives
   * it. An input that finishes at once (no `await`, and a value that is not a promise: `1 + 2`,
   * `const n: number = 5; n * 2`) is answered here and now rather than through a promise, which
   * would cost the answer several turns of the async hooks; a simple one (see
   * `simple-input.ts`) is run by a direct `eval` inside the scope, which compiles just the
   * input's own text, with no function around it. The answer is the same on every route.
   */
  evaluateIfComplete(source: string): EvalOutcome | Promise<EvalOutcome> | "incomplete" {
    if (typeof source !== "string") return this.evaluate(source); // its TypeError, as evaluate gives it
    if (this.#running === 0) {
      const simple = readSimpleInput(source);
      if (simple?.awaits === false && this.#canEvalDirectly()) {
        const outcome = this.#evalDirectly(source, simple);
        if (outcome !== undefined) return outcome;
      }
    }
    if (this.status(source) === "incomplete") return "incomplete";
    if (this.#running !== 0) return this.evaluate(source);
    const compiled = this.#compile(source);
    if (!compiled.ok) return compiled;
    let boxed: unknown;
    try {
      boxed = this.#launch(compiled);
    } catch (err) {
      return { ok: false, error: this.#translateLaunchError(err) };
    }
    const value: unknown = Array.isArray(boxed) ? boxed[0] : undefined;
    if (!compiled.sync || util.types.isPromise(value)) {
      return this.#enqueue((generation) => this.#run(source, generation, { boxed }));
    }
    defineVariable(this.#scope, "_", value);
    return { ok: true, value };
  }

  /** A direct eval in the scope is one only while `eval` there is the realm's own. */
  #canEvalDirectly(): boolean {
    return globalThis.eval === REALM_EVAL && !("eval" in this.#scope);
  }

  /**
   * Runs a simple input by {@link evalInScope}; `undefined` when V8 did not compile it (nothing
   * of it ran), so that the exact route decides what is wrong or what it means.
   */
  #evalDirectly(source: string, simple: SimpleInput): EvalOutcome | Promise<EvalOutcome> | undefined {
    inputCounter += 1;
    const { declared, bound } = simple;
    // Helper calls that declare as they assign, one call a declarator, cost less than creating
    // every name first (`rewrite`'s order), and are the same where no name is used earlier.
    const statements =
      bound ?? (declared.length > 0 ? `${HELPER}.declare(${JSON.stringify(declared)});` : "") + simple.statements;
    const code = `${statements}${simple.value ?? "void 0"}\n//# sourceURL=REPL${inputCounter}`;
    let value: unknown;
    this.#bindings = 0;
    try {
      value = withinTimeLimit(this.#timeout, "evaluation", () => evalInScope(this.#helpers, code));
    } catch (error) {
      if (error instanceof SyntaxError && !ranInEval(error)) return undefined;
      // As `rewrite`'s order leaves them: the names whose declarators did not run exist, unassigned.
      if (bound !== undefined) this.#helpers.declare(declared.slice(this.#bindings));
      return { ok: false, error };
    }
    if (util.types.isPromise(value)) {
      return this.#enqueue((generation) => this.#run(source, generation, { boxed: [value] }));
    }
    defineVariable(this.#scope, "_", value);
    return { ok: true, value };
  }

  /**
   * Runs one input, or goes on with one that evaluateIfComplete has `started` (what its
   * compiled function returned).
   */
  async #run(source: string, generation: number, started?: { readonly boxed: unknown }): Promise<EvalOutcome> {
    try {
      let boxed: unknown = started?.boxed;
      if (started === undefined) {
        if (typeof source !== "string") {
          return { ok: false, error: new TypeError(`evaluate() expects a string, not ${typeof source}`) };
        }
        const compiled = this.#compile(source);
        if (!compiled.ok) return compiled;
        try {
          boxed = this.#launch(compiled);
        } catch (err) {
          return { ok: false, error: this.#translateLaunchError(err) };
        }
      }
      boxed = await boxed;
      let value: unknown = Array.isArray(boxed) ? boxed[0] : undefined;
      if (util.types.isPromise(value) && this.#awaitValues) {
        // The listener shows what a promise settles to (or its rejection as an error), and `_`
        // holds that, not the promise.
        value = await value;
      } else if (util.types.isPromise(value)) {
        // Shown, not awaited; and a rejection the user is looking at must not crash the program as an
        // unhandled one.
        void Promise.prototype.then.call(value, undefined, () => undefined);
      }
      if (generation === this.#generation) defineVariable(this.#scope, "_", value);
      return { ok: true, value };
    } catch (error) {
      return { ok: false, error };
    } finally {
      if (generation === this.#generation) this.#running--;
    }
  }

  #compile(source: string): ({ ok: true } & CompiledScript) | { ok: false; error: unknown } {
    const expression = this.#expression(source);
    this.#prepared = undefined;
    if (expression !== undefined) return { ok: true, ...expression };
    let generated: CompiledInput;
    if (source.trim() === "") {
      generated = { prologue: "", body: "", needsWatchdog: false };
    } else {
      const analysis = this.#analyse(source);
      this.#analysed = undefined; // rewriting may change the syntax tree
      if (analysis.kind !== "complete") return { ok: false, error: analysis.error };
      try {
        generated = rewrite(analysis.code, analysis.program);
      } catch (error) {
        return { ok: false, error };
      }
    }
    try {
      return { ok: true, ...this.#wrap(generated) };
    } catch (error) {
      return { ok: false, error };
    }
  }

  /** Compiles generated code in its wrapper; throws V8's SyntaxError. */
  #wrap(generated: CompiledInput): CompiledScript {
    inputCounter += 1;
    // Line 0 holds the wrapper and the prologue; the input starts on line 1, so with lineOffset -1 stack
    // frames point at the line the user typed. The wrapper calls the launcher *before* the user code, so the
    // frames of the machinery are all on line 0 and easy to leave out of printed stacks.
    // One parenthesized function, which V8 compiles at once (a function nested in it would be
    // parsed twice: skimmed with the script, compiled when first called).
    // Code without `await` runs the same in a plain function, which costs less to compile and to
    // call, and answers without a promise (see evaluateIfComplete).
    const sync = !AWAIT.test(generated.prologue) && !AWAIT.test(generated.body);
    const fn = `(${sync ? "" : "async "}function (${HELPER}) { with (${HELPER}.scope) {${generated.prologue}\n${generated.body}\n} })`;
    // Under vm's watchdog the user code must run inside the vm call: the script calls its
    // launcher itself. Otherwise the script's value is the function, called by #launch.
    const key = generated.needsWatchdog ? `__confab_launch_${randomUUID().replaceAll("-", "")}` : undefined;
    const wrapper = key === undefined ? fn : `this[${JSON.stringify(key)}]${fn}`;
    return { key, sync, script: new vm.Script(wrapper, { filename: `REPL${inputCounter}`, lineOffset: -1 }) };
  }

  /**
   * Runs a compiled input's synchronous part under the time limit and returns the promise of its completion.
   * Under vm's watchdog, the script finds the launcher through a one-shot global getter with a random name,
   * removed on first read, before any user code runs: the script has no other way to reach this evaluator's
   * scope, and nothing stays behind on `globalThis`.
   */
  #launch(compiled: CompiledScript): unknown {
    const { key, script } = compiled;
    const timeout = this.#timeout;
    const launch: Launcher = (input) => input.call(globalThis, this.#helpers);
    if (key === undefined) {
      const input = script.runInThisContext() as CompiledFunction;
      return withinTimeLimit(timeout, "evaluation", () => launch(input));
    }
    const global = globalThis as Record<string, unknown>;
    Object.defineProperty(globalThis, key, {
      configurable: true,
      enumerable: false,
      get: () => {
        Reflect.deleteProperty(global, key);
        return launch;
      },
    });
    try {
      return withinTimeLimit(
        timeout,
        "evaluation",
        () => script.runInThisContext(timeout === undefined ? {} : { timeout }) as unknown,
      );
    } finally {
      Reflect.deleteProperty(global, key);
    }
  }

  #translateLaunchError(err: unknown): unknown {
    if (
      typeof err === "object" &&
      err !== null &&
      (err as { code?: unknown }).code === "ERR_SCRIPT_EXECUTION_TIMEOUT"
    ) {
      return timeoutError("evaluation", this.#timeout ?? 0, err);
    }
    return err;
  }

  /**
   * Tab completion for the end of `line`. `prefix` is the partial name being completed (the text the chosen
   * completion replaces) and `completions` are the whole names that start with it, sorted and unique:
   * - `fo` -> names in scope: this evaluator's declarations, the context's names, `globalThis`'s own and
   *   inherited properties (including non-enumerable ones like `Object`), and keywords;
   * - `a.b.c` / `a?.b.` -> property names (own and inherited) of the value of `a.b`, found by reading
   *   properties only: nothing is called except getters, and proxies are left alone, since their traps could
   *   do anything. Anything else (a call, an index, a literal) offers nothing.
   */
  complete(line: string): { completions: string[]; prefix: string } {
    const prefix = /[\p{ID_Continue}$\u200c\u200d]*$/u.exec(line)?.[0] ?? "";
    const none = { completions: [], prefix };
    if (/^\p{Nd}/u.test(prefix)) return none;
    const before = line.slice(0, line.length - prefix.length);
    let names: Iterable<string>;
    if (/\??\.\s*$/.test(before)) {
      const chainMatch = /((?:[\p{ID_Start}$_][\p{ID_Continue}$\u200c\u200d]*\s*\??\.\s*)+)$/u.exec(before);
      if (!chainMatch) return none;
      const charBefore = before.slice(0, chainMatch.index).trimEnd().slice(-1);
      if (/[\p{ID_Continue}$.)\]'"`]/u.test(charBefore)) return none;
      const parts = (chainMatch[1] ?? "")
        .split(/\??\./)
        .map((p) => p.trim())
        .filter((p) => p !== "");
      const target = this.#resolveChain(parts);
      if (!target.found) return none;
      names = propertyNames(target.value);
    } else {
      if (/\.\s*$/.test(before)) return none;
      names = this.#namesInScope();
    }
    const completions = [...new Set([...names].filter((n) => n.startsWith(prefix) && IDENTIFIER.test(n)))].sort();
    return { completions, prefix };
  }

  #namesInScope(): string[] {
    const names = [...Object.getOwnPropertyNames(this.#scope), ...Object.getOwnPropertyNames(this.#context)];
    names.push(...propertyNames(globalThis), ...KEYWORDS);
    return names;
  }

  #resolveChain(parts: string[]): { found: boolean; value?: unknown } {
    try {
      // Reading the chain runs getters, which may be user code: limited as evaluation is.
      return withinTimeLimit(this.#timeout, "completion", () => this.#readChain(parts));
    } catch {
      return { found: false };
    }
  }

  #readChain(parts: string[]): { found: boolean; value?: unknown } {
    const [first, ...rest] = parts;
    if (first === undefined) return { found: false };
    let value: unknown;
    try {
      if (first === "this") value = globalThis;
      else if (Object.hasOwn(this.#scope, first)) value = this.#scope[first];
      else if (Object.hasOwn(this.#context, first)) value = this.#context[first];
      else if (first in globalThis) value = (globalThis as Record<string, unknown>)[first];
      else return { found: false };
      for (const part of rest) {
        if (value === null || value === undefined || util.types.isProxy(value)) return { found: false };
        value = (Object(value) as Record<string, unknown>)[part];
      }
    } catch {
      return { found: false };
    }
    if (value === null || value === undefined || util.types.isProxy(value)) return { found: false };
    return { found: true, value };
  }

  /**
   * Turns an outcome into the text the listener prints: a value as `util.inspect` shows it (with
   * `inspectOptions`); an error as its stack, trimmed of the evaluator's own frames, followed by any extra
   * properties such as `code`; anything else that was thrown as `Uncaught <value>`.
   */
  format(outcome: EvalOutcome): string {
    try {
      // Printing runs user code (custom inspectors, getters on errors): it is limited as evaluation is.
      return withinTimeLimit(this.#timeout, "printing the value", () => this.#format(outcome));
    } catch (err) {
      return `<unprintable: ${err instanceof Error ? err.message : "?"}>`;
    }
  }

  #format(outcome: EvalOutcome): string {
    if (outcome.ok) return util.inspect(outcome.value, this.#inspectOptions);
    const error = outcome.error;
    if (util.types.isNativeError(error) || error instanceof Error) {
      const e = error;
      const stack = typeof e.stack === "string" && e.stack !== "" ? cleanStack(e.stack) : "";
      const head = stack !== "" ? stack : `${e.name}: ${e.message}`;
      const extras: Record<string, unknown> = {};
      for (const key of Object.keys(e)) {
        if (key !== "stack" && key !== "message" && key !== "name")
          extras[key] = (e as unknown as Record<string, unknown>)[key];
      }
      return Object.keys(extras).length > 0 ? `${head} ${util.inspect(extras, this.#inspectOptions)}` : head;
    }
    return `Uncaught ${util.inspect(error, this.#inspectOptions)}`;
  }
}

/** Own and inherited string-keyed property names, stopping at a proxy (whose traps could run code). */
function propertyNames(value: unknown): string[] {
  const names: string[] = [];
  let object: unknown = value === null || value === undefined ? null : Object(value);
  for (let depth = 0; object !== null && depth < 64; depth++) {
    if (util.types.isProxy(object)) break;
    names.push(...Object.getOwnPropertyNames(object));
    object = Reflect.getPrototypeOf(object as object);
  }
  return names;
}
