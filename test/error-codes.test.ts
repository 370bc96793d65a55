// Every `ERR_...` code that confab's sources name (in code or in doc comments) is one of
// `ErrorCodes`, so that the list users branch on is the list confab throws.
import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import { join, relative } from "node:path";
import { test } from "node:test";
import { ConfabError, ErrorCodes, type ConfabErrorCode } from "../src/errors.js";
import { root } from "./cli.js";

/**
 * Node's own codes that confab reads or mentions but never raises as its own: the evaluator's
 * `vm` timeout, `util.parseArgs` errors (matched by prefix), Node's report of an unhandled
 * rejection, and TLS failures passed on as they are (named in the docs of `SystemErrorCode`).
 */
const NODE_CODES = new Set([
  "ERR_SCRIPT_EXECUTION_TIMEOUT",
  "ERR_PARSE_ARGS",
  "ERR_UNHANDLED_REJECTION",
  "ERR_TLS_CERT_ALTNAME_INVALID",
  "ERR_SSL_WRONG_VERSION_NUMBER",
]);

/** The `ERR_...` codes written as whole string literals ("...", '...' or `...`) in `text`. */
function codesIn(text: string): string[] {
  return [...text.matchAll(/(["'`])(ERR_[A-Z0-9_]+)\1/g)].map((m) => m[2] ?? "");
}

function sources(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) return sources(path);
    return entry.name.endsWith(".ts") && !entry.name.endsWith(".test.ts") ? [path] : [];
  });
}

test("the scanner finds codes in each kind of string literal, and only whole literals", () => {
  assert.deepEqual(codesIn(`x("ERR_A"); y('ERR_B'); /** \`ERR_C\` */ z("not ERR_D here"); "ERR_E" + 'ERR_F'`), [
    "ERR_A",
    "ERR_B",
    "ERR_C",
    "ERR_E",
    "ERR_F",
  ]);
});

test("every ERR_ code named in src (tests excepted) is in ErrorCodes", () => {
  const known = new Set<string>(Object.values(ErrorCodes));
  const files = sources(join(root, "src"));
  assert.ok(files.length > 20, "the walk found the sources");
  const unknown: string[] = [];
  for (const file of files) {
    for (const code of codesIn(readFileSync(file, "utf8"))) {
      if (!known.has(code) && !NODE_CODES.has(code)) unknown.push(`${relative(root, file)}: ${code}`);
    }
  }
  assert.deepEqual(unknown, [], "add these to ErrorCodes (src/errors.ts), with a doc comment");
});

test("ErrorCodes' keys are their values without the ERR_ prefix, and values are unique", () => {
  for (const [key, value] of Object.entries(ErrorCodes)) assert.equal(value, `ERR_${key}`);
  assert.equal(new Set(Object.values(ErrorCodes)).size, Object.keys(ErrorCodes).length);
});

test("ConfabError.code admits confab's codes and system codes, not any string (checked by tsc)", () => {
  const own = new ConfabError(ErrorCodes.LISTEN, "x");
  const system = new ConfabError("ECONNREFUSED", "x");
  const certificate = new ConfabError("UNABLE_TO_VERIFY_LEAF_SIGNATURE", "x");
  // @ts-expect-error a mis-cased code is not a ConfabErrorCode
  const misCased = new ConfabError("econnrefused", "x");
  // @ts-expect-error nor is a made-up one that is not a system error's form
  const madeUp = new ConfabError("TIMEOUT", "x");
  const codes: ConfabErrorCode[] = [own.code, system.code, certificate.code, misCased.code, madeUp.code];
  assert.deepEqual(codes, ["ERR_LISTEN", "ECONNREFUSED", "UNABLE_TO_VERIFY_LEAF_SIGNATURE", "econnrefused", "TIMEOUT"]);
});
