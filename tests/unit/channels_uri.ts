import assert from "node:assert/strict";
import fc from "fast-check";
import {
  formatMigrationUri,
  type MigrationUri,
  parseMigrationUri,
  UriError,
} from "../../adapters/channels/uri.ts";

Deno.test("parseMigrationUri: valid forms", () => {
  const cases: [string, "outgoing" | "incoming", MigrationUri][] = [
    ["tcp:127.0.0.1:4444", "outgoing", { kind: "tcp", host: "127.0.0.1", port: 4444 }],
    ["tcp:localhost:1", "outgoing", { kind: "tcp", host: "localhost", port: 1 }],
    ["tcp:dst.example:65535", "outgoing", { kind: "tcp", host: "dst.example", port: 65535 }],
    ["tcp:[::1]:4444", "outgoing", { kind: "tcp", host: "::1", port: 4444 }],
    ["tcp:[fe80::1%eth0]:7", "outgoing", { kind: "tcp", host: "fe80::1%eth0", port: 7 }],
    ["tcp:127.0.0.1:0", "incoming", { kind: "tcp", host: "127.0.0.1", port: 0 }],
    ["tcp::4444", "incoming", { kind: "tcp", host: "", port: 4444 }],
    ["tcp:[::]:0", "incoming", { kind: "tcp", host: "::", port: 0 }],
    ["unix:/tmp/mig.sock", "outgoing", { kind: "unix", path: "/tmp/mig.sock" }],
    ["unix:rel/a:b.sock", "incoming", { kind: "unix", path: "rel/a:b.sock" }],
    ["exec:gzip -c > guest.gz", "outgoing", { kind: "exec", command: "gzip -c > guest.gz" }],
    ["exec:cat a:b", "incoming", { kind: "exec", command: "cat a:b" }],
    ["file:/tmp/guest.mig", "outgoing", { kind: "file", path: "/tmp/guest.mig" }],
    ["file:x", "incoming", { kind: "file", path: "x" }],
    ["defer", "incoming", { kind: "defer" }],
  ];
  for (const [uri, dir, want] of cases) {
    assert.deepEqual(parseMigrationUri(uri, dir), want, uri);
  }
});

Deno.test("parseMigrationUri: invalid forms name the problem", () => {
  const longPath = "/tmp/" + "s".repeat(103);
  const cases: [string, "outgoing" | "incoming", string][] = [
    [
      "bogus:1",
      "outgoing",
      "Parameter 'uri' expects a valid migration protocol (one of tcp:HOST:PORT, unix:PATH, exec:CMD, file:PATH)",
    ],
    [
      "bogus:1",
      "incoming",
      "unknown migration protocol: bogus:1 (one of tcp:HOST:PORT, unix:PATH, exec:CMD, file:PATH, defer)",
    ],
    [
      "",
      "outgoing",
      "Parameter 'uri' expects a valid migration protocol (one of tcp:HOST:PORT, unix:PATH, exec:CMD, file:PATH)",
    ],
    [
      "",
      "incoming",
      "unknown migration protocol:  (one of tcp:HOST:PORT, unix:PATH, exec:CMD, file:PATH, defer)",
    ],
    [
      "TCP:127.0.0.1:1",
      "incoming",
      "unknown migration protocol: TCP:127.0.0.1:1 (one of tcp:HOST:PORT, unix:PATH, exec:CMD, file:PATH, defer)",
    ],
    [
      "defer",
      "outgoing",
      "Parameter 'uri' expects a valid migration protocol (one of tcp:HOST:PORT, unix:PATH, exec:CMD, file:PATH)",
    ],
    ["rdma:127.0.0.1:4444", "outgoing", "RDMA migration is not supported by this build"],
    ["rdma:127.0.0.1:4444", "incoming", "RDMA migration is not supported by this build"],
    ["fd:mig", "outgoing", "fd: migration is not supported (no monitor file descriptors in Ferry)"],
    ["fd:3", "incoming", "fd: migration is not supported (no monitor file descriptors in Ferry)"],
    ["tcp:x:abc", "outgoing", "invalid port in 'tcp:x:abc'"],
    ["tcp:x:65536", "incoming", "invalid port in 'tcp:x:65536'"],
    ["tcp:x:-1", "incoming", "invalid port in 'tcp:x:-1'"],
    ["tcp:x:44 ", "incoming", "invalid port in 'tcp:x:44 '"],
    ["tcp:x:4444,ipv4", "outgoing", "invalid port in 'tcp:x:4444,ipv4'"],
    ["tcp:x:0", "outgoing", "invalid port in 'tcp:x:0' (port 0 is for incoming only)"],
    ["tcp:x:", "outgoing", "missing port in 'tcp:x:'"],
    ["tcp:localhost", "outgoing", "missing port in 'tcp:localhost' (expected tcp:HOST:PORT)"],
    ["tcp:", "incoming", "missing port in 'tcp:' (expected tcp:HOST:PORT)"],
    ["tcp::4444", "outgoing", "missing host in 'tcp::4444'"],
    [
      "tcp:::1:4444",
      "outgoing",
      "IPv6 address must be in brackets in 'tcp:::1:4444' (e.g. tcp:[::1]:4444)",
    ],
    ["tcp:[::1:4444", "outgoing", "invalid IPv6 address in 'tcp:[::1:4444' (missing ']')"],
    ["tcp:[::1]", "outgoing", "missing port in 'tcp:[::1]'"],
    ["tcp:[::1]4444", "outgoing", "expected ':PORT' after ']' in 'tcp:[::1]4444'"],
    ["tcp:[]:4444", "incoming", "invalid IPv6 address in 'tcp:[]:4444'"],
    ["tcp:[host]:4444", "outgoing", "invalid IPv6 address in 'tcp:[host]:4444'"],
    ["tcp:a b:1", "outgoing", "invalid host in 'tcp:a b:1'"],
    ["unix:", "outgoing", "missing path in 'unix:'"],
    [
      `unix:${longPath}`,
      "incoming",
      `unix socket path too long in 'unix:${longPath}' (at most 107 bytes)`,
    ],
    ["exec:", "outgoing", "missing command in 'exec:'"],
    ["exec:   ", "incoming", "missing command in 'exec:   '"],
    ["file:", "outgoing", "missing path in 'file:'"],
  ];
  for (const [uri, dir, message] of cases) {
    assert.throws(
      () => parseMigrationUri(uri, dir),
      (err: unknown) => err instanceof UriError && err.message === message,
      `${dir} ${JSON.stringify(uri)} should fail with ${message}`,
    );
  }
});

Deno.test("parseMigrationUri: a 107-byte unix path is accepted", () => {
  const path = "/tmp/" + "s".repeat(102);
  assert.equal(new TextEncoder().encode(path).length, 107);
  assert.deepEqual(parseMigrationUri(`unix:${path}`, "incoming"), { kind: "unix", path });
});

Deno.test("formatMigrationUri round-trips through parseMigrationUri (property)", () => {
  const seed = Date.now();
  console.log("fast-check seed", seed);
  const host = fc.oneof(
    fc.ipV4(),
    fc.ipV6(),
    fc.domain(),
  );
  const text = fc.string({ minLength: 1, maxLength: 60 }).filter((s) => s.trim() !== "");
  const uri: fc.Arbitrary<MigrationUri> = fc.oneof(
    fc.record({
      kind: fc.constant("tcp" as const),
      host,
      port: fc.integer({ min: 1, max: 65535 }),
    }),
    fc.record({
      kind: fc.constant("unix" as const),
      path: fc.string({ minLength: 1, maxLength: 100 }),
    }),
    fc.record({ kind: fc.constant("exec" as const), command: text }),
    fc.record({ kind: fc.constant("file" as const), path: text }),
  );
  fc.assert(
    fc.property(uri, (u) => {
      const s = formatMigrationUri(u);
      assert.deepEqual(parseMigrationUri(s, "outgoing"), { ...u });
      assert.deepEqual(parseMigrationUri(s, "incoming"), { ...u });
      return true;
    }),
    { seed },
  );
  assert.equal(formatMigrationUri({ kind: "tcp", host: "::1", port: 4444 }), "tcp:[::1]:4444");
  assert.equal(formatMigrationUri({ kind: "defer" }), "defer");
});
