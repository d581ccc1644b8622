/**
 * The destination's sections, dispatched by section id (QEMU's find_se on load): a record
 * names a section id this agent loads, under the same name, in a version it loads, or the
 * stream is refused with an error that says which ("unknown section id 7", "section 'ram'
 * version 3 not supported (this agent loads 1)"). Live sections open with SECTION_START and
 * take the frames up to their SECTION_END; full ones come whole in SECTION_FULL. The stream
 * state (dest_stream_state.ts) keeps records from nesting; this table knows which loader the
 * open record belongs to.
 *
 * @module
 */
import { FrameType } from "../wire/frames.ts";
import type { SectionIdent, WireSection, WireSectionFull } from "../wire/sections.ts";
import { WireError } from "../wire/wire_error.ts";
import type { SectionLoader } from "./live_section.ts";

/** Frames a live section's record carries (they go to the open record's loader). */
export const SECTION_DATA: ReadonlySet<number> = new Set([
  FrameType.PAGE_RUN,
  FrameType.ZERO_RUN,
  FrameType.XBZRLE_PAGE,
  FrameType.COMPRESSED_PAGE,
  FrameType.RAM_USED,
  FrameType.GUEST_MODULE,
  FrameType.DISK_CONFIG,
  FrameType.DISK_DATA,
  FrameType.DISK_ZERO,
  FrameType.DISK_BITMAP,
]);

/** One incoming run's section loaders, by id (see the module doc). */
export class SectionTable {
  readonly #byId = new Map<number, SectionLoader>();
  /** Loaders whose load_setup ran. */
  readonly #setUp = new Set<SectionLoader>();
  /** Full sections whose record arrived. */
  readonly #full = new Set<SectionLoader>();
  #open: SectionLoader | null = null;

  /** A table of `loaders` (each id once). */
  constructor(loaders: readonly SectionLoader[]) {
    for (const l of loaders) {
      if (this.#byId.has(l.id)) throw new Error(`two sections with id ${l.id}`);
      this.#byId.set(l.id, l);
    }
  }

  /** The loader of section `id`, or a refusal naming the id. */
  #find(id: number): SectionLoader {
    const l = this.#byId.get(id);
    if (!l) throw new WireError(`migration stream: unknown section id ${id}`);
    return l;
  }

  /** The loader a START or FULL record names: the same name, a version it loads. */
  #resolve(rec: SectionIdent, kind: SectionLoader["kind"]): SectionLoader {
    const l = this.#find(rec.id);
    if (rec.name !== l.name) {
      throw new WireError(
        `migration stream: section id ${rec.id} is '${l.name}' here, the source calls it ` +
          `'${rec.name}'`,
      );
    }
    if (rec.version < 1 || rec.version > l.version) {
      throw new WireError(
        `migration stream: section '${l.name}' version ${rec.version} not supported ` +
          `(this agent loads ${l.version === 1 ? "1" : `1..${l.version}`})`,
      );
    }
    if (l.kind !== kind) {
      throw new WireError(
        kind === "live"
          ? `migration stream: section '${l.name}' is sent whole (SECTION_FULL), not opened`
          : `migration stream: section '${l.name}' is live, not sent whole`,
      );
    }
    return l;
  }

  /** A SECTION_START: its loader is the open one (set up at its first record). */
  start(rec: WireSection & SectionIdent): SectionLoader {
    const l = this.#resolve(rec, "live");
    if (!this.#setUp.has(l)) {
      l.loadSetup(rec.version);
      this.#setUp.add(l);
    }
    this.#open = l;
    return l;
  }

  /** A SECTION_END: the id must be one this agent loads; no record is open after it. */
  end(rec: WireSection): void {
    this.#find(rec.id);
    this.#open = null;
  }

  /** The loader of the open record (the stream state proved one is open). */
  get open(): SectionLoader {
    if (!this.#open) throw new WireError("migration stream: no section open");
    return this.#open;
  }

  /** A new stream (a recovery's): no record is open on it yet. */
  newStream(): void {
    this.#open = null;
  }

  /** A SECTION_FULL: its loader takes the body. */
  full(rec: WireSectionFull): void {
    const l = this.#resolve(rec, "full");
    l.loadFull(rec.version, rec.body);
    this.#full.add(l);
  }

  /** Names of the full sections whose record has not arrived (empty: all are here). */
  missingFull(): string[] {
    return [...this.#byId.values()]
      .filter((l) => l.kind === "full" && !this.#full.has(l))
      .map((l) => l.name);
  }

  /** A record boundary: every loader puts what it holds back in place. */
  async settle(): Promise<void> {
    for (const l of this.#byId.values()) await l.settle();
  }

  /** Before `completed`: every loader's writes on the device. */
  async flush(): Promise<void> {
    for (const l of this.#byId.values()) await l.flush?.();
  }

  /** load_cleanup of every loader. */
  cleanup(): void {
    for (const l of this.#byId.values()) l.loadCleanup();
  }
}
