import { test, beforeEach, afterEach, before, after } from "node:test";
import assert from "node:assert/strict";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import fc from "fast-check";
import { ConfabError, ErrorCodes } from "../errors.js";
import {
  DEFAULT_SERVICE,
  getServiceEntry,
  parseServicesFile,
  resetServicesDatabase,
  resolveService,
  servicesFiles,
  type ServiceEntry,
} from "./services.js";

const ENV = "CONFAB_SERVICES_FILE";
let dir = "";
let savedEnv: string | undefined;

before(async () => {
  dir = await mkdtemp(join(tmpdir(), "confab-services-"));
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});
beforeEach(() => {
  savedEnv = process.env[ENV];
  delete process.env.CONFAB_SERVICES_FILE;
  resetServicesDatabase();
});
afterEach(() => {
  if (savedEnv === undefined) delete process.env.CONFAB_SERVICES_FILE;
  else process.env[ENV] = savedEnv;
  resetServicesDatabase();
});

let fileCounter = 0;
async function useServicesFile(text: string): Promise<string> {
  const file = join(dir, `services-${fileCounter++}`);
  await writeFile(file, text, "utf8");
  process.env[ENV] = file;
  resetServicesDatabase();
  return file;
}

function isConfabError(code: string, check?: (message: string) => void) {
  return (err: unknown): boolean => {
    assert.ok(err instanceof ConfabError, `expected a ConfabError, got ${String(err)}`);
    assert.equal(err.code, code);
    check?.(err.message);
    return true;
  };
}

void test("a name is found by any of its aliases, and the entry carries its official name", async () => {
  await useServicesFile("kerberos\t88/tcp\t\tkerberos5 krb5 kerberos-sec\t# Kerberos v5\n");
  const entry = getServiceEntry("krb5");
  assert.deepEqual(entry, {
    name: "kerberos",
    port: 88,
    aliases: ["kerberos5", "krb5", "kerberos-sec"],
    protocol: "tcp",
  });
  assert.equal(resolveService("kerberos-sec"), 88);
});

void test("comments, blank lines, tabs, runs of spaces and CRLF are all tolerated", () => {
  const text = [
    "# a comment line",
    "",
    "   \t  ",
    "http\t80/tcp    www www-http # the web",
    "  ssh 22/tcp#no space before the comment",
    "#commented 1/tcp",
    "gopher 70/tcp # gopher 71/tcp",
    "",
  ].join("\r\n");
  assert.deepEqual(parseServicesFile(text), [
    { name: "http", port: 80, aliases: ["www", "www-http"], protocol: "tcp" },
    { name: "ssh", port: 22, aliases: [], protocol: "tcp" },
    { name: "gopher", port: 70, aliases: [], protocol: "tcp" },
  ]);
});

void test("malformed lines are skipped and an upper-case protocol is lower-cased", () => {
  const text = [
    "noport",
    "badport abc/tcp",
    "toobig 65536/tcp",
    "negative -1/tcp",
    "noproto 80",
    "emptyproto 80/",
    "slashy 80/tcp/x",
    "max 65535/TCP",
    "zero 0/Udp alias",
  ].join("\n");
  assert.deepEqual(parseServicesFile(text), [
    { name: "max", port: 65535, aliases: [], protocol: "tcp" },
    { name: "zero", port: 0, aliases: ["alias"], protocol: "udp" },
  ]);
});

void test("CONFAB_SERVICES_FILE comes before the system file and overrides it", async () => {
  const [systemFile] = servicesFiles();
  assert.ok(systemFile !== undefined);
  // 80 where the system file lists http; undefined where there is none (some containers), and the override must still work.
  const systemHttp = getServiceEntry("http")?.port;
  assert.ok(systemHttp === undefined || systemHttp === 80);
  const file = await useServicesFile("http 8080/tcp web\n");
  assert.deepEqual(servicesFiles(), [file, systemFile]);
  assert.equal(resolveService("http"), 8080);
  assert.equal(getServiceEntry("web")?.port, 8080);
});

void test("within one file the first entry for a name wins", async () => {
  await useServicesFile("dup 1000/tcp same\ndup 2000/tcp\nother 3000/tcp same\n");
  assert.equal(resolveService("dup"), 1000);
  assert.equal(getServiceEntry("same")?.name, "dup");
  assert.equal(resolveService("other"), 3000);
});

void test("confab resolves to the built-in 10243 when no file defines it", async () => {
  await useServicesFile("something 1234/tcp\n");
  assert.equal(DEFAULT_SERVICE, "confab");
  assert.equal(resolveService(undefined), 10243);
  assert.equal(resolveService("confab"), 10243);
  assert.deepEqual(getServiceEntry("confab"), { name: "confab", port: 10243, aliases: [], protocol: "tcp" });
});

void test("a services file that defines confab differently wins over the built-in", async () => {
  await useServicesFile("confab 4000/tcp repl\n");
  assert.equal(resolveService(undefined), 4000);
  assert.equal(resolveService("repl"), 4000);
});

void test("the built-in confab entry is for tcp only", async () => {
  await useServicesFile("");
  assert.equal(getServiceEntry("confab", "udp"), undefined);
  assert.equal(getServiceEntry("confab", "TCP")?.port, 10243);
});

void test("an unknown name is an UNKNOWN_SERVICE error naming the service and every file looked in", async () => {
  const file = await useServicesFile("known 1/tcp\n");
  const missing = join(dir, "does-not-exist");
  process.env[ENV] = missing;
  resetServicesDatabase();
  const systemFile = servicesFiles().at(-1) ?? "";
  assert.throws(
    () => resolveService("no-such-service-xyzzy"),
    isConfabError(ErrorCodes.UNKNOWN_SERVICE, (message) => {
      assert.match(message, /"no-such-service-xyzzy"/);
      assert.ok(message.includes(missing), message);
      assert.ok(message.includes(systemFile), message);
      assert.match(message, /not found/);
      assert.match(message, /"confab" -> 10243/);
      assert.ok(!message.includes("\n"));
    }),
  );
  process.env[ENV] = file;
  resetServicesDatabase();
  assert.throws(
    () => resolveService("no-such-service-xyzzy"),
    isConfabError(ErrorCodes.UNKNOWN_SERVICE, (message) => {
      assert.ok(message.includes(file), message);
    }),
  );
});

void test("a missing CONFAB_SERVICES_FILE is skipped silently", () => {
  process.env[ENV] = join(dir, "missing-file");
  assert.equal(resolveService("confab"), 10243);
  assert.equal(getServiceEntry("no-such-service-xyzzy"), undefined);
});

void test("the database is read once, not per lookup", async () => {
  const file = await useServicesFile("first 1111/tcp\n");
  assert.equal(resolveService("first"), 1111);
  await writeFile(file, "first 2222/tcp\n", "utf8");
  process.env[ENV] = join(dir, "elsewhere");
  assert.equal(resolveService("first"), 1111);
  resetServicesDatabase();
  assert.equal(getServiceEntry("first"), undefined);
});

void test("integers and numeric strings are ports as they are", () => {
  assert.equal(resolveService(0), 0);
  assert.equal(resolveService(65535), 65535);
  assert.equal(resolveService("10243"), 10243);
  assert.equal(resolveService("080"), 80);
  assert.equal(resolveService(" 8080 "), 8080);
});

void test("out-of-range, negative, fractional and empty services are INVALID_ARGUMENT", () => {
  for (const bad of [
    -1,
    65536,
    1.5,
    Number.NaN,
    Number.POSITIVE_INFINITY,
    "65536",
    "-1",
    "1.5",
    "+80",
    "1e3",
    "",
    "   ",
  ]) {
    assert.throws(() => resolveService(bad), isConfabError(ErrorCodes.INVALID_ARGUMENT), `for ${String(bad)}`);
  }
});

void test("the protocol selects between udp and tcp entries of the same name", async () => {
  await useServicesFile("svc 5000/tcp\nsvc 5001/udp\nonlyudp 6000/udp\n");
  assert.equal(resolveService("svc"), 5000);
  assert.equal(resolveService("svc", "udp"), 5001);
  assert.equal(getServiceEntry("svc", "UDP")?.protocol, "udp");
  assert.equal(getServiceEntry("onlyudp"), undefined);
  assert.equal(resolveService("onlyudp", "udp"), 6000);
  assert.throws(() => resolveService("onlyudp"), isConfabError(ErrorCodes.UNKNOWN_SERVICE));
});

void test("names are case-sensitive", async () => {
  await useServicesFile("Mixed 7000/tcp\n");
  assert.equal(resolveService("Mixed"), 7000);
  assert.equal(getServiceEntry("mixed"), undefined);
});

// --- properties -------------------------------------------------------------------------------

const nameChar = fc.constantFrom(
  ...Array.from("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.+/:é€"),
);
const nameArb = fc.string({ unit: nameChar, minLength: 1, maxLength: 12 });
const protocolArb = fc.constantFrom("tcp", "udp", "sctp", "ddp");
const entryArb = fc
  .record({
    name: nameArb,
    port: fc.integer({ min: 0, max: 65535 }),
    aliases: fc.array(nameArb, { maxLength: 4 }),
    protocol: protocolArb,
  })
  .map((entry): ServiceEntry => ({ ...entry })); // fc.record builds null-prototype objects; deepEqual would tell them apart
const gapArb = fc.string({ unit: fc.constantFrom(" ", "\t"), minLength: 1, maxLength: 4 });
const optGapArb = fc.string({ unit: fc.constantFrom(" ", "\t"), maxLength: 3 });
const commentArb = fc.option(
  fc
    .tuple(
      optGapArb,
      fc.string({ maxLength: 10 }).map((s) => s.replace(/[\r\n]/g, "")),
    )
    .map(([gap, text]) => `${gap}#${text}`),
  { nil: "" },
);
const lineEndArb = fc.constantFrom("\n", "\r\n");
const protoCaseArb = fc.array(fc.boolean(), { minLength: 4, maxLength: 4 });

void test("property: well-formed entries rendered with random spacing, comments and line endings parse back exactly", () => {
  const renderedEntry = fc
    .tuple(
      entryArb,
      optGapArb,
      fc.array(gapArb, { minLength: 6, maxLength: 6 }),
      commentArb,
      lineEndArb,
      protoCaseArb,
      optGapArb,
    )
    .map(([entry, lead, gaps, comment, eol, upper, trail]) => {
      const proto = Array.from(entry.protocol)
        .map((c, i) => (upper[i] === true ? c.toUpperCase() : c))
        .join("");
      let line = `${lead}${entry.name}${gaps[0]}${entry.port}/${proto}`;
      entry.aliases.forEach((alias, i) => {
        line += `${gaps[(i + 1) % gaps.length]}${alias}`;
      });
      return { entry, text: `${line}${trail}${comment}${eol}` };
    });
  const noiseLine = fc.oneof(
    fc.tuple(optGapArb, lineEndArb).map(([gap, eol]) => gap + eol),
    fc
      .tuple(
        optGapArb,
        commentArb.filter((c) => c !== ""),
        lineEndArb,
      )
      .map(([gap, c, eol]) => gap + c + eol),
  );
  const lineArb = fc.oneof(
    { arbitrary: renderedEntry.map((r): { entry: ServiceEntry | undefined; text: string } => r), weight: 3 },
    {
      arbitrary: noiseLine.map((text): { entry: ServiceEntry | undefined; text: string } => ({
        entry: undefined,
        text,
      })),
      weight: 1,
    },
  );
  fc.assert(
    fc.property(fc.array(lineArb, { maxLength: 20 }), fc.boolean(), (lines, dropFinalNewline) => {
      let text = lines.map((l) => l.text).join("");
      if (dropFinalNewline) text = text.replace(/\r?\n$/, "");
      const expected = lines.flatMap((l) => (l.entry === undefined ? [] : [l.entry]));
      assert.deepEqual(parseServicesFile(text), expected);
    }),
  );
});

void test("property: parseServicesFile never throws and every port is an integer from 0 to 65535", () => {
  const noisy = fc.string({
    unit: fc.oneof(
      fc.constantFrom(
        " ",
        "\t",
        "\n",
        "\r",
        "#",
        "/",
        "0",
        "9",
        "6",
        "5",
        "tcp",
        "UDP",
        "-",
        "x",
        "65536",
        "99999999999999999999",
      ),
      fc.string({ unit: "binary", minLength: 1, maxLength: 1 }),
    ),
    maxLength: 200,
  });
  fc.assert(
    fc.property(fc.oneof(fc.string({ unit: "binary" }), noisy), (text) => {
      for (const entry of parseServicesFile(text)) {
        assert.ok(Number.isInteger(entry.port) && entry.port >= 0 && entry.port <= 65535, String(entry.port));
        assert.ok(entry.name !== "" && entry.protocol !== "");
        assert.equal(entry.protocol, entry.protocol.toLowerCase());
      }
    }),
    { numRuns: 500 },
  );
});
