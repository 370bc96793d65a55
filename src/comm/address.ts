/**
 * Addresses as confab shows them and judges them, in one place: how a host and port print
 * (`127.0.0.1:10243`, `[::1]:10243`, a Unix socket's path on its own), and which addresses
 * count as loopback, the rule behind the listener server's and the monitor's exposure checks.
 *
 * @module
 */
import { BlockList, isIP } from "node:net";

/**
 * Whether `address` names a Unix socket (or a Windows named pipe) rather than a host: a path.
 * Neither an IP address nor a host name contains a slash or a backslash; a path confab binds
 * is absolute, so it always does.
 */
export function isSocketPath(address: string): boolean {
  return address.includes("/") || address.includes("\\");
}

/**
 * How an address and port are shown to people: `host:port`, with an IPv6 address in brackets
 * (`[::1]:5432`, so the port cannot be read as part of the address); a Unix socket's path on its
 * own (a path has no port: a Unix socket server's `port` is 0).
 *
 * @example
 * ```ts
 * formatHostPort("127.0.0.1", 10243); // "127.0.0.1:10243"
 * formatHostPort("::1", 5432);        // "[::1]:5432"
 * formatHostPort("/run/app.sock", 0); // "/run/app.sock"
 * ```
 */
export function formatHostPort(host: string, port: number | string): string {
  if (isSocketPath(host)) return host;
  return `${host.includes(":") ? `[${host}]` : host}:${port}`;
}

/** Where a connection comes from, as a socket or a stream knows it: its remote address and port. */
export interface RemoteEnd {
  readonly remoteAddress?: string | undefined;
  readonly remotePort?: number | undefined;
}

/**
 * A connection's peer as people see it (`127.0.0.1:50312`, `[::1]:50312`), or `unknown` when
 * the socket has no remote address (a Unix socket's client, or a socket already gone).
 */
export function peerOf(end: RemoteEnd, unknown = "?"): string {
  const address = end.remoteAddress;
  return address === undefined ? unknown : formatHostPort(address, end.remotePort ?? "?");
}

// 127.0.0.0/8 and ::1. BlockList compares parsed addresses, so every spelling counts:
// `0:0:0:0:0:0:0:1`, and IPv4-mapped IPv6 (`::ffff:127.0.0.1`, `::ffff:7f00:1`).
const LOOPBACK = new BlockList();
LOOPBACK.addSubnet("127.0.0.0", 8, "ipv4");
LOOPBACK.addAddress("::1", "ipv6");

/**
 * Whether `address` is a loopback address, reachable from this machine only: `localhost` (any
 * case), an IPv4 address in 127.0.0.0/8, or `::1`, in any spelling, IPv4-mapped IPv6 included.
 * Anything else is not: wildcards (`0.0.0.0`, `::`), other addresses, other host names (even
 * `evil.localhost` or `127.0.0.1.nip.io`), malformed addresses (`127.0.0.300`).
 *
 * The one rule for what may be exposed without authentication (the listener server) or at all
 * (the monitor page, also applied to the `Host` a browser names).
 */
export function isLoopback(address: string): boolean {
  if (address.toLowerCase() === "localhost") return true;
  const family = isIP(address);
  if (family === 4) return LOOPBACK.check(address, "ipv4");
  if (family === 6) return LOOPBACK.check(address, "ipv6");
  return false;
}
