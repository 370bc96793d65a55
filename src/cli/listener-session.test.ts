// The flags a client command (connect, eval, mcp) reads into a listener endpoint.
import assert from "node:assert/strict";
import { test } from "node:test";
import { failsWith } from "../../test/support.js";
import { ErrorCodes } from "../errors.js";
import { listenerEndpoint } from "./listener-session.js";

test("listenerEndpoint reads the flags: HOST SERVICE, a Unix socket path, the timeout, and says what is wrong", () => {
  const tcp = listenerEndpoint({ name: "n" }, ["example.test", "10243"]);
  assert.deepEqual(
    [tcp.target, tcp.tls, tcp.token, tcp.name, tcp.connectTimeout],
    [{ host: "example.test", port: 10243 }, undefined, undefined, "n", 5000],
  );
  assert.deepEqual(listenerEndpoint({ host: "h" }, ["unix:/run/app.sock"]).target, {
    host: "h",
    path: "/run/app.sock",
  });
  assert.equal(listenerEndpoint({ "connect-timeout": "250" }, ["1"]).connectTimeout, 250);
  assert.match(listenerEndpoint({}, ["1"]).name, /.@./, "user@host by default");
  assert.throws(
    () => listenerEndpoint({ "connect-timeout": "soon" }, ["1"]),
    failsWith(ErrorCodes.INVALID_ARGUMENT, /--connect-timeout/),
  );
  assert.throws(
    () => listenerEndpoint({ cert: "c.pem" }, ["1"]),
    failsWith(ErrorCodes.INVALID_ARGUMENT, /--cert and --key go together/),
  );
});
