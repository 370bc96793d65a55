/**
 * The source-to-source half of the listener's evaluator: turns one REPL input (TypeScript or JavaScript,
 * possibly with top-level `await`) into the body of an async function that runs inside `with (scope)`, and
 * decides whether an input is complete, still open, or hopeless.
 *
 * Nothing here runs user code; {@link ./evaluator.ts} compiles and runs what this module produces.
 *
 * Pipeline: sucrase strips the types (a token-level rewrite, so plain JavaScript comes out as the very same
 * text), acorn parses the result, and a handful of text edits, made from acorn's node positions, turn
 * top-level declarations into assignments to names on the evaluator's scope object.
 */
import * as acorn from "acorn";
import { transform } from "sucrase";

/**
 * The parameter through which generated code reaches the evaluator's helpers. It is a real identifier in
 * the evaluated code, so its name is chosen to be one nobody types by accident.
 */
export const HELPER = "__confab__";

/** What {@link analyse} decided about an input. */
export type Analysis =
  | { kind: "complete"; code: string; program: acorn.Program }
  | { kind: "incomplete"; error: SyntaxError; fromEnd?: number }
  | { kind: "error"; error: SyntaxError; fromEnd?: number };

/** The generated code for one input: `prologue` goes first (on the wrapper's line), then `body`. */
export interface CompiledInput {
  prologue: string;
  body: string;
  /**
   * The input runs code its compiled time checks cannot see (`eval`, `Function`, a regular
   * expression): only `vm`'s watchdog thread can stop it (see `time-limit.ts`).
   */
  needsWatchdog: boolean;
}

/** The call compiled into every loop and function body of user code (see `time-limit.ts`). */
const CHECK = `${HELPER}.check();`;

const ACORN_SCRIPT: acorn.Options = {
  ecmaVersion: "latest",
  sourceType: "script",
  allowAwaitOutsideFunction: true,
  allowHashBang: true,
};
const ACORN_MODULE: acorn.Options = { ecmaVersion: "latest", sourceType: "module", allowHashBang: true };

/** Acorn and sucrase both decorate their SyntaxErrors with the offset of the offending token. */
function errorPosition(err: unknown): number | undefined {
  if (typeof err === "object" && err !== null && "pos" in err && typeof err.pos === "number") return err.pos;
  return undefined;
}

function messageOf(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/**
 * True when a parser error can be cured by typing more: it is about an unterminated template literal or
 * comment, or it happened at the very end of the text (`1 +`, `{`, `f(`, `if (x) {} else`). An ordinary string
 * literal cannot span lines, so an unterminated one is hopeless unless its line ends in a backslash (a line
 * continuation), exactly as in a JavaScript file.
 */
function curableByMoreInput(err: unknown, text: string): boolean {
  const message = messageOf(err);
  if (/Unterminated (template|comment)/.test(message)) return true;
  if (/reached the end of (the )?input/i.test(message)) return true;
  if (/Unterminated string constant/.test(message)) return /\\\r?\n?$/.test(text);
  if (/Unterminated regular expression/.test(message)) return false;
  const pos = errorPosition(err);
  return pos !== undefined && pos >= text.length;
}

/** A SyntaxError whose stack is just its message: the parser's own stack frames would only mislead. */
function syntaxError(message: string): SyntaxError {
  const err = new SyntaxError(message);
  err.stack = `SyntaxError: ${message}`;
  return err;
}

/**
 * Sucrase accepts TypeScript `namespace` / `module` blocks but, having no runtime support for them, silently
 * drops them, values and all. Silently losing code is worse than refusing it, so such input is refused.
 * Acorn's tokenizer copes with TypeScript well enough for this scan; if it chokes, there is nothing to report.
 */
function findValueNamespace(source: string): number | undefined {
  const tokens: acorn.Token[] = [];
  try {
    for (const token of acorn.tokenizer(source, ACORN_SCRIPT)) tokens.push(token);
  } catch {
    return undefined;
  }
  const text = (token: acorn.Token | undefined): string | undefined =>
    token === undefined ? undefined : source.slice(token.start, token.end);
  for (let i = 0; i < tokens.length - 2; i++) {
    const token = tokens[i];
    const next = tokens[i + 1];
    if (token === undefined || next === undefined) break;
    if (token.type.label !== "name" || (text(token) !== "namespace" && text(token) !== "module")) continue;
    if (next.type.label !== "name") continue;
    const prev = tokens[i - 1];
    const atStatementStart =
      prev === undefined ||
      [";", "}", "{"].includes(prev.type.label) ||
      (prev.type.label === "export" && text(tokens[i - 2]) !== "declare");
    const declared = text(prev) === "declare";
    if (!atStatementStart || declared) continue;
    let j = i + 2;
    while (tokens[j]?.type.label === "." && tokens[j + 1]?.type.label === "name") j += 2;
    if (tokens[j]?.type.label === "{") return token.start;
  }
  return undefined;
}

function parseJs(code: string): { program: acorn.Program } | { error: unknown } {
  try {
    return { program: acorn.parse(code, ACORN_SCRIPT) };
  } catch (scriptError) {
    // `import x from "y"` is only legal in a module; parse it as one so that it can be rewritten to a
    // dynamic import. Module code is strict, so keep the script error if the module parse fails too.
    if (/sourceType: module|outside a module/.test(messageOf(scriptError))) {
      try {
        return { program: acorn.parse(code, ACORN_MODULE) };
      } catch {
        // fall through to the script error
      }
    }
    return { error: scriptError };
  }
}

/**
 * Types are stripped by sucrase on every Node line. Node 22.13+ has a stripper of its own
 * (`module.stripTypeScriptTypes`), but it costs more per input (28 µs against 17 for a one-line
 * declaration, Node 24), refuses what is not strip-only (enums, parameter properties), and
 * announces itself on the program's standard error.
 */
function stripTypes(source: string): string {
  return transform(source, {
    transforms: ["typescript"],
    // Keep modern syntax (class fields, `?.`, `??`) exactly as written: Node 20 runs it natively, and
    // sucrase's down-levelling would change class-field semantics.
    disableESTransforms: true,
    // An import "unused" in this input is normally used by a later one; without this sucrase drops it.
    // `import type` and `type`-only specifiers are still removed.
    keepUnusedImports: true,
  }).code;
}

/**
 * Whether JavaScript text could read differently as TypeScript: only where a `<` is followed,
 * somewhere later, by a `>` (`f<T>(x)` is a generic call there and two comparisons here). Two
 * linear scans; `=>`, `<=`, `<<` and their kin do not count.
 */
function mayHaveTypeArguments(source: string): boolean {
  const open = /<(?![<=])/g;
  if (!open.test(source)) return false;
  const close = /(?<![=>])>(?![>=])/g;
  close.lastIndex = open.lastIndex;
  return close.test(source);
}

/**
 * Text with none of TypeScript's usual marks (`:`, `as`, `interface`, ...) is tried as JavaScript
 * first. It only decides the order: a failed parse costs more than a success (its SyntaxError
 * is built), so likely TypeScript goes straight to the stripper.
 */
const TYPESCRIPT_MARKS =
  /:|\b(?:as|satisfies|interface|type|enum|declare|namespace|module|abstract|implements|private|public|protected|readonly)\b/;

/** What a plain expression cannot hold: braces, templates, slashes, functions, declarations, `import`, `eval`. */
const NOT_PLAIN = /[{}`/;#]|=>|\b(?:function|class|import|eval|Function|RegExp|let|const|var)\b/;

/**
 * Whether `source` is, by its text, a plain JavaScript expression (`1 + 2`, `app.users.length`,
 * `await db.count()`): nothing in it needs rewriting (no declaration, no `import`), no time check
 * (no loop or function), and no type stripping, so V8 can compile it as it is. A text that passes
 * is compiled as one parenthesized expression; if that fails, it goes through {@link analyse}.
 */
export function plainExpression(source: string): boolean {
  return !NOT_PLAIN.test(source) && !TYPESCRIPT_MARKS.test(source) && !mayHaveTypeArguments(source);
}

function analyseExactly(source: string): Analysis {
  // Plain JavaScript skips the type stripper: the parse of the text as it is is all it needs.
  if (!TYPESCRIPT_MARKS.test(source) && !mayHaveTypeArguments(source)) {
    const js = parseJs(source);
    if ("program" in js) return { kind: "complete", code: source, program: js.program };
  }
  const nsAt = /\b(?:namespace|module)\b/.test(source) ? findValueNamespace(source) : undefined;
  if (nsAt !== undefined) {
    return {
      kind: "error",
      error: syntaxError(
        "TypeScript namespaces are not supported by the listener (they would be dropped); use a plain object, or `declare namespace` for types only",
      ),
    };
  }
  let code: string;
  try {
    code = stripTypes(source);
  } catch (tsError) {
    // Sucrase parses everything as TypeScript; if it objects, give plain JavaScript a chance before
    // reporting, so no valid JavaScript is ever refused.
    const js = parseJs(source);
    if ("program" in js) return { kind: "complete", code: source, program: js.program };
    const error = syntaxError(messageOf(tsError));
    return failed(tsError, source, error);
  }
  const parsed = parseJs(code);
  if ("program" in parsed) return { kind: "complete", code, program: parsed.program };
  const error = syntaxError(messageOf(parsed.error));
  return failed(parsed.error, code, error);
}

/** `fromEnd` is how far before the end of the parsed text the parser gave up. */
function failed(err: unknown, text: string, error: SyntaxError): Analysis {
  const kind = curableByMoreInput(err, text) ? "incomplete" : "error";
  const pos = errorPosition(err);
  return pos === undefined ? { kind, error } : { kind, error, fromEnd: text.length - pos };
}

/**
 * Classifies one input and, when it is complete, hands back the type-stripped JavaScript and its syntax tree.
 * An input that starts with `{` is first tried as an expression, `({ ... })`, so that an object literal typed
 * alone prints as an object rather than running as a block with a label in it.
 */
export function analyse(source: string): Analysis {
  if (/^\s*\{/.test(source) && !/;\s*$/.test(source)) {
    const asExpression = analyseExactly(`(${source}\n)`);
    if (asExpression.kind === "complete") return asExpression;
    const asIs = analyseExactly(source);
    // `{ "a": 1,` is hopeless as a block but the start of an object literal: when the expression reading
    // failed only at the `)` added above, more lines can still make it whole.
    if (asIs.kind === "error" && asExpression.fromEnd !== undefined && asExpression.fromEnd <= 1) {
      return { kind: "incomplete", error: asIs.error };
    }
    return asIs;
  }
  return analyseExactly(source);
}

/** Collects the names a declaration pattern binds (`{ a, b: [c], ...d }` binds a, c and d). */
function boundNames(pattern: acorn.Pattern, out: string[]): string[] {
  switch (pattern.type) {
    case "Identifier":
      out.push(pattern.name);
      break;
    case "ObjectPattern":
      for (const property of pattern.properties) {
        boundNames(property.type === "RestElement" ? property.argument : property.value, out);
      }
      break;
    case "ArrayPattern":
      for (const element of pattern.elements) if (element) boundNames(element, out);
      break;
    case "AssignmentPattern":
      boundNames(pattern.left, out);
      break;
    case "RestElement":
      boundNames(pattern.argument, out);
      break;
    case "MemberExpression":
      break;
  }
  return out;
}

/** Visits every node of a tree, functions included, without knowing each node type's shape. */
function forEachNode(node: acorn.Node, visit: (node: acorn.Node) => void): void {
  visit(node);
  for (const value of Object.values(node)) {
    if (Array.isArray(value)) {
      for (const item of value) if (isNode(item)) forEachNode(item, visit);
    } else if (isNode(value)) {
      forEachNode(value, visit);
    }
  }
}

function isNode(value: unknown): value is acorn.Node {
  return (
    typeof value === "object" &&
    value !== null &&
    typeof (value as { type?: unknown }).type === "string" &&
    typeof (value as { start?: unknown }).start === "number"
  );
}

interface Edit {
  start: number;
  end: number;
  text: () => string;
}

/**
 * Rewrites one parsed input into code that keeps its top-level declarations on the scope object.
 *
 * - `let`/`const`/`var` at top level become assignments (`const { a, b: [c] } = o` -> `({ a, b: [c] } = o)`),
 *   preceded in the prologue by the creation of every declared name on the scope, so that assignments land
 *   there and not on `globalThis`; a `const` is sealed afterwards (assigning to it throws, as in JavaScript).
 *   `var` nested in top-level blocks and loops persists too, as it would in a script.
 * - top-level `function` declarations stay where they are (hoisted, with exact stack positions) and the
 *   prologue copies each onto the scope; within the input that declares it, the name refers to that very
 *   function (a block-level binding), in later inputs to whatever the scope holds. Top-level classes become
 *   `C = class C {}` in place.
 * - `import x, { y as z } from "m"` becomes an awaited dynamic import binding x and z on the scope;
 *   `import(...)` anywhere goes through the helper so that it works inside `vm` scripts.
 * - the last statement, if it is an expression statement, becomes `return [(expr)]`: the array stops a
 *   returned promise from being adopted, so `Promise.resolve(1)` typed alone shows as a promise.
 */
export function rewrite(code: string, program: acorn.Program): CompiledInput {
  const edits: Edit[] = [];
  const declared = new Set<string>();
  const published: string[] = [];
  // An object, not a `let`: it is set from inside the callback below, which flow analysis cannot see.
  const flags = { returnInPrologue: false };
  const h = HELPER;

  const render = (start: number, end: number, self?: Edit): string => {
    // Sorted by start, the wider first; the sort is stable, so of two edits of one range the
    // one pushed first (a time check wrapping a statement) renders the other inside it.
    const inner = edits
      .filter((e) => e !== self && e.start >= start && e.end <= end)
      .sort((a, b) => a.start - b.start || b.end - a.end);
    let out = "";
    let pos = start;
    for (const e of inner) {
      if (e.start < pos) continue;
      out += code.slice(pos, e.start) + e.text();
      pos = e.end;
    }
    return out + code.slice(pos, end);
  };
  const nodeText = (node: acorn.Node, self?: Edit): string => render(node.start, node.end, self);
  const names = (list: string[]): string => JSON.stringify(list);

  // A time check at the top of every loop body and function body (a block's `{` becomes
  // `{check();`, any other body is wrapped), and import(...) anywhere, including inside functions.
  let needsWatchdog = false;
  const checkBody = (body: acorn.Node): void => {
    if (body.type === "BlockStatement") {
      edits.push({ start: body.start, end: body.start + 1, text: () => `{${CHECK}` });
    } else {
      const edit: Edit = { start: body.start, end: body.end, text: () => `{${CHECK}${nodeText(body, edit)}}` };
      edits.push(edit);
    }
  };
  forEachNode(program, (node) => {
    switch (node.type) {
      case "MetaProperty":
        if ((node as acorn.MetaProperty).meta.name === "import") {
          throw syntaxError("`import.meta` has no meaning in the listener: its input is not a module");
        }
        return;
      case "ImportExpression": {
        const expr = node as acorn.ImportExpression;
        edits.push({ start: expr.start, end: expr.source.start, text: () => `${h}.import(` });
        return;
      }
      case "ForStatement":
      case "ForInStatement":
      case "ForOfStatement":
      case "WhileStatement":
      case "DoWhileStatement":
        checkBody((node as acorn.ForStatement).body);
        return;
      case "FunctionDeclaration":
      case "FunctionExpression":
        checkBody((node as acorn.FunctionExpression).body);
        return;
      case "ArrowFunctionExpression": {
        const body = (node as acorn.ArrowFunctionExpression).body;
        if (body.type === "BlockStatement") {
          checkBody(body);
        } else {
          const edit: Edit = {
            start: body.start,
            end: body.end,
            text: () => `(${h}.check(), ${nodeText(body, edit)})`,
          };
          edits.push(edit);
        }
        return;
      }
      case "Literal":
        if ("regex" in node && node.regex !== undefined) needsWatchdog = true;
        return;
      case "Identifier": {
        const name = (node as acorn.Identifier).name;
        if (name === "eval" || name === "Function" || name === "RegExp") needsWatchdog = true;
        return;
      }
      default:
        return;
    }
  });

  /** `a = 1, {b} = o` for a var/let/const declaration, or "" when nothing is assigned. */
  const assignments = (decl: acorn.VariableDeclaration): string[] => {
    const parts: string[] = [];
    for (const d of decl.declarations) {
      // Acorn's node for `(1, 2)` leaves its parentheses out: put them back, or `b = 1, 2` assigns 1.
      if (d.init?.type === "SequenceExpression") parts.push(`(${nodeText(d.id)} = (${nodeText(d.init)}))`);
      else if (d.init) parts.push(`(${nodeText(d.id)} = ${nodeText(d.init)})`);
      else if (decl.kind !== "var" && d.id.type === "Identifier") parts.push(`(${d.id.name} = void 0)`);
    }
    return parts;
  };
  const declareAll = (decl: acorn.VariableDeclaration): string[] => {
    const list: string[] = [];
    for (const d of decl.declarations) boundNames(d.id, list);
    for (const n of list) declared.add(n);
    return list;
  };

  // `var` inside top-level blocks and loops (never inside functions or classes).
  const nestedVar = (statement: acorn.Statement | acorn.ModuleDeclaration): void => {
    switch (statement.type) {
      case "VariableDeclaration":
        if (statement.kind !== "var") return;
        declareAll(statement);
        edits.push({
          start: statement.start,
          end: statement.end,
          text: () => `;${assignments(statement).join(", ")};`,
        });
        return;
      case "BlockStatement":
        statement.body.forEach(nestedVar);
        return;
      case "IfStatement":
        nestedVar(statement.consequent);
        if (statement.alternate) nestedVar(statement.alternate);
        return;
      case "ForStatement": {
        const init = statement.init;
        if (init?.type === "VariableDeclaration" && init.kind === "var") {
          declareAll(init);
          edits.push({ start: init.start, end: init.end, text: () => assignments(init).join(", ") });
        }
        nestedVar(statement.body);
        return;
      }
      case "ForInStatement":
      case "ForOfStatement": {
        const left = statement.left;
        const only = left.type === "VariableDeclaration" ? left.declarations[0] : undefined;
        if (left.type === "VariableDeclaration" && left.kind === "var" && only && left.declarations.length === 1) {
          declareAll(left);
          const target = only.id;
          edits.push({ start: left.start, end: left.end, text: () => nodeText(target) });
        }
        nestedVar(statement.body);
        return;
      }
      case "WhileStatement":
      case "DoWhileStatement":
      case "LabeledStatement":
      case "WithStatement":
        nestedVar(statement.body);
        return;
      case "TryStatement":
        nestedVar(statement.block);
        if (statement.handler) nestedVar(statement.handler.body);
        if (statement.finalizer) nestedVar(statement.finalizer);
        return;
      case "SwitchStatement":
        for (const c of statement.cases) c.consequent.forEach(nestedVar);
        return;
      default:
        return;
    }
  };

  const body = program.body;
  body.forEach((statement, index) => {
    const last = index === body.length - 1;
    switch (statement.type) {
      case "VariableDeclaration": {
        if (statement.kind !== "var" && statement.kind !== "let" && statement.kind !== "const") return;
        const list = declareAll(statement);
        edits.push({
          start: statement.start,
          end: statement.end,
          text: () => {
            const parts = assignments(statement).map((a) => `${a};`);
            const seal = statement.kind === "const" ? `${h}.seal(${names(list)});` : "";
            return `;${parts.join("")}${seal}`;
          },
        });
        return;
      }
      case "FunctionDeclaration": {
        // Left in place as a real declaration, so it is hoisted and its stack frames point at the lines the
        // user typed; the prologue copies it onto the scope, where later inputs find it.
        const name = statement.id.name;
        declared.add(name);
        published.push(name);
        return;
      }
      case "ClassDeclaration": {
        const name = statement.id.name;
        declared.add(name);
        const edit: Edit = {
          start: statement.start,
          end: statement.end,
          text: () => `;${name} = ${nodeText(statement, edit)};`,
        };
        edits.push(edit);
        return;
      }
      case "ImportDeclaration": {
        const bindings: Array<[string, string | null]> = [];
        for (const s of statement.specifiers) {
          declared.add(s.local.name);
          if (s.type === "ImportNamespaceSpecifier") bindings.push([s.local.name, null]);
          else if (s.type === "ImportDefaultSpecifier") bindings.push([s.local.name, "default"]);
          else {
            const imported = s.imported.type === "Identifier" ? s.imported.name : String(s.imported.value);
            bindings.push([s.local.name, imported]);
          }
        }
        const attributes: Record<string, string> = {};
        for (const a of statement.attributes) {
          const key = a.key.type === "Identifier" ? a.key.name : String(a.key.value);
          attributes[key] = String(a.value.value);
        }
        const options = statement.attributes.length > 0 ? JSON.stringify({ with: attributes }) : "undefined";
        edits.push({
          start: statement.start,
          end: statement.end,
          text: () =>
            `;await ${h}.importInto(${JSON.stringify(String(statement.source.value))}, ${options}, ${JSON.stringify(bindings)});`,
        });
        return;
      }
      case "ExportNamedDeclaration":
      case "ExportDefaultDeclaration":
      case "ExportAllDeclaration":
        throw syntaxError("`export` has no meaning in the listener: declare the name instead, it persists");
      case "ExpressionStatement": {
        if (!last) return;
        const expression = statement.expression;
        // `return [(` goes at the end of the previous line when the statement starts its own line, so that
        // the columns in stack traces are the ones the user typed.
        // (Not after a line that may end in a `//` comment, which would swallow it.)
        const lineStart = code.lastIndexOf("\n", statement.start - 1) + 1;
        const previousLine = code.slice(code.lastIndexOf("\n", lineStart - 2) + 1, lineStart);
        const ownLine = /^[ \t]*$/.test(code.slice(lineStart, statement.start)) && !previousLine.includes("//");
        if (ownLine && lineStart === 0) {
          flags.returnInPrologue = true;
          const edit: Edit = {
            start: statement.start,
            end: statement.end,
            text: () => `${nodeText(expression, edit)})];`,
          };
          edits.push(edit);
        } else if (ownLine) {
          const breakAt = code[lineStart - 2] === "\r" ? lineStart - 2 : lineStart - 1;
          const edit: Edit = {
            start: breakAt,
            end: statement.end,
            text: () => `;return [(${code.slice(breakAt, statement.start)}${nodeText(expression, edit)})];`,
          };
          edits.push(edit);
        } else {
          const edit: Edit = {
            start: statement.start,
            end: statement.end,
            text: () => `;return [(${nodeText(expression, edit)})];`,
          };
          edits.push(edit);
        }
        return;
      }
      default:
        nestedVar(statement);
        return;
    }
  });

  const bodyText = render(0, code.length);
  const prologue =
    (declared.size > 0 ? `${h}.declare(${names([...declared])});` : "") +
    published.map((name) => `${h}.define(${JSON.stringify(name)}, ${name});`).join("") +
    (flags.returnInPrologue ? ";return [(" : "");
  return { prologue, body: bodyText, needsWatchdog };
}
