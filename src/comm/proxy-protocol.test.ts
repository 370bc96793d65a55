import assert from "node:assert/strict";
import net from "node:net";
import { after, test } from "node:test";
import fc from "fast-check";
import { parseProxyHeader, readProxyHeader, BAD_PROXY_HEADER } from "./proxy-protocol.js";

const sockets: net.Socket[] = [];
after(() => {
  for (const s of sockets) s.destroy();
});

function v2(command: number, family: number, body: Buffer): Buffer {
  const head = Buffer.from([
    0x0d,
    0x0a,
    0x0d,
    0x0a,
    0x00,
    0x0d,
    0x0a,
    0x51,
    0x55,
    0x49,
    0x54,
    0x0a,
    0x20 | command,
    family,
    0,
    0,
  ]);
  head.writeUInt16BE(body.length, 14);
  return Buffer.concat([head, body]);
}

function v2ipv4(src: number[], dst: number[], sport: number, dport: number, tlv = Buffer.alloc(0)): Buffer {
  const body = Buffer.alloc(12);
  Buffer.from(src).copy(body, 0);
  Buffer.from(dst).copy(body, 4);
  body.writeUInt16BE(sport, 8);
  body.writeUInt16BE(dport, 10);
  return v2(1, 0x11, Buffer.concat([body, tlv]));
}

test("a v1 TCP4 line gives the client's address and port", () => {
  const parsed = parseProxyHeader(Buffer.from("PROXY TCP4 192.0.2.7 198.51.100.1 56324 443\r\nhello"));
  assert.deepEqual(parsed, {
    kind: "header",
    header: {
      version: 1,
      sourceAddress: "192.0.2.7",
      sourcePort: 56324,
      destinationAddress: "198.51.100.1",
      destinationPort: 443,
    },
    length: 45,
  });
});

test("v1 TCP6 and UNKNOWN are understood", () => {
  const six = parseProxyHeader(Buffer.from("PROXY TCP6 2001:db8::1 ::1 4000 80\r\n"));
  assert.equal(six.kind === "header" && six.header.sourceAddress, "2001:db8::1");
  const unknown = parseProxyHeader(Buffer.from("PROXY UNKNOWN\r\n"));
  assert.deepEqual(unknown, { kind: "header", header: { version: 1 }, length: 15 });
});

test("v2 PROXY over IPv4 and IPv6, and v2 LOCAL, are understood; TLVs are skipped", () => {
  const four = parseProxyHeader(
    Buffer.concat([
      v2ipv4([10, 0, 0, 9], [10, 0, 0, 1], 5000, 10243, Buffer.from([0x04, 0, 1, 0xff])),
      Buffer.from("data"),
    ]),
  );
  assert.deepEqual(four, {
    kind: "header",
    header: {
      version: 2,
      sourceAddress: "10.0.0.9",
      sourcePort: 5000,
      destinationAddress: "10.0.0.1",
      destinationPort: 10243,
    },
    length: 32,
  });
  const addr6 = Buffer.alloc(36);
  addr6.writeUInt16BE(0x2001, 0);
  addr6.writeUInt16BE(0x0db8, 2);
  addr6.writeUInt16BE(1, 14);
  addr6.writeUInt16BE(1, 30);
  addr6.writeUInt16BE(7000, 32);
  addr6.writeUInt16BE(80, 34);
  const six = parseProxyHeader(v2(1, 0x21, addr6));
  assert.equal(six.kind === "header" && six.header.sourceAddress, "2001:db8::1");
  assert.equal(six.kind === "header" && six.header.destinationAddress, "::1");
  assert.deepEqual(parseProxyHeader(v2(0, 0, Buffer.alloc(0))), { kind: "header", header: { version: 2 }, length: 16 });
});

test("malformed or missing headers are invalid, with a reason", () => {
  for (const bad of [
    "GET / HTTP/1.1\r\n",
    "PROXY TCP4 1.2.3.4 5.6.7.8 99999 1\r\n",
    "PROXY TCP4 ::1 ::1 1 2\r\n",
    "PROXY TCP5 a b 1 2\r\n",
    `PROXY ${"x".repeat(120)}`,
  ]) {
    const parsed = parseProxyHeader(Buffer.from(bad));
    assert.equal(parsed.kind, "invalid", bad);
  }
  const wrongVersion = v2ipv4([1, 2, 3, 4], [5, 6, 7, 8], 1, 2);
  wrongVersion[12] = 0x31;
  assert.equal(parseProxyHeader(wrongVersion).kind, "invalid");
});

test("a v2 header too short for its family's addresses is invalid, naming the family", () => {
  assert.deepEqual(parseProxyHeader(v2(1, 0x11, Buffer.alloc(11))), {
    kind: "invalid",
    reason: "PROXY v2 IPv4 addresses are truncated",
  });
  assert.deepEqual(parseProxyHeader(v2(1, 0x21, Buffer.alloc(35))), {
    kind: "invalid",
    reason: "PROXY v2 IPv6 addresses are truncated",
  });
  assert.equal(parseProxyHeader(v2(1, 0x21, Buffer.alloc(36))).kind, "header");
});

test("property: any prefix of a valid header asks for more, the whole parses back", () => {
  const octet = fc.integer({ min: 0, max: 255 });
  const portArb = fc.integer({ min: 0, max: 65535 });
  fc.assert(
    fc.property(
      fc.tuple(octet, octet, octet, octet),
      fc.tuple(octet, octet, octet, octet),
      portArb,
      portArb,
      fc.boolean(),
      (src, dst, sport, dport, binary) => {
        const header = binary
          ? v2ipv4(src, dst, sport, dport)
          : Buffer.from(`PROXY TCP4 ${src.join(".")} ${dst.join(".")} ${sport} ${dport}\r\n`);
        for (let cut = 0; cut < header.length; cut++)
          assert.equal(parseProxyHeader(header.subarray(0, cut)).kind, "more");
        const parsed = parseProxyHeader(Buffer.concat([header, Buffer.from("payload")]));
        assert.ok(parsed.kind === "header");
        assert.equal(parsed.length, header.length);
        assert.equal(parsed.header.sourceAddress, src.join("."));
        assert.equal(parsed.header.sourcePort, sport);
        assert.equal(parsed.header.destinationPort, dport);
      },
    ),
    { numRuns: 200 },
  );
});

test("property: arbitrary bytes never throw and never claim more than they have", () => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 300 }), fc.boolean(), (bytes, withSignature) => {
      const data = withSignature
        ? Buffer.concat([Buffer.from([0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a]), bytes])
        : Buffer.from(bytes);
      const parsed = parseProxyHeader(data);
      if (parsed.kind === "header") assert.ok(parsed.length <= data.length);
    }),
    { numRuns: 500 },
  );
});

async function acceptedPair(): Promise<{ client: net.Socket; server: net.Socket }> {
  const listener = net.createServer({ pauseOnConnect: true, allowHalfOpen: true });
  await new Promise<void>((resolve) => listener.listen(0, "127.0.0.1", resolve));
  const accepted = new Promise<net.Socket>((resolve) => listener.once("connection", resolve));
  const client = net.connect((listener.address() as net.AddressInfo).port, "127.0.0.1");
  const server = await accepted;
  listener.close();
  sockets.push(client, server);
  return { client, server };
}

test("readProxyHeader sets the socket's peer to the client and loses no byte after the header", async () => {
  const { client, server } = await acceptedPair();
  client.write("PROXY TCP4 203.0.113.5 127.0.0.1 40000 10243\r\nfirst line\n");
  const header = await readProxyHeader(server, 2000);
  assert.equal(header.sourceAddress, "203.0.113.5");
  assert.equal(server.remoteAddress, "203.0.113.5");
  assert.equal(server.remotePort, 40000);
  assert.equal(server.remoteFamily, "IPv4");
  const rest = await new Promise<string>((resolve) => {
    server.setEncoding("utf8");
    server.once("data", resolve);
    server.resume();
  });
  assert.equal(rest, "first line\n");
});

test("readProxyHeader rejects a connection without a header, and one that sends nothing in time", async () => {
  const plain = await acceptedPair();
  plain.client.write("hello\n");
  await assert.rejects(readProxyHeader(plain.server, 2000), {
    code: BAD_PROXY_HEADER,
    message: /did not start with one/,
  });
  const silent = await acceptedPair();
  await assert.rejects(readProxyHeader(silent.server, 100), { code: BAD_PROXY_HEADER, message: /within 100 ms/ });
});
