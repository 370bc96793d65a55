import assert from "node:assert/strict";
import type { IncomingMessage } from "node:http";
import { test } from "node:test";
import { parseMonitorFlag } from "../cli/monitor-flag.js";
import { checkHost, checkKillRequest, checkTokenRequest, hostName, newToken, TOKEN_HEADER } from "./guard.js";

function req(headers: Record<string, string>): IncomingMessage {
  return { headers } as unknown as IncomingMessage;
}

test("Host headers: only loopback names pass, with or without a port", () => {
  assert.equal(hostName("127.0.0.1:9000"), "127.0.0.1");
  assert.equal(hostName("[::1]:9000"), "::1");
  assert.equal(hostName("[::1]"), "::1");
  assert.equal(hostName("LOCALHOST"), "LOCALHOST");
  assert.equal(hostName("a b"), undefined);
  assert.equal(hostName("user@127.0.0.1"), undefined);
  // The loopback rule itself is tested in comm/address.test.ts; here, that the Host check uses it.
  for (const ok of [
    "localhost:1",
    "LOCALHOST",
    "127.1.2.3:80",
    "[::1]:8080",
    "[0:0:0:0:0:0:0:1]",
    "[::ffff:127.0.0.1]:1",
  ])
    assert.equal(checkHost(req({ host: ok })), undefined, ok);
  for (const bad of ["0.0.0.0:1", "[::]:1", "10.0.0.1", "evil.localhost:1", "127.0.0.300:1"])
    assert.match(checkHost(req({ host: bad })) ?? "", /not a loopback address/, bad);
  assert.equal(checkHost(req({ host: "localhost:1234" })), undefined);
  assert.match(checkHost(req({ host: "127.0.0.1.nip.io:1234" })) ?? "", /not a loopback address/);
  assert.match(checkHost(req({})) ?? "", /no Host/);
});

test("kill requests: the token, and no other origin or site", () => {
  const token = newToken();
  assert.notEqual(newToken(), token);
  const host = "127.0.0.1:9000";
  const good = { host, origin: `http://${host}`, "sec-fetch-site": "same-origin", [TOKEN_HEADER]: token };
  assert.equal(checkKillRequest(req(good), token), undefined);
  assert.equal(
    checkKillRequest(req({ host, [TOKEN_HEADER]: token }), token),
    undefined,
    "curl: no Origin, no Sec-Fetch-Site",
  );
  assert.match(checkKillRequest(req({ ...good, [TOKEN_HEADER]: `${token}x` }), token) ?? "", /wrong/);
  assert.match(checkKillRequest(req({ host, origin: `http://${host}` }), token) ?? "", /no x-confab-token/);
  assert.match(checkKillRequest(req({ ...good, origin: "http://localhost:9000" }), token) ?? "", /Origin/);
  assert.match(checkKillRequest(req({ ...good, origin: "https://127.0.0.1:9000" }), token) ?? "", /Origin/);
  assert.match(checkKillRequest(req({ ...good, "sec-fetch-site": "same-site" }), token) ?? "", /same-site request/);
  // Reading recordings takes the same rules; the refusal names what was asked.
  assert.equal(checkTokenRequest(req(good), token, "read recordings"), undefined);
  assert.match(
    checkTokenRequest(req({ ...good, "sec-fetch-site": "cross-site" }), token, "read recordings") ?? "",
    /a cross-site request may not read recordings/,
  );
  assert.match(checkTokenRequest(req({ host }), token, "read recordings") ?? "", /no x-confab-token/);
});

test("--monitor [ADDR:]PORT", () => {
  assert.deepEqual(parseMonitorFlag("9000"), { port: 9000 });
  assert.deepEqual(parseMonitorFlag("127.0.0.1:0"), { port: 0, address: "127.0.0.1" });
  assert.deepEqual(parseMonitorFlag("localhost:9000"), { port: 9000, address: "localhost" });
  assert.deepEqual(parseMonitorFlag("[::1]:9000"), { port: 9000, address: "::1" });
  for (const bad of ["", "x", "::1:9000", "127.0.0.1:", "99999", "127.0.0.1:9000:1"]) {
    assert.throws(
      () => parseMonitorFlag(bad),
      { code: "ERR_INVALID_ARGUMENT", message: /--monitor takes \[ADDR:\]PORT/ },
      bad,
    );
  }
});
