// Token authentication: the authenticator on its own, then the listener server that uses it,
// end to end over loopback.
import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { ConfabError, ErrorCodes } from "../errors.js";
import { openTcpStream } from "../comm/client.js";
import { serverTerminate, startUpServer, type ServerProcess } from "../index.js";
import { captureReports, eventually, LineClient, sleep } from "../../test/support.js";
import { listenerServer } from "./listener-server.js";
import { parseTokenLine, tokenLine, validateToken } from "../comm/token-line.js";
import {
  DEFAULT_REFUSAL_DELAY_MS,
  parseTokenFile,
  peerKey,
  REFUSAL_LINE,
  TokenAuthenticator,
  type Admitted,
  type TokenThrottleOptions,
} from "./auth.js";

const TOKEN = "0123456789abcdef-test-token";
const servers: ServerProcess[] = [];
const clients: LineClient[] = [];
after(() => {
  for (const s of servers) serverTerminate(s);
  for (const c of clients) c.destroy();
  delete (globalThis as Record<string, unknown>).confabAuthPwned;
});

async function timed<T>(promise: Promise<T>): Promise<{ value: T; ms: number }> {
  const started = performance.now();
  const value = await promise;
  return { value, ms: performance.now() - started };
}

// ---------------------------------------------------------------------------------------------
// The authenticator

test("a token must be 16+ visible ASCII characters, and the error never quotes it", () => {
  assert.equal(validateToken(TOKEN), TOKEN);
  for (const bad of [
    "short-secret",
    "has a space in it, sixteen+",
    "ünïcödé-characters-here",
    "tab\tinside-the-token-x",
    "",
  ]) {
    assert.throws(
      () => validateToken(bad),
      (error: unknown) =>
        error instanceof ConfabError &&
        error.code === ErrorCodes.INVALID_ARGUMENT &&
        (bad === "" || !error.message.includes(bad)),
    );
  }
  assert.throws(
    () => new TokenAuthenticator("tiny"),
    (error: unknown) => error instanceof ConfabError && error.code === ErrorCodes.INVALID_ARGUMENT,
  );
});

test("a token line is the word token, one space and the secret", () => {
  assert.equal(tokenLine(TOKEN), `token ${TOKEN}`);
  assert.equal(parseTokenLine(`token ${TOKEN}`), TOKEN);
  assert.equal(parseTokenLine('"my listener"'), undefined);
  assert.equal(parseTokenLine("tokenfoo"), undefined);
  assert.equal(parseTokenLine("token "), "");
});

test("peers are remembered by IPv4 address, IPv6 /64 prefix, and Unix clients all as one", () => {
  assert.equal(peerKey("192.0.2.7"), "192.0.2.7");
  assert.equal(peerKey("::ffff:192.0.2.7"), "192.0.2.7");
  assert.equal(peerKey("2001:db8:1:2:aaaa::1"), "2001:db8:1:2::/64");
  assert.equal(peerKey("2001:db8:1:2:bbbb:cccc:dddd:eeee"), "2001:db8:1:2::/64");
  assert.equal(peerKey("2001:0db8:0001:0002::9"), "2001:db8:1:2::/64");
  assert.equal(peerKey("::1"), "0:0:0:0::/64");
  assert.equal(peerKey("fe80::1%eth0"), "fe80:0:0:0::/64");
  assert.equal(peerKey(undefined), "local");
});

test("the right token passes at once; a wrong or missing one fails only after the delay", async () => {
  const auth = new TokenAuthenticator(TOKEN, { refusalDelay: 150 });
  const right = await timed(auth.verify("192.0.2.1", TOKEN));
  assert.deepEqual(right.value, { user: undefined }, "a shared token's session has no user");
  assert.ok(right.ms < 100, `right token answered in ${right.ms} ms`);
  for (const presented of [
    "wrong-token-of-good-length",
    TOKEN.slice(0, -1),
    `${TOKEN}x`,
    "",
    "x".repeat(10_000),
    undefined,
  ]) {
    const wrong = await timed(new TokenAuthenticator(TOKEN, { refusalDelay: 150 }).verify("192.0.2.1", presented));
    assert.equal(wrong.value, false);
    assert.ok(wrong.ms >= 140, `refused after ${wrong.ms} ms`);
  }
});

test("each further failure of a peer doubles its delay, up to the cap; other peers are not slowed", async () => {
  const auth = new TokenAuthenticator(TOKEN, { refusalDelay: 100, maxRefusalDelay: 300 });
  const delays: number[] = [];
  for (let i = 0; i < 4; i++) delays.push((await timed(auth.verify("192.0.2.2", "nope-nope-nope-nope"))).ms);
  const [first = NaN, second = NaN, third = NaN, fourth = NaN] = delays;
  assert.ok(first >= 95, `first ${first}`);
  assert.ok(second >= 195, `second ${second}`);
  assert.ok(third >= 295, `third (capped) ${third}`);
  assert.ok(fourth >= 295 && fourth < 700, `fourth ${fourth}: capped at 300, not 800`);
  assert.equal(auth.failuresOf("192.0.2.2"), 4);
  const other = await timed(auth.verify("192.0.2.3", "nope-nope-nope-nope"));
  assert.ok(other.ms < 190, `a different peer starts at the first delay, not the fifth (${other.ms} ms)`);
});

test("parallel guesses from a failing peer are answered one after another, and the right token does not wait behind them", async () => {
  const auth = new TokenAuthenticator(TOKEN, { refusalDelay: 50, maxRefusalDelay: 10_000 });
  await auth.verify("192.0.2.4", "first-wrong-guess-xx");
  const started = performance.now();
  const settled: number[] = [];
  const guesses = [1, 2, 3].map((i) =>
    auth.verify("192.0.2.4", `parallel-wrong-guess-${i}`).then((ok) => {
      settled.push(i);
      return ok;
    }),
  );
  assert.equal(auth.pendingOf("192.0.2.4"), 3);
  // The right token gets in at once, while all three wrong ones still wait for their answers.
  assert.deepEqual(await auth.verify("192.0.2.4", TOKEN), { user: undefined });
  assert.deepEqual(settled, [], "no wrong guess was answered before the right token got in");
  assert.deepEqual(await Promise.all(guesses), [false, false, false]);
  const ms = performance.now() - started;
  assert.deepEqual(settled, [1, 2, 3], "answered in turn");
  // Serialised: 100 + 200 + 400 ms. All at once would take about 400.
  assert.ok(ms >= 650, `three parallel guesses took ${ms} ms`);
  assert.equal(auth.pendingOf("192.0.2.4"), 0);
});

test("a peer's failures waiting for their answers are bounded: past maxPendingPerPeer, attempts are refused at once without being judged", async () => {
  const auth = new TokenAuthenticator(TOKEN, { refusalDelay: 100, maxRefusalDelay: 100, maxPendingPerPeer: 3 });
  const early: (Admitted | false)[] = [];
  const guesses = Array.from({ length: 10 }, (_, i) =>
    auth.verify("192.0.2.6", `bounded-wrong-guess-${i}`).then((ok) => {
      early.push(ok);
      return ok;
    }),
  );
  // The seven past the bound are answered first (at once), while the three with places wait.
  await eventually(() => early.length >= 7, 2000, "the attempts past the bound are refused");
  assert.equal(auth.pendingOf("192.0.2.6"), 3);
  assert.equal(auth.pending, 3);
  assert.equal(auth.turnedAway, 7);
  assert.equal(auth.failuresOf("192.0.2.6"), 3, "an attempt turned away was never judged, so it is no failure");
  // While every place is taken, even the right token is turned away (at once, never kept
  // waiting): unjudged, it cannot be told from a guess.
  const whileFull = await timed(auth.verify("192.0.2.6", TOKEN));
  assert.equal(whileFull.value, false);
  assert.ok(whileFull.ms < 50, `turned away after ${whileFull.ms} ms`);
  // Another address is not affected.
  assert.deepEqual(await auth.verify("192.0.2.7", TOKEN), { user: undefined });
  assert.deepEqual(await Promise.all(guesses), Array<false>(10).fill(false));
  // Once the answers are due, the places are free again and the right token gets in at once.
  assert.equal(auth.pendingOf("192.0.2.6"), 0);
  assert.equal(auth.pending, 0);
  assert.deepEqual(await auth.verify("192.0.2.6", TOKEN), { user: undefined });
});

test("a client that gives up frees no place: its peer's place stays taken until the answer was due", async () => {
  const auth = new TokenAuthenticator(TOKEN, { refusalDelay: 300, maxRefusalDelay: 300, maxPendingPerPeer: 2 });
  const controllers = [new AbortController(), new AbortController()];
  const answers = controllers.map((c, i) => timed(auth.verify("192.0.2.8", `given-up-guess-${i}`, c.signal)));
  for (const c of controllers) c.abort();
  for (const answer of await Promise.all(answers)) {
    assert.equal(answer.value, false);
    assert.ok(answer.ms < 200, `an abandoned wait ends at once (${answer.ms} ms)`);
  }
  assert.equal(auth.pending, 0, "nothing is kept for a client that has gone");
  assert.equal(auth.pendingOf("192.0.2.8"), 2, "but the places stay taken");
  assert.equal(await auth.verify("192.0.2.8", "one-more-guess-xxxxx"), false);
  assert.equal(auth.turnedAway, 1, "closing connections does not buy a guesser more guesses");
});

test("answers waiting at once are bounded for all peers together (maxPending)", async () => {
  const auth = new TokenAuthenticator(TOKEN, {
    refusalDelay: 100,
    maxRefusalDelay: 100,
    maxPendingPerPeer: 2,
    maxPending: 4,
  });
  const guesses = [1, 2, 3].flatMap((peer) =>
    [1, 2].map((i) => auth.verify(`198.51.100.${peer}`, `overall-wrong-guess-${i}`)),
  );
  assert.equal(auth.pending, 4);
  assert.equal(auth.turnedAway, 2, "the newest two were refused at once");
  assert.deepEqual(await Promise.all(guesses), Array<boolean>(6).fill(false));
  assert.equal(auth.pending, 0);
});

test("the table of failing peers is bounded: the oldest are forgotten first", async () => {
  const auth = new TokenAuthenticator(TOKEN, { refusalDelay: 1, maxRefusalDelay: 1, maxPeers: 3 });
  await Promise.all(Array.from({ length: 50 }, (_, i) => auth.verify(`198.51.100.${i}`, "wrong-wrong-wrong-wrong")));
  assert.equal(auth.rememberedPeers, 3);
  assert.equal(auth.failuresOf("198.51.100.0"), 0, "the oldest was forgotten");
  assert.equal(auth.failuresOf("198.51.100.49"), 1);
});

test("a peer's failures are forgotten after forgetAfter", async () => {
  const auth = new TokenAuthenticator(TOKEN, { refusalDelay: 1, forgetAfter: 1000 });
  await auth.verify("192.0.2.5", "wrong-wrong-wrong-wrong");
  await auth.verify("192.0.2.5", "wrong-wrong-wrong-wrong");
  assert.equal(auth.failuresOf("192.0.2.5"), 2);
  await eventually(() => auth.failuresOf("192.0.2.5") === 0, 5000, "the peer is forgotten");
});

// ---------------------------------------------------------------------------------------------
// The listener server with a token

let server: ServerProcess;

async function client(): Promise<LineClient> {
  const c = await LineClient.connect(server.port);
  clients.push(c);
  return c;
}

/** Sends `text`, ends the sending side, and resolves to all the server said, and how long it took to close. */
async function exchange(text: string): Promise<{ received: string; ms: number }> {
  const c = await client();
  const started = performance.now();
  c.send(text);
  c.end();
  await c.closed(15_000);
  return { received: c.received, ms: performance.now() - started };
}

describe("a listener server with a token", () => {
  before(async () => {
    server = await startUpServer({ service: 0, token: TOKEN, nameTimeout: 3000 });
    servers.push(server);
  });

  test("with the right token first, the name line and inputs follow as usual, and the token is not echoed", async () => {
    const { received } = await exchange(`token ${TOKEN}\n"authorised"\n1 + 2\n`);
    assert.equal(received, "CL-USER 1 > 3\nCL-USER 2 > ");
    assert.ok(!received.includes(TOKEN));
  });

  test("CRLF line ends work for the token line too (telnet)", async () => {
    const { received } = await exchange(`token ${TOKEN}\r\n"telnet"\r\n'ok'\r\n`);
    assert.equal(received, "CL-USER 1 > 'ok'\nCL-USER 2 > ");
  });

  test("a wrong token gets the one refusal line after the delay, and nothing sent is evaluated or echoed", async () => {
    const { received, ms } = await exchange(`token wrong-${TOKEN}\n"intruder"\nglobalThis.confabAuthPwned = 1\n`);
    assert.equal(received, `${REFUSAL_LINE}\n`);
    assert.ok(ms >= DEFAULT_REFUSAL_DELAY_MS - 10, `refused after ${ms} ms`);
    await sleep(50);
    assert.equal((globalThis as Record<string, unknown>).confabAuthPwned, undefined);
  });

  test("a missing token (the name line first) gets the same refusal, and nothing is evaluated", async () => {
    const { received } = await exchange('"no token"\nglobalThis.confabAuthPwned = 2\n');
    assert.equal(received, `${REFUSAL_LINE}\n`);
    await sleep(50);
    assert.equal((globalThis as Record<string, unknown>).confabAuthPwned, undefined);
  });

  test("an overlong first line gets the same refusal, not an error that describes it", async () => {
    const { received } = await exchange(`token ${"x".repeat(6000)}\n`);
    assert.equal(received, `${REFUSAL_LINE}\n`);
  });

  test("repeated failures from one peer are refused ever more slowly, and the right token still works", async () => {
    // Earlier tests failed from 127.0.0.1 already: the next refusal waits at least 4 times the first delay.
    const { received, ms } = await exchange(`token another-wrong-one-here\n`);
    assert.equal(received, `${REFUSAL_LINE}\n`);
    assert.ok(ms >= 4 * DEFAULT_REFUSAL_DELAY_MS - 10, `the fourth refusal came after ${ms} ms`);
    const ok = await exchange(`token ${TOKEN}\n"after failures"\n6 * 7\n`);
    assert.equal(ok.received, "CL-USER 1 > 42\nCL-USER 2 > ");
  });

  test("a client that sends nothing gets the refusal line when the name timeout passes", async () => {
    const c = await client();
    await c.closed(6000);
    assert.equal(c.received, `${REFUSAL_LINE}\n`);
  });

  test("openTcpStream's token option sends the token line first", async () => {
    const stream = await openTcpStream("127.0.0.1", server.port, { token: TOKEN, readTimeout: 5000 });
    stream.writeLine('"from openTcpStream"');
    stream.writeLine("'hi'");
    stream.forceOutput();
    assert.equal(await stream.readLine(), "CL-USER 1 > 'hi'");
    stream.close();
  });

  test("a server without a token skips a token line: it is neither echoed nor evaluated", async () => {
    const plain = await startUpServer({ service: 0 });
    servers.push(plain);
    const c = await LineClient.connect(plain.port);
    clients.push(c);
    c.send(`token ${TOKEN}\n"plain"\n1 + 1\n`);
    c.end();
    await c.closed();
    assert.equal(c.received, "CL-USER 1 > 2\nCL-USER 2 > ");
  });

  test("token is for the listener server: with a function it is refused, and a weak token is refused", async () => {
    await assert.rejects(startUpServer({ service: 0, token: TOKEN, function: () => undefined }), (error: unknown) => {
      assert.ok(error instanceof ConfabError);
      assert.equal(error.code, ErrorCodes.INVALID_ARGUMENT);
      assert.ok(!error.message.includes(TOKEN));
      return true;
    });
    await assert.rejects(startUpServer({ service: 0, token: "password" }), (error: unknown) => {
      assert.ok(error instanceof ConfabError);
      assert.equal(error.code, ErrorCodes.INVALID_ARGUMENT);
      assert.ok(!error.message.includes("password"));
      return true;
    });
  });
});

// ---------------------------------------------------------------------------------------------
// Failures queued for one address do not keep the right token out

/** A listener server with a token and a quick throttle, and its authenticator to look at. */
async function throttledServer(throttle: TokenThrottleOptions): Promise<{ port: number; auth: TokenAuthenticator }> {
  let auth: TokenAuthenticator | undefined;
  const throttled = await startUpServer({
    service: 0,
    function: listenerServer({ token: TOKEN, nameTimeout: 20_000 }, { throttle, onAuthenticator: (a) => (auth = a) }),
  });
  servers.push(throttled);
  assert.ok(auth !== undefined);
  return { port: throttled.port, auth };
}

test("the right token gets its prompt at once while 20 wrong ones from the same address still wait for their answers", async () => {
  const { port, auth } = await throttledServer({ refusalDelay: 400, maxRefusalDelay: 400 });
  const wrong: LineClient[] = [];
  for (let i = 0; i < 20; i++) {
    const c = await LineClient.connect(port);
    clients.push(c);
    c.send(`token wrong-guess-number-${i}\n"guesser ${i}"\n`);
    wrong.push(c);
  }
  // All twenty judged and waiting: answered one after another, the last some 4 s from now.
  const answeredSoFar = (): number => wrong.filter((c) => c.received !== "").length;
  await eventually(
    () => auth.pendingOf("127.0.0.1") + answeredSoFar() === 20,
    5000,
    "the twenty wrong tokens are judged",
  );
  const answeredBefore = answeredSoFar();
  const right = await LineClient.connect(port);
  clients.push(right);
  right.send(`token ${TOKEN}\n"the right one"\n`);
  await right.until("CL-USER 1 > ", 2000);
  const answered = answeredSoFar();
  assert.ok(
    answered - answeredBefore <= 3 && answered <= 15,
    `the right token got in while ${20 - answered} of 20 refusals were outstanding`,
  );
  right.send("6 * 7\n");
  assert.match(await right.until("CL-USER 2 > "), /42/);
  right.end();
  // The wrong ones still get the one refusal, each in its turn.
  for (const c of wrong) {
    await c.closed(10_000);
    assert.equal(c.received, `${REFUSAL_LINE}\n`);
  }
  assert.equal(auth.pending, 0);
});

test("a peer's refusals waiting for their turn are bounded: past maxPendingPerPeer, connections are refused at once", async () => {
  const { port, auth } = await throttledServer({ refusalDelay: 800, maxRefusalDelay: 800, maxPendingPerPeer: 4 });
  const guessers: LineClient[] = [];
  for (let i = 0; i < 12; i++) {
    const c = await LineClient.connect(port);
    clients.push(c);
    c.send(`token wrong-guess-number-${i}\n`);
    guessers.push(c);
  }
  await eventually(() => guessers.filter((c) => c.ended).length >= 8, 5000, "the eight past the bound are refused");
  // Refused at once, before the first delayed answer was due.
  assert.equal(auth.pendingOf("127.0.0.1"), 4);
  assert.equal(auth.turnedAway, 8);
  assert.equal(guessers.filter((c) => !c.ended).length, 4, "four wait for their turn");
  for (const c of guessers) {
    await c.closed(5000);
    assert.equal(c.received, `${REFUSAL_LINE}\n`, "the same refusal, at once or in turn");
  }
  // The places are free once the answers were due: the right token gets in.
  const ok = await LineClient.connect(port);
  clients.push(ok);
  ok.send(`token ${TOKEN}\n"after the bound"\n'in'\n`);
  await ok.until("CL-USER 1 > 'in'");
  ok.end();
});

// ---------------------------------------------------------------------------------------------
// The non-loopback rule. 192.0.2.1 (TEST-NET-1) is no address of this machine: a server that
// passes the rule fails to bind (EADDRNOTAVAIL), so nothing is ever exposed by these tests.

const NOT_HERE = "192.0.2.1";

test("a listener server on a non-loopback address without authentication is refused, with how to enable one", async () => {
  for (const options of [{}, { tls: { key: "k", cert: "c" } }]) {
    await assert.rejects(startUpServer({ service: 0, address: NOT_HERE, ...options }), (error: unknown) => {
      assert.ok(error instanceof ConfabError);
      assert.equal(error.code, ErrorCodes.INSECURE_LISTENER);
      assert.match(error.message, /192\.0\.2\.1 without authentication/);
      assert.match(error.message, /token/);
      assert.match(error.message, /CONFAB_TOKEN or --token-file/);
      assert.match(error.message, /TLS with client certificates \(option tls: \{ key, cert, ca \}/);
      assert.match(error.message, /--tls-ca FILE/);
      return true;
    });
  }
});

test("with a token, or TLS with client certificates, a non-loopback listener server passes the rule", async () => {
  for (const options of [{ token: TOKEN }, { tls: { key: "k", cert: "c", ca: "a" } }]) {
    await assert.rejects(startUpServer({ service: 0, address: NOT_HERE, ...options }), (error: unknown) => {
      assert.ok(error instanceof ConfabError);
      assert.notEqual(error.code, ErrorCodes.INSECURE_LISTENER);
      return true;
    });
  }
});

test("a Unix socket counts as local: its listener server needs no authentication", async () => {
  const dir = await mkdtemp(join(tmpdir(), "confab-auth-"));
  try {
    const local = await startUpServer({ service: join(dir, "l.sock"), address: "0.0.0.0" });
    servers.push(local);
    const stream = await openTcpStream("localhost", local.address, { readTimeout: 5000 });
    stream.writeLine('"unix"');
    stream.writeLine("2 ** 10");
    stream.forceOutput();
    assert.equal(await stream.readLine(), "CL-USER 1 > 1024");
    stream.close();
    serverTerminate(local);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

// ---------------------------------------------------------------------------------------------
// Users, each with a token of their own

const ALICE = "alice-token-0123456789abcdef";
const BOB = "bob-token-0123456789abcdef-x";

test("a token file holds one token, or NAME TOKEN lines with # comments; errors name the line, never a token", () => {
  assert.equal(parseTokenFile(`  ${TOKEN}\n`, "t.txt"), TOKEN);
  assert.equal(parseTokenFile(`# the listener's token\n${TOKEN}\n\n`, "t.txt"), TOKEN);
  assert.deepEqual(parseTokenFile(`# users\nalice ${ALICE}\n\n  bob\t${BOB}  \r\n`, "users.txt"), {
    alice: ALICE,
    bob: BOB,
  });
  const refused = (text: string, message: RegExp): void => {
    assert.throws(
      () => parseTokenFile(text, "users.txt"),
      (error: unknown) =>
        error instanceof ConfabError &&
        error.code === ErrorCodes.INVALID_ARGUMENT &&
        message.test(error.message) &&
        !error.message.includes(ALICE) &&
        !error.message.includes(BOB),
      text,
    );
  };
  refused(`alice ${ALICE}\n${BOB}\n`, /users\.txt: .*a lone token must be alone/);
  refused(`alice ${ALICE} extra\n`, /users\.txt, line 1: expected NAME TOKEN/);
  refused(`alice ${ALICE}\nalice ${BOB}\n`, /users\.txt, line 2: "alice" is listed twice/);
  refused(`alice ${ALICE}\nbob ${ALICE}\n`, /bob's token is another user's too/);
  refused(`alice short\n`, /the token of alice must be 16 to 1024 characters/);
  refused(`al ice ${ALICE}\n`, /expected NAME TOKEN/);
  refused(`al"ice ${ALICE}\n`, /a user's name must be/);
  refused("# nothing here\n", /holds no token/);
});

test("with users, the right token says whose it is, at once; a function of users is asked at every attempt", async () => {
  const auth = new TokenAuthenticator({ alice: ALICE, bob: BOB }, { refusalDelay: 20 });
  assert.deepEqual(await auth.verify("192.0.2.20", ALICE), { user: "alice" });
  assert.deepEqual(await auth.verify("192.0.2.20", BOB), { user: "bob" });
  assert.equal(await auth.verify("192.0.2.20", TOKEN), false);
  let users: Record<string, string> = { alice: ALICE };
  const live = new TokenAuthenticator(() => users, { refusalDelay: 20 });
  assert.deepEqual(await live.verify("192.0.2.21", ALICE), { user: "alice" });
  assert.equal(await live.verify("192.0.2.22", BOB), false);
  users = { bob: BOB }; // alice revoked, bob added: no restart
  assert.deepEqual(await live.verify("192.0.2.23", BOB), { user: "bob" });
  assert.equal(await live.verify("192.0.2.24", ALICE), false);
});

test("credentials from a function that turn bad refuse every token, and are reported once, without the token", async () => {
  const { reports, restore } = captureReports();
  try {
    let users: Record<string, string> = { alice: ALICE };
    const live = new TokenAuthenticator(() => users, { refusalDelay: 10 });
    users = { alice: "short" };
    assert.equal(await live.verify("192.0.2.30", ALICE), false);
    assert.equal(await live.verify("192.0.2.31", "short"), false);
    assert.equal(reports.length, 1, "reported once, not once per attempt");
    assert.match(reports[0]?.what ?? "", /credentials/);
    assert.ok(!JSON.stringify(reports).includes(ALICE));
    users = { alice: ALICE };
    assert.deepEqual(await live.verify("192.0.2.32", ALICE), { user: "alice" }, "good again: admitted again");
  } finally {
    restore();
  }
});

test("two users with their own tokens each see their own name in ps() and in properties.user", async () => {
  const users = await startUpServer({ service: 0, users: { alice: ALICE, bob: BOB }, nameTimeout: 3000 });
  servers.push(users);
  const session = async (token: string, name: string): Promise<LineClient> => {
    const c = await LineClient.connect(users.port);
    clients.push(c);
    c.send(`token ${token}\n"${name}"\n`);
    await c.until("CL-USER 1 > ");
    return c;
  };
  const alice = await session(ALICE, "alice's session");
  const bob = await session(BOB, "bob's session");
  alice.send("mp.getCurrentProcess().properties.user\n");
  assert.match(await alice.until("CL-USER 2 > "), /'alice'/);
  bob.send("ps()\n");
  const table = await bob.until("CL-USER 2 > ");
  assert.match(table, /ID\s+NAME\s+USER\s+STATE/);
  assert.match(table, /alice's session\s+alice\s+running/);
  assert.match(table, /bob's session\s+bob\s+running/);
  assert.ok(!table.includes(ALICE) && !table.includes(BOB), "no token in ps()");
  await assert.rejects(
    startUpServer({ service: 0, users: { alice: ALICE }, token: TOKEN }),
    (error: unknown) => error instanceof ConfabError && /either token .* or users/.test(error.message),
  );
});
