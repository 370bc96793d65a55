/**
 * A host's entry, as LispWorks' `comm:get-host-entry`: its name, its aliases and its
 * addresses, from the system's resolver (`/etc/hosts`, DNS, as `getaddrinfo` sees them) and,
 * for an address, the name it maps back to. Lookups are asynchronous in Node, so this is a
 * promise.
 *
 * @example
 * ```ts
 * const entry = await comm.getHostEntry("localhost");
 * // { name: "localhost", aliases: [], addresses: ["127.0.0.1", "::1"] }
 * ```
 * @module
 */
import { promises as dns } from "node:dns";
import { isIP } from "node:net";
import { ConfabError, ErrorCodes, systemCode } from "../errors.js";

/** A host's entry: see {@link getHostEntry}. */
export interface HostEntry {
  /** The host's name: a name as given (or its canonical name, when a CNAME leads elsewhere); for an address, the name it maps back to, or the address itself when none does. */
  readonly name: string;
  /** Other names of the host: the CNAMEs on the way to its canonical name (none where only the system's files know it). */
  readonly aliases: readonly string[];
  /** Its addresses, IPv4 and IPv6, in the order the resolver gives them. */
  readonly addresses: readonly string[];
}

/** Which fields to look up (default: all three); a field not asked for is left empty, and costs no lookup. */
export type HostEntryField = "name" | "aliases" | "addresses";

/**
 * Looks `host` (a name or an address) up. Rejects with a `ConfabError` whose code is the
 * resolver's (`ENOTFOUND`, `EAI_AGAIN`) and whose message names the host.
 */
export async function getHostEntry(
  host: string,
  options?: { readonly fields?: readonly HostEntryField[] },
): Promise<HostEntry> {
  const fields = new Set(options?.fields ?? ["name", "aliases", "addresses"]);
  try {
    if (isIP(host) !== 0) {
      const name = fields.has("name") ? await reverseName(host) : host;
      return { name, aliases: [], addresses: fields.has("addresses") ? [host] : [] };
    }
    const [addresses, chain] = await Promise.all([
      fields.has("addresses") ? dns.lookup(host, { all: true }).then((all) => all.map((a) => a.address)) : [],
      fields.has("aliases") || fields.has("name") ? cnameChain(host) : [],
    ]);
    // A CNAME chain host -> a -> b: the host's name is b, and the names that lead to it are its aliases.
    const canonical = chain.at(-1);
    const name = canonical ?? host;
    const others = canonical === undefined ? [] : [host, ...chain.slice(0, -1)];
    return { name, aliases: fields.has("aliases") ? others : [], addresses };
  } catch (error) {
    const code = systemCode(error as NodeJS.ErrnoException, ErrorCodes.INVALID_ARGUMENT);
    throw new ConfabError(code, `cannot look up the host ${host}: ${(error as Error).message}`, { cause: error });
  }
}

/** The names a CNAME chain leads through from `host` (empty where there is no CNAME, or no DNS for it). */
async function cnameChain(host: string): Promise<string[]> {
  const chain: string[] = [];
  let name = host;
  for (let hops = 0; hops < 8; hops++) {
    let next: string[];
    try {
      next = await dns.resolveCname(name);
    } catch {
      break; // no CNAME, or a name only /etc/hosts knows
    }
    const target = next[0];
    if (target === undefined || chain.includes(target)) break;
    chain.push(target);
    name = target;
  }
  return chain;
}

async function reverseName(address: string): Promise<string> {
  try {
    const { hostname } = await dns.lookupService(address, 0);
    return hostname;
  } catch {
    return address;
  }
}
