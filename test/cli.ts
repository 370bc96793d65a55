// Runs the `confab` command from source, as a user runs the installed one.
import { spawn, type ChildProcess, type SpawnOptions } from "node:child_process";
import { fileURLToPath } from "node:url";

/** The package's root directory. */
export const root = fileURLToPath(new URL("..", import.meta.url));
const main = fileURLToPath(new URL("../src/cli/main.ts", import.meta.url));

/** The environment for a child `confab`: the test runner's own markers removed. */
export function childEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, ...extra };
  delete env.NODE_TEST_CONTEXT;
  return env;
}

/** The argv that runs `confab ...args` from source. */
export function confabArgv(args: string[]): string[] {
  return [process.execPath, "--import", "tsx", main, ...args];
}

/** The shell command line that runs `confab ...args` (for tmux). */
export function confabCommand(args: string[]): string {
  return confabArgv(args)
    .map((a) => (/^[\w@%+=:,./-]+$/.test(a) ? a : `'${a.replace(/'/g, "'\\''")}'`))
    .join(" ");
}

/** Runs `confab ...args` to completion with `input` on stdin. */
export function runConfab(
  args: string[],
  input = "",
  options: SpawnOptions = {},
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const [cmd, ...rest] = confabArgv(args) as [string, ...string[]];
    const child = spawn(cmd, rest, { cwd: root, stdio: ["pipe", "pipe", "pipe"], env: childEnv(), ...options });
    let stdout = "";
    let stderr = "";
    child.stdout?.on("data", (d: Buffer) => (stdout += d.toString()));
    child.stderr?.on("data", (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => child.kill("SIGKILL"), 20_000);
    child.on("error", reject);
    child.on("close", (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
    child.stdin?.end(input);
  });
}

/** Starts `confab ...args` in the background and resolves once its stdout shows `ready`. */
export function startConfab(
  args: string[],
  ready: RegExp,
): Promise<{ child: ChildProcess; match: RegExpMatchArray; output: () => string }> {
  return new Promise((resolve, reject) => {
    const [cmd, ...rest] = confabArgv(args) as [string, ...string[]];
    const child = spawn(cmd, rest, { cwd: root, stdio: ["ignore", "pipe", "pipe"], env: childEnv() });
    let out = "";
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      reject(new Error(`confab ${args.join(" ")} did not print ${String(ready)}; got ${out}`));
    }, 20_000);
    const onData = (d: Buffer): void => {
      out += d.toString();
      const match = ready.exec(out);
      if (match) {
        clearTimeout(timer);
        resolve({ child, match, output: () => out });
      }
    };
    child.stdout.on("data", onData);
    child.stderr.on("data", onData);
    child.on("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`confab ${args.join(" ")} exited (${String(code)}) before ready: ${out}`));
    });
  });
}
