import { readFileSync } from "node:fs";

/** The package's version, read from the nearest package.json above this file. */
export function version(): string {
  // The file sits at src/cli/ in a checkout and at dist/src/cli/ once built: walk up.
  for (let up = "../../"; up.length <= 12; up += "../") {
    try {
      const text = readFileSync(new URL(`${up}package.json`, import.meta.url), "utf8");
      const pkg = JSON.parse(text) as { name?: string; version?: string };
      if (pkg.name === "confab" && pkg.version !== undefined) return pkg.version;
    } catch {
      // not at this level
    }
  }
  return "unknown";
}
