// Secrets and certificates named on the command line, shared by `confab serve` and `confab connect`.
import { readFileSync } from "node:fs";
import { ConfabError, ErrorCodes } from "../errors.js";
import { validateToken } from "../comm/token-line.js";

/** The environment variable `confab connect` and `confab serve` read a listener token from. */
export const TOKEN_ENV = "CONFAB_TOKEN";

/**
 * The token from `--token-file FILE` (its content, surrounding whitespace removed) or else
 * from `$CONFAB_TOKEN`; `undefined` if neither is given. Never put in a message.
 */
export function readToken(tokenFile: string | undefined): string | undefined {
  if (tokenFile !== undefined) {
    let text: string;
    try {
      text = readFileSync(tokenFile, "utf8");
    } catch (error) {
      throw new ConfabError(
        ErrorCodes.INVALID_ARGUMENT,
        `--token-file: cannot read ${tokenFile}: ${(error as Error).message}`,
        { cause: error },
      );
    }
    return validateToken(text.trim(), `the token in ${tokenFile}`);
  }
  const fromEnv = process.env[TOKEN_ENV];
  if (fromEnv === undefined || fromEnv === "") return undefined;
  return validateToken(fromEnv.trim(), `$${TOKEN_ENV}`);
}

/** The content of a PEM file named by a command-line option, with an error naming the option. */
export function readPem(file: string, option: string): Buffer {
  try {
    return readFileSync(file);
  } catch (error) {
    throw new ConfabError(ErrorCodes.INVALID_ARGUMENT, `${option}: cannot read ${file}: ${(error as Error).message}`, {
      cause: error,
    });
  }
}
