/**
 * The token line, `token SECRET`: what a client sends first to a server that wants a shared
 * token (the listener server's `token`), and how such a server reads it. Shared by the client
 * (`openTcpStream`'s `token`) and the listener's authentication (`src/listener/auth.ts`), so
 * it lives here, below both.
 *
 * @module
 */
import { ConfabError, ErrorCodes } from "../errors.js";

/** What a token line starts with: `token SECRET`. */
export const TOKEN_LINE_PREFIX = "token ";

/** The shortest token accepted: a guessable secret would make the listener an open door. */
export const MIN_TOKEN_LENGTH = 16;

/** The longest token accepted (it travels on one short first line). */
export const MAX_TOKEN_LENGTH = 1024;

/**
 * Checks that `token` can be used: visible ASCII (no spaces: it must survive being typed and
 * read back from a file), {@link MIN_TOKEN_LENGTH} to {@link MAX_TOKEN_LENGTH} characters.
 * The message never contains the token.
 */
export function validateToken(token: unknown, source = "the token"): string {
  if (typeof token !== "string" || !/^[\x21-\x7e]*$/.test(token)) {
    throw new ConfabError(ErrorCodes.INVALID_ARGUMENT, `${source} must be visible ASCII characters without spaces`);
  }
  if (token.length < MIN_TOKEN_LENGTH || token.length > MAX_TOKEN_LENGTH) {
    throw new ConfabError(
      ErrorCodes.INVALID_ARGUMENT,
      `${source} must be ${MIN_TOKEN_LENGTH} to ${MAX_TOKEN_LENGTH} characters long, got ${token.length} (make one with: openssl rand -hex 24)`,
    );
  }
  return token;
}

/** The line a client sends to authenticate, without its newline. */
export function tokenLine(token: string): string {
  return `${TOKEN_LINE_PREFIX}${token}`;
}

/** The secret of a token line (`token SECRET`), or `undefined` if the line is not one. */
export function parseTokenLine(line: string): string | undefined {
  return line.startsWith(TOKEN_LINE_PREFIX) ? line.slice(TOKEN_LINE_PREFIX.length) : undefined;
}
