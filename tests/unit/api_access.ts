/**
 * Issue 16, items 1, 2 and 5 on their own: which Host names a listener answers to, which
 * Origins are the agent's own, when the agent must not start without a token, and the
 * one-at-a-time gate and stream slots behind 429 and 503.
 */
import assert from "node:assert/strict";
import {
  exposureProblem,
  hostAllowed,
  hostNamesFor,
  normalizeHostName,
  parseListen,
} from "../../routes/api_access.ts";
import { isOwnOrigin } from "../../routes/host_guard.ts";
import { ExclusiveGate, StreamSlots } from "../../routes/limits.ts";

const LOCAL = () => ({ hostname: "box1", addresses: ["10.1.2.3", "fe80::1%eth0", "fd00::7"] });

function allowed(listen: string, hosts: string[] = []): (name: string) => boolean {
  const names = hostNamesFor(parseListen(listen), hosts, LOCAL);
  return (name) => hostAllowed(names, normalizeHostName(name));
}

Deno.test("a loopback listener answers to loopback names and --api-host names only", () => {
  for (const listen of ["127.0.0.1:8080", "localhost:8080", "[::1]:8080", "127.0.0.2:1"]) {
    const ok = allowed(listen, ["ferry.lab"]);
    for (const name of ["localhost", "LOCALHOST", "127.0.0.1", "127.200.0.9", "[::1]", "::1"]) {
      assert.equal(ok(name), true, `${listen} answers to ${name}`);
    }
    assert.equal(ok("ferry.lab"), true, "an --api-host name");
    for (const name of ["evil.example", "localhost.evil.example", "10.1.2.3", "box1", "[::2]"]) {
      assert.equal(ok(name), false, `${listen} refuses ${name}`);
    }
  }
  // URL normalisation: a numeric or hex spelling of 127.0.0.1 is 127.0.0.1.
  assert.equal(allowed("127.0.0.1:1")("2130706433"), true);
});

Deno.test("a listener on one address answers to it; on every address to the host's names", () => {
  const one = allowed("10.1.2.3:8080");
  assert.equal(one("10.1.2.3"), true);
  assert.equal(one("localhost"), false, "the loopback names reach another address");
  assert.equal(one("box1"), false);
  const every = allowed("0.0.0.0:8080", ["ferry.example"]);
  for (const name of ["10.1.2.3", "box1", "localhost", "127.0.0.1", "[fd00::7]", "ferry.example"]) {
    assert.equal(every(name), true, `0.0.0.0 answers to ${name}`);
  }
  assert.equal(every("evil.example"), false);
  assert.equal(allowed("[::]:8080")("[fd00::7]"), true);
  assert.equal(allowed("unix:/tmp/x.sock")("anything.example"), true, "a unix socket: any Host");
});

Deno.test("--listen and --api-host errors name the flag", () => {
  assert.throws(() => parseListen("8080"), /--listen expects HOST:PORT or unix:PATH/);
  assert.throws(() => parseListen("h:70000"), /--listen expects/);
  assert.throws(
    () => hostNamesFor(parseListen("127.0.0.1:1"), ["a/b"], LOCAL),
    /^Error: --api-host: 'a\/b' is not a host name or address$/,
  );
  assert.throws(
    () => hostNamesFor(parseListen("127.0.0.1:1"), ["name:80"], LOCAL),
    /--api-host: 'name:80'/,
  );
});

Deno.test("off loopback the agent needs a token or client certificates", () => {
  const none = { token: false, clientCertificates: false };
  for (const listen of ["127.0.0.1:8080", "localhost:0", "[::1]:1", "unix:/run/ferry.sock"]) {
    assert.equal(exposureProblem(parseListen(listen), none), null, listen);
  }
  for (const listen of ["0.0.0.0:8080", "[::]:8080", "10.1.2.3:8080", "box1:8080"]) {
    const problem = exposureProblem(parseListen(listen), none);
    assert.match(problem ?? "", /is not a loopback address/, listen);
    assert.match(problem ?? "", /--api-token/);
    assert.match(problem ?? "", /--api-tls CERT,KEY,CLIENT_CA/);
    const l = parseListen(listen);
    assert.equal(exposureProblem(l, { token: true, clientCertificates: false }), null);
    assert.equal(exposureProblem(l, { token: false, clientCertificates: true }), null);
  }
});

Deno.test("the agent's own origin is the request's host and port, nothing else", () => {
  const url = new URL("http://127.0.0.1:8080/migrations");
  assert.equal(isOwnOrigin("http://127.0.0.1:8080", url), true);
  assert.equal(isOwnOrigin("https://127.0.0.1:8080", url), true, "a TLS-terminating proxy");
  for (
    const origin of [
      "http://evil.example",
      "http://127.0.0.1:3000",
      "http://localhost:8080",
      "null",
      "file://",
      "chrome-extension://abc",
      "http://127.0.0.1:8080/path",
      "http://user@127.0.0.1:8080",
      "",
    ]
  ) {
    assert.equal(isOwnOrigin(origin, url), false, origin);
  }
  // Behind a TLS-terminating proxy the agent sees http and the Host the browser sent.
  const proxied = new URL("http://ferry.example/");
  assert.equal(isOwnOrigin("http://ferry.example", proxied), true);
  assert.equal(isOwnOrigin("https://ferry.example", proxied), true);
  assert.equal(isOwnOrigin("https://ferry.example:8443", proxied), false);
  assert.equal(isOwnOrigin("http://ferry.example:8080", proxied), false);
  assert.equal(isOwnOrigin("https://ferry.example", new URL("https://ferry.example/")), true);
});

Deno.test("the gate lets one in, queues a few in order, refuses beyond; a leaver frees its place", async () => {
  const gate = new ExclusiveGate(2);
  const first = await gate.enter();
  assert.ok(first);
  const order: string[] = [];
  const second = gate.enter()!.then((r) => (order.push("second"), r));
  const leaving = new AbortController();
  const left = gate.enter(leaving.signal)!;
  assert.equal(gate.enter(), null, "the queue holds 2");
  assert.equal(gate.waiting, 2);
  leaving.abort();
  assert.equal(await left, null, "an aborted waiter gets no turn");
  assert.equal(gate.waiting, 1);
  const third = gate.enter()!.then((r) => (order.push("third"), r));
  assert.equal(gate.running, 1);
  first!();
  first!(); // a second release is a no-op
  const r2 = await second;
  assert.equal(gate.running, 1, "the next one holds it at once");
  r2!();
  (await third)!();
  assert.deepEqual(order, ["second", "third"]);
  assert.equal(gate.running, 0);
  assert.equal(gate.maxRunning, 1);
  assert.ok(gate.retryAfterSeconds() >= 1);
});

Deno.test("stream slots: at most max open; a release gives one back once", () => {
  const slots = new StreamSlots(2);
  const a = slots.take();
  const b = slots.take();
  assert.ok(a && b);
  assert.equal(slots.take(), null);
  a();
  a();
  assert.equal(slots.open, 1);
  assert.ok(slots.take());
  assert.equal(slots.take(), null);
});
