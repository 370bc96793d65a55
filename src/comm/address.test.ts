import assert from "node:assert/strict";
import { test } from "node:test";
import { ConfabError, ErrorCodes } from "../errors.js";
import { assertListenerExposure } from "../listener/listener-server.js";
import { formatHostPort, isLoopback, isSocketPath } from "./address.js";

test("formatHostPort: host:port, IPv6 in brackets, a Unix socket's path on its own", () => {
  assert.equal(formatHostPort("127.0.0.1", 10243), "127.0.0.1:10243");
  assert.equal(formatHostPort("localhost", "?"), "localhost:?");
  assert.equal(formatHostPort("::1", 5432), "[::1]:5432");
  assert.equal(formatHostPort("::ffff:127.0.0.1", 80), "[::ffff:127.0.0.1]:80");
  assert.equal(formatHostPort("fe80::1%eth0", 22), "[fe80::1%eth0]:22");
  assert.equal(formatHostPort("/run/app.sock", 0), "/run/app.sock");
  assert.equal(formatHostPort("\\\\.\\pipe\\confab", 0), "\\\\.\\pipe\\confab");
});

test("isSocketPath: paths are, addresses and host names are not", () => {
  for (const path of ["/tmp/x.sock", "/run/app/listener", "\\\\.\\pipe\\confab"]) assert.ok(isSocketPath(path), path);
  for (const host of ["127.0.0.1", "::1", "localhost", "example.com", "fe80::1%eth0"])
    assert.ok(!isSocketPath(host), host);
});

test("isLoopback: localhost in any case, 127.0.0.0/8, ::1 in every spelling, IPv4-mapped loopback", () => {
  for (const ok of [
    "localhost",
    "Localhost",
    "LOCALHOST",
    "127.0.0.1",
    "127.1.2.3",
    "127.255.255.255",
    "::1",
    "0:0:0:0:0:0:0:1",
    "0000:0000:0000:0000:0000:0000:0000:0001",
    "::ffff:127.0.0.1",
    "::FFFF:127.9.9.9",
    "::ffff:7f00:1",
  ]) {
    assert.ok(isLoopback(ok), ok);
  }
});

test("isLoopback: wildcards, other addresses, look-alike names and malformed addresses are not loopback", () => {
  for (const bad of [
    "",
    "0.0.0.0",
    "::",
    "10.0.0.1",
    "128.0.0.1",
    "126.255.255.255",
    "192.0.2.1",
    "::2",
    "::ffff:10.0.0.1",
    "fe80::1",
    "127.0.0.1.evil.example",
    "127.0.0.1.nip.io",
    "localhost.evil.example",
    "evil.localhost",
    "localhost:80",
    "127.0.0.300",
    "127.1",
    "127.0.0.1/8",
    "[::1]",
    " 127.0.0.1",
  ]) {
    assert.ok(!isLoopback(bad), JSON.stringify(bad));
  }
});

test("the listener server's exposure rule is the same loopback rule", () => {
  for (const local of ["127.0.0.2", "0:0:0:0:0:0:0:1", "LOCALHOST", "::ffff:127.0.0.1"])
    assertListenerExposure({}, local);
  for (const exposed of ["0.0.0.0", "::", "192.0.2.1", "127.0.0.300"]) {
    assert.throws(
      () => {
        assertListenerExposure({}, exposed);
      },
      (error: unknown) => error instanceof ConfabError && error.code === ErrorCodes.INSECURE_LISTENER,
      exposed,
    );
  }
});
