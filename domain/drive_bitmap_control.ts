/**
 * The drives' named dirty bitmaps as commands (QEMU's block-dirty-bitmap-add and -remove):
 * checks the drive and the name, makes or removes one bitmap, and says why not with a stable
 * code. The bitmaps themselves: adapters/disk/drive_bitmaps.ts.
 *
 * @module
 */
import { bitmapsOf, type SharedDrive } from "../adapters/disk/drive.ts";
import { BITMAP_NAME, type BitmapInfo, MAX_BITMAPS } from "../adapters/disk/drive_bitmaps.ts";
import { DomainError } from "./errors.ts";

/** block-dirty-bitmap-add/-remove over one machine's drives. */
export class DriveBitmapControl {
  readonly #drives: () => readonly SharedDrive[];

  /** Over the drives `drives()` gives (the machine's). */
  constructor(drives: () => readonly SharedDrive[]) {
    this.#drives = drives;
  }

  /** block-dirty-bitmap-add: bitmap `name` of drive `id`, empty from now; returns it. */
  add(id: string, name: string): BitmapInfo {
    const drive = this.#drive(id);
    if (!BITMAP_NAME.test(name)) {
      throw new DomainError(
        "invalid-value",
        `Bitmap name '${name}' must be 1 to 64 printable ASCII characters without spaces`,
      );
    }
    const bitmaps = bitmapsOf(drive);
    const refused = bitmaps.add(name);
    if (refused === "exists") {
      throw new DomainError("wrong-state", `Bitmap already exists: ${name}`);
    }
    if (refused === "full") {
      throw new DomainError(
        "wrong-state",
        `Drive '${id}' has ${MAX_BITMAPS} dirty bitmaps already: remove one first`,
      );
    }
    return bitmaps.list().find((b) => b.name === name)!;
  }

  /** block-dirty-bitmap-remove. */
  remove(id: string, name: string): void {
    if (!bitmapsOf(this.#drive(id)).remove(name)) {
      throw new DomainError("not-found", `Dirty bitmap '${name}' not found`);
    }
  }

  #drive(id: string): SharedDrive {
    const d = this.#drives().find((x) => x.id === id);
    if (!d) {
      throw new DomainError("not-found", `Cannot find device='${id}'`, "DeviceNotFound");
    }
    return d;
  }
}
