/**
 * Who may use the monitor. The monitor can kill any process of the program and serve its
 * session recordings (whatever was typed and shown in a REPL, secrets included), so it only
 * ever answers a browser that is looking at it on loopback:
 *
 * - Every request must name a loopback `Host` (`localhost`, `127.x.x.x`, `[::1]`). A page on
 *   `evil.example` whose name an attacker re-points at 127.0.0.1 (DNS rebinding) sends
 *   `Host: evil.example` and gets 403 for the page, the data and the kill endpoint alike, so it
 *   can neither read the token nor use it.
 * - A kill, and a read of the recordings, must carry the monitor's random token in the
 *   `X-Confab-Token` header. The token is only in the page, which other sites cannot read
 *   (same-origin policy); and a cross-site form or `<script src>` cannot set headers at all,
 *   while a cross-site `fetch` that sets one needs a CORS preflight, which the monitor never
 *   grants.
 * - Such a request whose `Origin` is not the monitor's own, or whose `Sec-Fetch-Site` says
 *   another site sent it, is refused even with the token.
 *
 * @module
 */
import { randomBytes, timingSafeEqual } from "node:crypto";
import type { IncomingMessage } from "node:http";
import { isLoopback } from "../comm/address.js";

/** The header a kill request (or a read of the recordings) carries the token in. */
export const TOKEN_HEADER = "x-confab-token";

/** A fresh token: 32 random bytes, base64url (43 characters). */
export function newToken(): string {
  return randomBytes(32).toString("base64url");
}

/** The host name of a `Host` header value (`[::1]:8080` -> `::1`), or `undefined` if malformed. */
export function hostName(host: string): string | undefined {
  const bracketed = /^\[([0-9a-fA-F:.]+)\](?::(\d{1,5}))?$/.exec(host);
  if (bracketed !== null) return bracketed[1];
  const plain = /^([A-Za-z0-9.-]+)(?::(\d{1,5}))?$/.exec(host);
  return plain?.[1];
}

/** Why a request is refused, or `undefined` if its `Host` is acceptable. */
export function checkHost(req: IncomingMessage): string | undefined {
  const host = req.headers.host;
  if (host === undefined) return "no Host header";
  const name = hostName(host);
  if (name === undefined || !isLoopback(name))
    return `Host ${JSON.stringify(host)} is not a loopback address; open the monitor as http://127.0.0.1:PORT/ or http://localhost:PORT/`;
  return undefined;
}

/**
 * Why a request that needs the token is refused, or `undefined` if it may go ahead. `action`
 * says what it would do, for the refusal's message (`"kill processes"`).
 */
export function checkTokenRequest(req: IncomingMessage, token: string, action: string): string | undefined {
  const site = req.headers["sec-fetch-site"];
  if (site !== undefined && site !== "same-origin" && site !== "none") return `a ${site} request may not ${action}`;
  const origin = req.headers.origin;
  if (origin !== undefined && origin !== `http://${req.headers.host ?? ""}`)
    return `Origin ${JSON.stringify(origin)} is not this monitor`;
  const given = req.headers[TOKEN_HEADER];
  if (typeof given !== "string") return `no ${TOKEN_HEADER} header`;
  if (!sameSecret(given, token)) return `wrong ${TOKEN_HEADER}`;
  return undefined;
}

function sameSecret(given: string, expected: string): boolean {
  const a = Buffer.from(given);
  const b = Buffer.from(expected);
  return a.length === b.length && timingSafeEqual(a, b);
}

/** Why a kill request is refused, or `undefined` if it may go ahead (see {@link checkTokenRequest}). */
export function checkKillRequest(req: IncomingMessage, token: string): string | undefined {
  return checkTokenRequest(req, token, "kill processes");
}
