/**
 * The PROXY protocol (HAProxy's v1 text and v2 binary headers), which load balancers such as
 * HAProxy, nginx's stream module and cloud load balancers put in front of a connection to say
 * who the real client is. A server with `proxyProtocol: true` reads the header before anything
 * else, and the handle its `function` gets (and every stream made on it) reports the client's
 * address as `remoteAddress`/`remotePort`, not the balancer's.
 *
 * @module
 */
import { isIP, type Socket } from "node:net";
import { ConfabError, ErrorCodes } from "../errors.js";

/** What a PROXY header says. `undefined` addresses: the balancer speaks for itself (v1 `UNKNOWN`, v2 `LOCAL`, e.g. a health check). */
export interface ProxyHeader {
  /** 1 or 2. */
  readonly version: 1 | 2;
  /** The client's address, as the balancer saw it. */
  readonly sourceAddress?: string;
  readonly sourcePort?: number;
  /** The address the client connected to. */
  readonly destinationAddress?: string;
  readonly destinationPort?: number;
}

/** The result of looking at the first bytes of a connection. */
export type ProxyParse =
  | { readonly kind: "more" }
  | { readonly kind: "header"; readonly header: ProxyHeader; readonly length: number }
  | { readonly kind: "invalid"; readonly reason: string };

/** How long a connection may take to send its PROXY header. */
export const PROXY_HEADER_TIMEOUT_MS = 5000;

/** The code of the error that closes a connection whose PROXY header is missing or malformed. */
export const BAD_PROXY_HEADER = ErrorCodes.BAD_PROXY_HEADER;

const V2_SIGNATURE = Buffer.from([0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a]);
const V1_PREFIX = Buffer.from("PROXY ");
// The longest v1 line the specification allows, CRLF included.
const V1_MAX = 107;
// v2 headers carry TLVs after the addresses; refuse absurd lengths rather than buffer them.
const V2_MAX = 16 + 4096;

/**
 * Parses a PROXY header at the start of `data`. Total: it never throws. `more` means the bytes so
 * far are a valid beginning and more are needed; `invalid` says why they can never be a header.
 */
export function parseProxyHeader(data: Buffer): ProxyParse {
  if (data.length === 0) return { kind: "more" };
  if (data[0] === 0x0d) return parseV2(data);
  if (data[0] === 0x50) return parseV1(data);
  return { kind: "invalid", reason: "no PROXY header: the connection did not start with one" };
}

function startsLike(data: Buffer, prefix: Buffer): boolean {
  const n = Math.min(data.length, prefix.length);
  return data.subarray(0, n).equals(prefix.subarray(0, n));
}

function parseV1(data: Buffer): ProxyParse {
  if (!startsLike(data, V1_PREFIX))
    return { kind: "invalid", reason: "no PROXY header: the connection did not start with one" };
  const end = data.indexOf("\r\n");
  if (end === -1) {
    return data.length >= V1_MAX
      ? { kind: "invalid", reason: `PROXY v1 line longer than ${V1_MAX} bytes` }
      : { kind: "more" };
  }
  if (end + 2 > V1_MAX) return { kind: "invalid", reason: `PROXY v1 line longer than ${V1_MAX} bytes` };
  const fields = data.toString("latin1", 0, end).split(" ");
  const length = end + 2;
  if (fields[1] === "UNKNOWN") return { kind: "header", header: { version: 1 }, length };
  if (fields.length !== 6 || (fields[1] !== "TCP4" && fields[1] !== "TCP6")) {
    return {
      kind: "invalid",
      reason: `malformed PROXY v1 line: ${JSON.stringify(data.toString("latin1", 0, Math.min(end, 60)))}`,
    };
  }
  const [, family, source, destination, sourcePort, destinationPort] = fields as [
    string,
    string,
    string,
    string,
    string,
    string,
  ];
  const ipVersion = family === "TCP4" ? 4 : 6;
  if (isIP(source) !== ipVersion || isIP(destination) !== ipVersion) {
    return { kind: "invalid", reason: `malformed PROXY v1 line: addresses are not ${family}` };
  }
  const sport = port(sourcePort);
  const dport = port(destinationPort);
  if (sport === undefined || dport === undefined)
    return { kind: "invalid", reason: "malformed PROXY v1 line: bad port" };
  return {
    kind: "header",
    header: {
      version: 1,
      sourceAddress: source,
      sourcePort: sport,
      destinationAddress: destination,
      destinationPort: dport,
    },
    length,
  };
}

function port(text: string): number | undefined {
  if (!/^(0|[1-9]\d{0,4})$/.test(text)) return undefined;
  const n = Number(text);
  return n <= 65535 ? n : undefined;
}

function parseV2(data: Buffer): ProxyParse {
  if (!startsLike(data, V2_SIGNATURE))
    return { kind: "invalid", reason: "no PROXY header: the connection did not start with one" };
  if (data.length < 16) return { kind: "more" };
  const versionCommand = data[12] as number;
  if (versionCommand >> 4 !== 2)
    return { kind: "invalid", reason: `PROXY v2 header with version ${versionCommand >> 4}` };
  const command = versionCommand & 0x0f;
  if (command > 1) return { kind: "invalid", reason: `PROXY v2 header with unknown command ${command}` };
  const family = data[13] as number;
  const bodyLength = data.readUInt16BE(14);
  const length = 16 + bodyLength;
  if (length > V2_MAX) return { kind: "invalid", reason: `PROXY v2 header of ${length} bytes is too long` };
  if (data.length < length) return { kind: "more" };
  // LOCAL: the balancer's own connection (a health check); keep the real addresses.
  if (command === 0) return { kind: "header", header: { version: 2 }, length };
  const body = data.subarray(16, length);
  switch (family) {
    case 0x11: // TCP over IPv4
    case 0x12: // UDP over IPv4
      return v2Addresses(body, length, "IPv4", 4, ipv4);
    case 0x21: // TCP over IPv6
    case 0x22: // UDP over IPv6
      return v2Addresses(body, length, "IPv6", 16, ipv6);
    default:
      // UNSPEC or Unix addresses: nothing to say about an IP peer.
      return { kind: "header", header: { version: 2 }, length };
  }
}

// A v2 address block: source and destination addresses of `size` bytes each, then the two ports.
function v2Addresses(
  body: Buffer,
  length: number,
  family: string,
  size: number,
  format: (bytes: Buffer) => string,
): ProxyParse {
  if (body.length < 2 * size + 4) return { kind: "invalid", reason: `PROXY v2 ${family} addresses are truncated` };
  return {
    kind: "header",
    header: {
      version: 2,
      sourceAddress: format(body.subarray(0, size)),
      destinationAddress: format(body.subarray(size, 2 * size)),
      sourcePort: body.readUInt16BE(2 * size),
      destinationPort: body.readUInt16BE(2 * size + 2),
    },
    length,
  };
}

function ipv4(bytes: Buffer): string {
  return [...bytes].join(".");
}

function ipv6(bytes: Buffer): string {
  const groups: string[] = [];
  for (let i = 0; i < 16; i += 2) groups.push(bytes.readUInt16BE(i).toString(16));
  // The canonical short form: the longest run of zero groups becomes "::".
  let best = -1;
  let bestLength = 1;
  for (let i = 0; i < 8;) {
    if (groups[i] !== "0") {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === "0") j++;
    if (j - i > bestLength) {
      best = i;
      bestLength = j - i;
    }
    i = j;
  }
  if (best === -1) return groups.join(":");
  return `${groups.slice(0, best).join(":")}::${groups.slice(best + bestLength).join(":")}`;
}

/**
 * Reads the PROXY header from a freshly accepted, paused socket and makes the socket report the
 * real client as its `remoteAddress`, `remotePort` and `remoteFamily`. The bytes after the header
 * are put back, so whoever reads the socket next loses nothing. Rejects with a
 * {@link ConfabError} ({@link BAD_PROXY_HEADER}) when the header is missing, malformed, or does
 * not arrive within `timeout` ms; the caller closes the connection.
 */
export function readProxyHeader(socket: Socket, timeout: number): Promise<ProxyHeader> {
  return new Promise((resolve, reject) => {
    let received: Buffer = Buffer.alloc(0);
    const finish = (error: ConfabError | undefined, header?: ProxyHeader, rest?: Buffer): void => {
      clearTimeout(timer);
      socket.off("data", onData);
      socket.off("end", onEnd);
      socket.pause();
      if (error !== undefined) {
        reject(error);
        return;
      }
      if (rest !== undefined && rest.length > 0) socket.unshift(rest);
      resolve(header as ProxyHeader);
    };
    const onData = (chunk: Buffer): void => {
      received = received.length === 0 ? chunk : Buffer.concat([received, chunk]);
      const parsed = parseProxyHeader(received);
      if (parsed.kind === "more") return;
      if (parsed.kind === "invalid") {
        finish(new ConfabError(BAD_PROXY_HEADER, parsed.reason));
        return;
      }
      presentPeer(socket, parsed.header);
      finish(undefined, parsed.header, received.subarray(parsed.length));
    };
    const onEnd = (): void => {
      finish(new ConfabError(BAD_PROXY_HEADER, "the connection ended before its PROXY header was complete"));
    };
    const timer = setTimeout(() => {
      finish(new ConfabError(BAD_PROXY_HEADER, `no complete PROXY header within ${timeout} ms`));
    }, timeout);
    socket.on("data", onData);
    socket.on("end", onEnd);
    socket.resume();
  });
}

/** Shadows the socket's peer getters with the client the header names. */
function presentPeer(socket: Socket, header: ProxyHeader): void {
  if (header.sourceAddress === undefined) return;
  const family = isIP(header.sourceAddress) === 6 ? "IPv6" : "IPv4";
  Object.defineProperties(socket, {
    remoteAddress: { value: header.sourceAddress, configurable: true },
    remotePort: { value: header.sourcePort, configurable: true },
    remoteFamily: { value: family, configurable: true },
  });
}
