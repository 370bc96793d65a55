// The real player of session recordings, for the tests: Debian's asciinema 2.x, whose
// `asciinema cat FILE` prints what a recording shows. asciinema cat opens /dev/tty to put it in
// raw mode, so it runs under a pseudo-terminal made by Python's pty module (asciinema is a
// Python program: where it is, python3 is). `.ci/run` installs it.
import { execFile, spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { promisify } from "node:util";

const run = promisify(execFile);
export const ASCIINEMA = "/usr/bin/asciinema";
const PYTHON = "/usr/bin/python3";
const hasAsciinema = existsSync(ASCIINEMA) && spawnSync(ASCIINEMA, ["--version"], { stdio: "ignore" }).status === 0;
/** A test's `skip` where the player is missing: `false` where it is installed. */
export const noPlayer: string | false = hasAsciinema
  ? false
  : `${ASCIINEMA} is not installed (apt-get install asciinema)`;
// Runs argv[1:] on a new pseudo-terminal, copying what it prints to stdout; exits with its status.
const UNDER_PTY = "import os, pty, sys; sys.exit(os.waitstatus_to_exitcode(pty.spawn(sys.argv[1:])))";

/** What `asciinema cat FILE` prints; rejects if it exits with an error. */
export async function asciinemaCat(file: string): Promise<string> {
  const playing = run(PYTHON, ["-c", UNDER_PTY, ASCIINEMA, "cat", file], {
    encoding: "utf8",
    timeout: 30_000,
    maxBuffer: 64 * 1024 * 1024,
  });
  playing.child.stdin?.end();
  const { stdout } = await playing;
  return stdout;
}
