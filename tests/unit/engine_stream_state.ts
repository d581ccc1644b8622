/**
 * The destination's stream state (domain/engine/dest_stream_state.ts) without sockets: the
 * frame orders a real source sends (precopy, postcopy with its package, a recovery) pass the
 * table; a frame out of order is refused with an error that names the frame, the state and
 * what the state takes; sections open and close in pairs and reset with a new stream. Pure
 * functions: no agent, no Worker.
 */
import assert from "node:assert/strict";
import fc from "fast-check";
import {
  frameName,
  STREAM_TABLE,
  type StreamState,
  StreamStates,
} from "../../domain/engine/dest_stream_state.ts";
import { FrameType, SectionKind, WireError } from "../../domain/wire/mod.ts";

const seed = Date.now();
console.log("fast-check seed", seed);

const T = FrameType;

/** Feeds `codes` through a fresh stream state (after the header); returns each state after. */
function walk(codes: readonly number[], resumed = false): StreamState[] {
  const s = new StreamStates();
  s.headerRead(resumed);
  return codes.map((c) => s.accept(c));
}

const PRECOPY = [
  T.CONFIG,
  T.OPEN_RETURN_PATH,
  T.PING,
  T.MULTIFD_SETUP,
  T.SECTION_START,
  T.SECTION_END,
  T.SECTION_START,
  T.PAGE_RUN,
  T.ZERO_RUN,
  T.XBZRLE_PAGE,
  T.COMPRESSED_PAGE,
  T.MULTIFD_SYNC,
  T.SECTION_END,
  T.GLOBAL_STATE,
  T.SECTION_FULL,
  T.EOF,
];

Deno.test("stream state: a precopy stream goes config → sections → device-state → eof", () => {
  const after = walk(PRECOPY);
  assert.equal(after[0], "sections");
  assert.equal(after.at(-3), "device-state");
  assert.equal(after.at(-2), "device-state");
  assert.equal(after.at(-1), "eof");
});

Deno.test("stream state: a postcopy stream runs through its package; a recovery resumes it", () => {
  const s = new StreamStates();
  s.headerRead();
  for (const c of [T.CONFIG, T.POSTCOPY_ADVISE, T.SECTION_START, T.SECTION_END]) s.accept(c);
  s.accept(T.POSTCOPY_DISCARD);
  assert.equal(s.accept(T.PACKAGED), "package");
  assert.equal(s.accept(T.POSTCOPY_LISTEN), "postcopy-listen");
  for (const c of [T.GLOBAL_STATE, T.SECTION_FULL, T.PING]) s.accept(c);
  assert.equal(s.accept(T.POSTCOPY_RUN), "postcopy-run");
  s.packageEnded();
  for (const c of [T.SECTION_START, T.PAGE_RUN, T.ZERO_RUN, T.PING]) s.accept(c);
  // The link breaks; a recovery's stream starts with its own header.
  s.headerRead(true);
  assert.equal(s.state, "recovery");
  for (const c of [T.RECV_BITMAP, T.PING, T.RECV_BITMAP]) s.accept(c);
  assert.equal(s.accept(T.POSTCOPY_RESUME), "postcopy-run");
  s.requireNoSection("the end of the stream"); // the cut stream's section went with it
  for (const c of [T.SECTION_START, T.PAGE_RUN, T.SECTION_END]) s.accept(c);
  assert.equal(s.accept(T.EOF), "eof");
});

Deno.test("stream state: a frame out of order is refused naming the frame and the state", () => {
  const cases: [number[], RegExp][] = [
    [[T.PAGE_RUN], /PAGE_RUN out of order in state config \(expected CONFIG, CANCEL\)/],
    [[T.CONFIG, T.CONFIG], /CONFIG out of order in state sections/],
    [
      [T.CONFIG, T.SECTION_FULL, T.PAGE_RUN],
      /PAGE_RUN out of order in state device-state \(expected GLOBAL_STATE, SECTION_FULL, PING, CANCEL, EOF\)/,
    ],
    [[T.CONFIG, T.POSTCOPY_LISTEN], /POSTCOPY_LISTEN out of order in state sections/],
    // A state that takes most frames names eight and how many more (the hostile-stream test
    // found the whole list past 400 characters: seed 1302749733).
    [
      [T.CONFIG, T.POSTCOPY_LISTEN],
      /in state sections \(expected SECTION_START, SECTION_END, (\w+, ){5}\w+ or \d+ more\)$/,
    ],
    [[T.CONFIG, T.PACKAGED, T.SECTION_FULL], /SECTION_FULL out of order in state package/],
    [[T.CONFIG, T.PACKAGED, T.POSTCOPY_LISTEN, T.PAGE_RUN], /in state postcopy-listen/],
    [[T.CONFIG, T.PACKAGED, T.PACKAGED], /PACKAGED out of order in state package/],
    [[T.CONFIG, T.POSTCOPY_RUN], /POSTCOPY_RUN out of order in state sections/],
    [[T.CONFIG, T.EOF, T.PING], /PING out of order in state eof \(expected nothing more\)/],
    [[T.CONFIG, T.RECV_BITMAP], /RECV_BITMAP out of order in state sections/],
    [[T.CONFIG, T.MULTIFD_HELLO], /MULTIFD_HELLO out of order in state sections/],
    [[T.CONFIG, 0x7f], /unexpected frame type 0x7f out of order in state sections/],
  ];
  for (const [codes, re] of cases) {
    assert.throws(() => walk(codes), (e) => e instanceof WireError && re.test(e.message), `${re}`);
  }
  assert.throws(() => walk([T.POSTCOPY_RESUME, T.XBZRLE_PAGE], true), /in state postcopy-run/);
  assert.throws(() => walk([T.POSTCOPY_RESUME, T.SECTION_FULL], true), /SECTION_FULL out of order/);
  assert.throws(() => walk([T.PAGE_RUN], true), /PAGE_RUN out of order in state recovery/);
});

Deno.test("stream state: after a package that did not run the guest, nothing is taken", () => {
  for (const inner of [[], [T.POSTCOPY_LISTEN], [T.POSTCOPY_LISTEN, T.SECTION_FULL]]) {
    const s = new StreamStates();
    s.headerRead();
    s.accept(T.CONFIG);
    s.accept(T.PACKAGED);
    for (const c of inner) s.accept(c);
    s.packageEnded();
    for (const c of [T.POSTCOPY_RUN, T.SECTION_FULL, T.PING, T.EOF]) {
      assert.throws(() => s.accept(c), /out of order .*the package ended before POSTCOPY_RUN/);
    }
  }
});

Deno.test("stream state: sections open and close in pairs; RAM only inside one", () => {
  const s = new StreamStates();
  s.headerRead();
  assert.throws(() => s.requireSection(), /RAM outside a section/);
  s.sectionStart({ kind: SectionKind.ITERATE, pass: 1, id: 1 });
  s.requireSection();
  assert.throws(() => s.requireNoSection("device state"), /device state inside a section/);
  assert.throws(() => s.sectionStart({ kind: SectionKind.ITERATE, pass: 2, id: 1 }), WireError);
  s.sectionEnd({ kind: SectionKind.ITERATE, pass: 1, id: 1 });
  assert.throws(() => s.requireSection(), /RAM outside a section/);
  assert.throws(() => s.headerRead(), /the stream header out of order in state config/);
});

Deno.test("stream state: every table target is a state and every name a frame type", () => {
  const states = Object.keys(STREAM_TABLE) as StreamState[];
  for (const [from, row] of Object.entries(STREAM_TABLE)) {
    for (const [frame, to] of Object.entries(row)) {
      assert.ok(states.includes(to!), `${from} --${frame}--> ${to}`);
      assert.ok(frame in FrameType, `${frame} is a frame type`);
    }
  }
  assert.equal(frameName(T.PAGE_RUN), "PAGE_RUN");
  assert.equal(frameName(0xee), "0xee");
});

Deno.test("stream state: any code sequence either passes the table or names the state (property)", () => {
  const codes = fc.array(fc.integer({ min: 0, max: 0x40 }), { maxLength: 24 });
  fc.assert(
    fc.property(codes, (cs) => {
      const s = new StreamStates();
      s.headerRead();
      for (const c of cs) {
        const before = s.state;
        try {
          const after = s.accept(c);
          assert.equal(STREAM_TABLE[before][frameName(c) as keyof typeof FrameType], after);
        } catch (e) {
          assert.ok(e instanceof WireError);
          assert.match(e.message, new RegExp(`out of order in state ${before} \\(expected`));
          assert.equal(s.state, before, "a refused frame leaves the state as it was");
          return;
        }
      }
    }),
    { seed, numRuns: 500 },
  );
});
