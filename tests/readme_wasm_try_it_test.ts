/**
 * Issue 22 (its Checks): the README's "Try it: a real program, migrated" works pasted terminal
 * by terminal: the kvstore guest built from source, migrated between two agents while the
 * README's own client loop keeps writing to it. The blocks are read from README.md and run as
 * written, each in its own bash, with the substitutions of readme_blocks.ts only (this Deno,
 * free ports; `ctl`'s default agent follows through `FERRY_AGENT`); the agents' prepared
 * modules go to their default cache, shared by every test (helpers/wasm_guest.ts).
 * The client's commands must go to the source, then to the destination, never back; every
 * command it sent must be answered once, in order, numbered on across the switchover; what was
 * set on the source must be read back on the destination.
 */
import assert from "node:assert/strict";
import {
  asRun,
  isCommand,
  readmePorts,
  readmeSection,
  type Terminal,
  terminal,
  waitUp,
} from "./helpers/readme_blocks.ts";
import { waitFor } from "../harness/wait.ts";

/** The `data:` records of an output stream, in the order shown. */
function records(sse: string): { seq: number; text: string }[] {
  return [...sse.matchAll(/^data: (\{.*\})$/gm)].map((m) => JSON.parse(m[1]));
}

Deno.test({
  name: "README: the WebAssembly Try-it blocks migrate the kvstore under the client's commands",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    const { blocks, inline } = await readmeSection("Try it: a real program, migrated");
    assert.deepEqual([...blocks.keys()], [1, 2, 3, 4, 5], "terminals 1 to 5, in order");
    assert.deepEqual(inline.filter(isCommand), [], "every command is in a block run here");
    const ports = readmePorts();
    const src = `http://127.0.0.1:${ports.get("8080")}`;
    const dst = `http://127.0.0.1:${ports.get("8081")}`;
    const env = { FERRY_AGENT: src, NO_COLOR: "1" };
    const terminals: Terminal[] = [];
    const open = (n: number) => {
      const t = terminal(asRun(blocks.get(n)!, ports), env);
      terminals.push(t);
      return t;
    };
    try {
      const t1 = open(1);
      await waitUp(`${dst}/healthz`, t1, "terminal 1 (the build, then the destination)");
      assert.match(t1.output(), /guests\/build\/kvstore\.wasm\s+\d+ bytes/);
      const t2 = open(2);
      await waitUp(`${src}/healthz`, t2, "terminal 2 (the source)");
      const t3 = open(3);
      const t4 = open(4);
      const to = (port: string) => new RegExp(`^SET key\\d+ -> ${ports.get(port)}$`, "gm");
      const sent = (port: string) => t4.output().match(to(port))?.length ?? 0;
      await waitFor("terminal 4's client writing to the source", () => sent("8080") >= 3);
      const t5 = open(5);
      await waitFor("ctl watch's summary in terminal 5", () => /completed in/.test(t5.output()), {
        timeoutMs: 120_000,
      });
      await waitFor("5 commands from terminal 4 taken by the destination", () => sent("8081") >= 5);
      await t4.stop();

      // Terminal 4: the source, then the destination, never back.
      const sides = [...t4.output().matchAll(/^SET key(\d+) -> (\d+)$/gm)];
      assert.deepEqual(sides.map((m) => Number(m[1])), sides.map((_, i) => i + 1));
      const switched = sides.findIndex((m) => m[2] === String(ports.get("8081")));
      assert.ok(switched > 0, t4.output());
      assert.ok(sides.slice(switched).every((m) => m[2] === String(ports.get("8081"))));
      assert.match(t4.output(), /^\{"bytes":16\}$/m, "the FILL was taken");

      // Every answer once, in order: the source's (terminal 3), then the destination's
      // (terminal 5), numbered on. The client may have sent one more than it printed.
      const n = sides.length;
      const got = () => [...records(t3.output()), ...records(t5.output())];
      const lines = () => got().map((r) => r.text).join("").trimEnd().split("\n");
      const want = n + 3; // FILL, the SETs, GET key1 and COUNT from terminal 5
      await waitFor(`${want} answers in terminals 3 and 5`, () => lines().length >= want);
      const all = got();
      assert.deepEqual(all.map((r) => r.seq), all.map((_, i) => i + 1), "numbered on");
      const [first, ...rest] = lines();
      assert.equal(first, "OK 20000");
      const sets = rest.filter((l) => l === "OK").length;
      assert.ok(sets === n || sets === n + 1, `${sets} SETs answered, ${n} printed`);
      const asked = rest.filter((l) => l !== "OK");
      const count = rest.findIndex((l) => l.startsWith("COUNT "));
      const setBefore = rest.slice(0, count).filter((l) => l === "OK").length;
      assert.deepEqual(asked, ["VALUE value1", `COUNT ${20000 + setBefore}`], rest.join("|"));
    } finally {
      for (const t of terminals.reverse()) await t.stop();
    }
  },
});
