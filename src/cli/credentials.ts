// Secrets and certificates named on the command line, shared by `confab serve` and `confab connect`.
import { readFileSync } from "node:fs";
import { ConfabError, ErrorCodes } from "../errors.js";
import { validateToken } from "../comm/token-line.js";
import { parseTokenFile, type Credentials } from "../listener/auth.js";

/** The environment variable `confab connect` and `confab serve` read a listener token from. */
export const TOKEN_ENV = "CONFAB_TOKEN";

/**
 * Who may connect, from `--token-file FILE` (one token, or lines `NAME TOKEN`: see
 * `parseTokenFile`) or else from `$CONFAB_TOKEN` (one token); `undefined` if neither is given.
 * Never put in a message.
 */
export function readCredentials(tokenFile: string | undefined): Credentials | undefined {
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
    return parseTokenFile(text, tokenFile);
  }
  const fromEnv = process.env[TOKEN_ENV];
  if (fromEnv === undefined || fromEnv === "") return undefined;
  return validateToken(fromEnv.trim(), `$${TOKEN_ENV}`);
}

/**
 * The token a client sends, from the same places: a file may hold the token alone or one
 * user's line `NAME TOKEN` (a user's own copy of their line of the server's file).
 */
export function readToken(tokenFile: string | undefined): string | undefined {
  const credentials = readCredentials(tokenFile);
  if (credentials === undefined || typeof credentials === "string") return credentials;
  const tokens = Object.values(credentials);
  if (tokens.length !== 1) {
    throw new ConfabError(
      ErrorCodes.INVALID_ARGUMENT,
      `--token-file: ${tokenFile ?? "the file"} holds the tokens of ${tokens.length} users; give a file with just your own`,
    );
  }
  return tokens[0];
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
