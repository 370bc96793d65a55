/**
 * The services database: service names to port numbers, as `getservbyname(3)` gives them in C and
 * `comm:get-service-entry` in LispWorks. It is read once, lazily, from the files {@link servicesFiles}
 * names, so a lookup is a synchronous Map access and never touches the disk again.
 *
 * @module
 */
import { readFileSync } from "node:fs";
import { win32 } from "node:path";
import { ConfabError, ErrorCodes } from "../errors.js";

/**
 * One line of a services file: `http 80/tcp www` is `{ name: "http", port: 80, aliases: ["www"], protocol: "tcp" }`.
 */
export interface ServiceEntry {
  /** The official (first) name on the line. */
  readonly name: string;
  /** The port, an integer in 0..65535. */
  readonly port: number;
  /** The other names on the line, in order. */
  readonly aliases: readonly string[];
  /** The protocol, in lower case (`"tcp"`, `"udp"`, ...). */
  readonly protocol: string;
}

/** The default service name, `"confab"`, which resolves to {@link DEFAULT_PORT} unless a services file says otherwise. */
export const DEFAULT_SERVICE = "confab";

/** The built-in port of {@link DEFAULT_SERVICE}: the port of the seed's example. */
export const DEFAULT_PORT = 10243;

/** Name of the environment variable naming a services file to read before the system's. */
export const SERVICES_FILE_ENV = "CONFAB_SERVICES_FILE";

const DEFAULT_PROTOCOL = "tcp";
const MAX_PORT = 65535;

// The separators getservbyname accepts, plus \r so that CRLF files need no special case.
const FIELD_SEPARATOR = /[ \t\r\f\v]+/;
const PORT_AND_PROTOCOL = /^([0-9]+)\/([^/]+)$/;

/**
 * Parses the text of a services file (the format of `/etc/services`: `name port/protocol [aliases...] [# comment]`).
 * Pure and total: it never throws, and a line it cannot make sense of (no port, a port outside 0..65535, a
 * protocol with a `/` in it) is skipped, as the C library skips it. `#` starts a comment anywhere on a line;
 * fields are separated by any run of spaces and tabs; LF and CRLF line endings both work; the protocol is
 * lower-cased. Every entry is returned, duplicates included, in file order.
 *
 * @example
 * ```ts
 * parseServicesFile("http\t80/TCP  www  # the web\r\n");
 * // => [{ name: "http", port: 80, aliases: ["www"], protocol: "tcp" }]
 * ```
 */
export function parseServicesFile(text: string): ServiceEntry[] {
  const entries: ServiceEntry[] = [];
  for (const rawLine of text.split("\n")) {
    const hash = rawLine.indexOf("#");
    const line = hash === -1 ? rawLine : rawLine.slice(0, hash);
    const fields = line.split(FIELD_SEPARATOR).filter((field) => field !== "");
    const [name, portAndProtocol, ...aliases] = fields;
    if (name === undefined || portAndProtocol === undefined) continue;
    const match = PORT_AND_PROTOCOL.exec(portAndProtocol);
    if (match === null) continue;
    const port = Number(match[1]);
    if (!Number.isInteger(port) || port > MAX_PORT) continue;
    const protocol = (match[2] ?? "").toLowerCase();
    entries.push(Object.freeze({ name, port, aliases: Object.freeze(aliases), protocol }));
  }
  return entries;
}

/**
 * The files the database reads, in order: `$CONFAB_SERVICES_FILE` first (when set and not empty), then the
 * system's services file (`/etc/services` on Unix, `%SystemRoot%\System32\drivers\etc\services` on Windows).
 * This reflects the environment now; the database itself takes its snapshot when it is first used.
 *
 * @example
 * ```ts
 * process.env.CONFAB_SERVICES_FILE = "/opt/app/services";
 * servicesFiles(); // => ["/opt/app/services", "/etc/services"] on Linux
 * ```
 */
export function servicesFiles(): string[] {
  const files: string[] = [];
  const override = process.env[SERVICES_FILE_ENV];
  if (override !== undefined && override !== "") files.push(override);
  files.push(systemServicesFile());
  return files;
}

function systemServicesFile(): string {
  if (process.platform !== "win32") return "/etc/services";
  const root = process.env["SystemRoot"] ?? process.env["windir"] ?? "C:\\Windows";
  return win32.join(root, "System32", "drivers", "etc", "services");
}

interface ServicesDatabase {
  readonly byKey: ReadonlyMap<string, ServiceEntry>;
  /** What was looked at and what became of it, for the "unknown service" message. */
  readonly sources: readonly { readonly file: string; readonly problem?: string }[];
}

let database: ServicesDatabase | undefined;

// Protocols never contain "/" (the parser drops such lines), so splitting a key at its first "/" is unambiguous.
function keyOf(protocol: string, name: string): string {
  return `${protocol}/${name}`;
}

function loadDatabase(): ServicesDatabase {
  const byKey = new Map<string, ServiceEntry>();
  const sources: { file: string; problem?: string }[] = [];
  for (const file of servicesFiles()) {
    let text: string;
    try {
      text = readFileSync(file, "utf8");
    } catch (err) {
      // A missing file is normal (containers often lack /etc/services); it is only mentioned if a lookup fails.
      sources.push({ file, problem: describeReadError(err) });
      continue;
    }
    sources.push({ file });
    for (const entry of parseServicesFile(text)) {
      // First definition wins, both within a file (as getservbyname) and across files (the override comes first).
      for (const name of [entry.name, ...entry.aliases]) {
        const key = keyOf(entry.protocol, name);
        if (!byKey.has(key)) byKey.set(key, entry);
      }
    }
  }
  const builtInKey = keyOf(DEFAULT_PROTOCOL, DEFAULT_SERVICE);
  if (!byKey.has(builtInKey)) {
    byKey.set(
      builtInKey,
      Object.freeze({
        name: DEFAULT_SERVICE,
        port: DEFAULT_PORT,
        aliases: Object.freeze([]),
        protocol: DEFAULT_PROTOCOL,
      }),
    );
  }
  return { byKey, sources };
}

function describeReadError(err: unknown): string {
  if (typeof err === "object" && err !== null && "code" in err && typeof err.code === "string") {
    return err.code === "ENOENT" ? "not found" : `unreadable: ${err.code}`;
  }
  return "unreadable";
}

function getDatabase(): ServicesDatabase {
  database ??= loadDatabase();
  return database;
}

/**
 * Forgets the parsed database, so that the next lookup reads `$CONFAB_SERVICES_FILE` and the files again.
 * Programs rarely need this; tests that change the environment variable do.
 */
export function resetServicesDatabase(): void {
  database = undefined;
}

/**
 * Looks a service up by name or alias for a protocol (default `"tcp"`; compared without regard to case),
 * as `comm:get-service-entry` does. Names are case-sensitive, as in `/etc/services`. Returns `undefined`
 * for a name the database does not know. The built-in `confab 10243/tcp` is known unless a file defines
 * `confab` for tcp itself.
 *
 * @example
 * ```ts
 * getServiceEntry("www");           // => { name: "http", port: 80, aliases: ["www"], protocol: "tcp" } on most systems
 * getServiceEntry("confab")?.port;  // => 10243
 * getServiceEntry("no-such-thing"); // => undefined
 * ```
 */
export function getServiceEntry(name: string, protocol: string = DEFAULT_PROTOCOL): ServiceEntry | undefined {
  const normalised = protocol.toLowerCase();
  if (normalised.includes("/")) return undefined;
  return getDatabase().byKey.get(keyOf(normalised, name));
}

/**
 * Turns the `service` option of `startUpServer` or `openTcpStream` into a port number:
 * - an integer 0..65535 is the port itself;
 * - a string of decimal digits (`"10243"`) is parsed as one;
 * - any other string is a service name, looked up with {@link getServiceEntry};
 * - `undefined` means {@link DEFAULT_SERVICE}.
 *
 * Surrounding whitespace in a string is ignored (no service name contains whitespace).
 *
 * @throws {ConfabError} `ErrorCodes.UNKNOWN_SERVICE` for a name the database does not know, with a message
 *   naming the service and every file looked in; `ErrorCodes.INVALID_ARGUMENT` for a number (or numeric
 *   string) that is negative, fractional or above 65535, for an empty string, and for a value of another type.
 *
 * @example
 * ```ts
 * resolveService(8080);      // => 8080
 * resolveService("8080");    // => 8080
 * resolveService(undefined); // => 10243
 * resolveService("http");    // => 80 where /etc/services has it
 * ```
 */
export function resolveService(service: number | string | undefined, protocol: string = DEFAULT_PROTOCOL): number {
  if (service === undefined) return lookUpPort(DEFAULT_SERVICE, protocol);
  if (typeof service === "number") {
    if (!Number.isInteger(service) || service < 0 || service > MAX_PORT) {
      throw new ConfabError(
        ErrorCodes.INVALID_ARGUMENT,
        `service ${String(service)} is not a port number: a port must be an integer from 0 to ${MAX_PORT}`,
      );
    }
    return service;
  }
  if (typeof service !== "string") {
    // Reachable from plain JavaScript callers, which the types do not protect.
    throw new ConfabError(
      ErrorCodes.INVALID_ARGUMENT,
      `service must be a port number or a service name, not ${describeType(service)}`,
    );
  }
  const text = service.trim();
  if (text === "") {
    throw new ConfabError(
      ErrorCodes.INVALID_ARGUMENT,
      `service ${JSON.stringify(service)} is empty: give a port number or a service name`,
    );
  }
  if (/^[0-9]+$/.test(text)) {
    const port = Number(text);
    if (port > MAX_PORT) {
      throw new ConfabError(
        ErrorCodes.INVALID_ARGUMENT,
        `service ${JSON.stringify(service)} is not a port number: a port must be an integer from 0 to ${MAX_PORT}`,
      );
    }
    return port;
  }
  // Catch "-1", "1.5", "+80", "1e3" here: as names they would only produce a puzzling "unknown service".
  if (/^[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?$/.test(text)) {
    throw new ConfabError(
      ErrorCodes.INVALID_ARGUMENT,
      `service ${JSON.stringify(service)} is not a port number: a port must be an integer from 0 to ${MAX_PORT}`,
    );
  }
  return lookUpPort(text, protocol);
}

function describeType(value: unknown): string {
  if (value === null) return "null";
  return `a value of type ${typeof value}`;
}

function lookUpPort(name: string, protocol: string): number {
  const entry = getServiceEntry(name, protocol);
  if (entry !== undefined) return entry.port;
  const looked = getDatabase().sources.map((source) =>
    source.problem === undefined ? source.file : `${source.file} (${source.problem})`,
  );
  throw new ConfabError(
    ErrorCodes.UNKNOWN_SERVICE,
    `unknown service ${JSON.stringify(name)} for protocol ${JSON.stringify(protocol.toLowerCase())}: ` +
      `looked in ${looked.join(", ")}` +
      ` and the built-in entry "${DEFAULT_SERVICE}" -> ${DEFAULT_PORT}/${DEFAULT_PROTOCOL}` +
      ` (set ${SERVICES_FILE_ENV} to a services file to add names)`,
  );
}
