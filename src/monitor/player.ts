/**
 * asciinema's web player (the `asciinema-player` package), as the monitor serves it to its own
 * page: the standalone bundle (`window.AsciinemaPlayer`) and its stylesheet, read from the
 * installed package, once per program, so the page loads nothing from anywhere but the monitor.
 *
 * The bundle carries its terminal emulator as WebAssembly inside the script (it fetches
 * nothing), which is why a page with the player needs `'wasm-unsafe-eval'` in its
 * `script-src`: that keyword lets WebAssembly compile and nothing else (no `eval`, no inline
 * script).
 *
 * @module
 */
import { readFile } from "node:fs/promises";
import { createRequire } from "node:module";

/** One file the monitor serves from the player's package. */
export interface PlayerAsset {
  /** The file's bytes. */
  readonly body: Buffer;
  /** Its `Content-Type`. */
  readonly type: string;
}

/** Where the page finds the player's script. */
export const PLAYER_SCRIPT_PATH = "/assets/asciinema-player.min.js";
/** Where the page finds the player's stylesheet. */
export const PLAYER_STYLE_PATH = "/assets/asciinema-player.css";

// The package's export map names these two files: resolving them needs no knowledge of its layout.
const SOURCES: ReadonlyMap<string, { readonly specifier: string; readonly type: string }> = new Map([
  [
    PLAYER_SCRIPT_PATH,
    { specifier: "asciinema-player/dist/bundle/asciinema-player.min.js", type: "text/javascript; charset=utf-8" },
  ],
  [
    PLAYER_STYLE_PATH,
    { specifier: "asciinema-player/dist/bundle/asciinema-player.css", type: "text/css; charset=utf-8" },
  ],
]);

const cache = new Map<string, Promise<PlayerAsset>>();

/** Whether `path` is one of the player's files (see {@link playerAsset}). */
export function isPlayerAsset(path: string): boolean {
  return SOURCES.has(path);
}

/**
 * The player's file served at `path` ({@link PLAYER_SCRIPT_PATH} or {@link PLAYER_STYLE_PATH}),
 * read on first use and kept. A read that fails is not kept, so the next request tries again.
 */
export function playerAsset(path: string): Promise<PlayerAsset> | undefined {
  const source = SOURCES.get(path);
  if (source === undefined) return undefined;
  let asset = cache.get(path);
  if (asset === undefined) {
    asset = (async () => {
      const file = createRequire(import.meta.url).resolve(source.specifier);
      return { body: await readFile(file), type: source.type };
    })();
    asset.catch(() => cache.delete(path));
    cache.set(path, asset);
  }
  return asset;
}
