/**
 * Where the destination's loader stands in the stream, as an explicit state and a table of
 * the frames each state takes (and the state each leads to). A frame the table does not
 * allow in the current state is refused with an error that names both, before any of its
 * bytes act. Within it, the open section record: RAM travels only inside one, records do not
 * nest, and a stream does not end inside one (which section a record is, section_table.ts). docs/wire-format.md ("Stream order") says the same.
 *
 * ```
 * header ─▶ config ─CONFIG─▶ sections ─GLOBAL_STATE/SECTION_FULL─▶ device-state ─EOF─▶ eof
 *                               │ └──────────────────────EOF──────────────────────▶ eof
 *                               └─PACKAGED─▶ package ─POSTCOPY_LISTEN─▶ postcopy-listen
 *                                                 postcopy-listen ─POSTCOPY_RUN─▶ postcopy-run
 *           recovery (a resumed stream) ─POSTCOPY_RESUME─▶ postcopy-run ─EOF─▶ eof
 * ```
 *
 * @module
 */
import { checkSectionEnd, checkSectionStart } from "../wire/checks.ts";
import type { WireSection } from "../wire/sections.ts";
import { FrameType } from "../wire/frames.ts";
import { WireError } from "../wire/wire_error.ts";

/** Frames an out-of-order refusal names at most (its text stays short). */
const MAX_NAMED = 8;
/** The loader's position in the stream (see the module doc). */
export type StreamState =
  | "header"
  | "config"
  | "sections"
  | "device-state"
  | "package"
  | "postcopy-listen"
  | "postcopy-run"
  | "recovery"
  | "eof";

type FrameName = keyof typeof FrameType;

/** Frames that carry pages or sections (before the switchover and in postcopy). */
const PAGES = ["SECTION_START", "SECTION_END", "PAGE_RUN", "ZERO_RUN"] as const;

/**
 * Per state: each frame it takes and the state after it (the same state: it stays). The
 * stream header is not a frame: {@link StreamStates.headerRead} leaves `header`.
 */
export const STREAM_TABLE: Readonly<
  Record<StreamState, Readonly<Partial<Record<FrameName, StreamState>>>>
> = {
  header: {},
  config: { CONFIG: "sections", CANCEL: "config" },
  sections: {
    ...same("sections", [
      ...PAGES,
      "XBZRLE_PAGE",
      "COMPRESSED_PAGE",
      "RAM_USED",
      "GUEST_MODULE",
      "DISK_CONFIG",
      "DISK_DATA",
      "DISK_ZERO",
      "DISK_BITMAP",
      "OPEN_RETURN_PATH",
      "PING",
      "POSTCOPY_ADVISE",
      "POSTCOPY_DISCARD",
      "MULTIFD_SETUP",
      "MULTIFD_SYNC",
      "COLO_ENABLE",
      "CANCEL",
    ]),
    GLOBAL_STATE: "device-state",
    SECTION_FULL: "device-state",
    PACKAGED: "package",
    // A stream that ends here lacks the device state: the completion says so.
    EOF: "eof",
  },
  "device-state": {
    ...same("device-state", ["GLOBAL_STATE", "SECTION_FULL", "PING", "CANCEL"]),
    EOF: "eof",
  },
  package: { POSTCOPY_LISTEN: "postcopy-listen" },
  "postcopy-listen": {
    ...same("postcopy-listen", ["GLOBAL_STATE", "SECTION_FULL", "PING"]),
    POSTCOPY_RUN: "postcopy-run",
  },
  "postcopy-run": {
    // GLOBAL_STATE is still taken (and checked) here; the guest's runstate was set at RUN.
    ...same("postcopy-run", [...PAGES, "GLOBAL_STATE", "PING", "CANCEL"]),
    EOF: "eof",
  },
  recovery: {
    ...same("recovery", ["RECV_BITMAP", "PING"]),
    POSTCOPY_RESUME: "postcopy-run",
  },
  eof: {},
};

function same(
  state: StreamState,
  names: readonly FrameName[],
): Partial<Record<FrameName, StreamState>> {
  return Object.fromEntries(names.map((n) => [n, state]));
}

const NAMES = new Map<number, FrameName>(
  (Object.entries(FrameType) as [FrameName, number][]).map(([n, code]) => [code, n]),
);

/** A frame code's name (`PAGE_RUN`), or its hex code when it has none. */
export function frameName(code: number): string {
  return NAMES.get(code) ?? `0x${code.toString(16).padStart(2, "0")}`;
}

/** One stream's state, moved only through {@link STREAM_TABLE}. */
export class StreamStates {
  #state: StreamState = "header";
  /** The section open on this stream, if any. */
  #section: WireSection | null = null;
  /** The frames come from inside a PACKAGED frame. */
  #inPackage = false;

  /** Where the stream stands. */
  get state(): StreamState {
    return this.#state;
  }

  /** The stream header was read: a new stream (`config`) or a resumed one (`recovery`). */
  headerRead(resumed = false): void {
    if (this.#state !== "header" && !resumed) this.#refuse("the stream header");
    this.#state = resumed ? "recovery" : "config";
    this.#section = null; // a new stream: a cut one's open section is gone with it
  }

  /** A SECTION_START's section opens (checked against the one open: no nesting). */
  sectionStart(s: WireSection): void {
    checkSectionStart(this.#section, s);
    this.#section = s;
  }

  /** A SECTION_END's section closes (it must be the open one). */
  sectionEnd(s: WireSection): void {
    checkSectionEnd(this.#section, s);
    this.#section = null;
  }

  /** RAM travels only inside a section on the main stream (docs/wire-format.md). */
  requireSection(): void {
    if (!this.#section) throw new WireError("migration stream: RAM outside a section");
  }

  /** Device state and the end of the stream come outside every section. */
  requireNoSection(what: string): void {
    if (this.#section) throw new WireError(`migration stream: ${what} inside a section`);
  }

  /** Takes frame `code` in the current state (or refuses it); returns the state after it. */
  accept(code: number): StreamState {
    const name = NAMES.get(code);
    const what = name ?? `unexpected frame type ${frameName(code)}`;
    const packaged = this.#state === "package" || this.#state === "postcopy-listen";
    if (packaged && !this.#inPackage) {
      // The package is read whole before it acts; one that ended before RUN ran nothing.
      this.#refuse(what, "the package ended before POSTCOPY_RUN");
    }
    const next = name === undefined ? undefined : STREAM_TABLE[this.#state][name];
    if (next === undefined) this.#refuse(what);
    if (next === "package") this.#inPackage = true;
    this.#state = next;
    return next;
  }

  /** A package's frames are done: what follows is the main stream's again. */
  packageEnded(): void {
    this.#inPackage = false;
  }

  #refuse(what: string, why?: string): never {
    const allowed = Object.keys(STREAM_TABLE[this.#state]);
    // Bounded: a state that takes most frames names the first few and how many more.
    const named = allowed.length > MAX_NAMED
      ? `${allowed.slice(0, MAX_NAMED).join(", ")} or ${allowed.length - MAX_NAMED} more`
      : allowed.join(", ");
    const expected = allowed.length ? `expected ${named}` : "expected nothing more";
    throw new WireError(
      `migration stream: ${what} out of order in state ${this.#state} (${why ?? expected})`,
    );
  }
}
