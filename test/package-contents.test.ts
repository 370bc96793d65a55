// What `npm pack` would publish: the compiled code and its types, the README and the licence,
// and nothing else (no tests, sources of tests, benchmarks, scripts or docs).
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { promisify } from "node:util";
import { childEnv, root } from "./cli.js";

const run = promisify(execFile);
const npm = process.platform === "win32" ? "npm.cmd" : "npm";

/** Files a user of the package needs: the library, its types, the `confab` command and the talk example it runs. */
const REQUIRED = [
  "dist/src/index.js",
  "dist/src/index.d.ts",
  "dist/src/cli/main.js",
  "dist/examples/talk.js",
  "README.md",
  "LICENSE",
  "package.json",
];

async function packedFiles(): Promise<string[]> {
  // `npm pack` packs what is in dist/ now: build it first if it is not there.
  if (!REQUIRED.filter((f) => f.startsWith("dist/")).every((f) => existsSync(join(root, f)))) {
    await run(npm, ["run", "build"], { cwd: root, env: childEnv(), timeout: 180_000 });
  }
  // --ignore-scripts: `prepare` (a full build) is not what this test is about.
  const { stdout } = await run(npm, ["pack", "--dry-run", "--json", "--ignore-scripts"], {
    cwd: root,
    env: childEnv(),
    timeout: 60_000,
    maxBuffer: 16 * 1024 * 1024,
  });
  const report = JSON.parse(stdout) as { files: { path: string }[] }[];
  const first = report[0];
  assert.ok(first !== undefined, "npm pack --json printed no package");
  return first.files.map((f) => f.path.replace(/\\/g, "/"));
}

test(
  "npm pack contains only the compiled code, its types, README, LICENSE and package.json",
  { timeout: 240_000 },
  async () => {
    const files = await packedFiles();
    for (const required of REQUIRED) assert.ok(files.includes(required), `${required} is missing from the package`);

    const unexpected = files.filter(
      (f) =>
        !(
          f.startsWith("dist/src/") ||
          f.startsWith("dist/examples/") ||
          f === "README.md" ||
          f === "LICENSE" ||
          f === "package.json"
        ),
    );
    assert.deepEqual(unexpected, [], "files outside dist/src, dist/examples, README.md, LICENSE and package.json");

    assert.deepEqual(
      files.filter((f) => /\.test\./.test(f) || /(^|\/)(test|tests|fixtures)\//.test(f)),
      [],
      "test files in the package",
    );
    assert.deepEqual(
      files.filter((f) => /(^|\/)bench\//.test(f)),
      [],
      "bench/ in the package",
    );
    assert.deepEqual(
      files.filter((f) => /(^|\/)docs\//.test(f)),
      [],
      "docs/ in the package",
    );
    assert.deepEqual(
      files.filter((f) => /(^|\/)scripts\//.test(f)),
      [],
      "scripts/ in the package",
    );
    // Compiled output only: TypeScript sources stay in the repository (declarations are `.d.ts`).
    assert.deepEqual(
      files.filter((f) => f.endsWith(".ts") && !f.endsWith(".d.ts")),
      [],
      "TypeScript sources in the package",
    );
  },
);
