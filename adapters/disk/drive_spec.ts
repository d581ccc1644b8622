/**
 * `--drive id=ID,file=PATH,size=SIZE` parsing: sizes take the suffixes of `--ram`, and must
 * be whole 64 KiB blocks (DISK_BLOCK) up to 1 TiB; ids are unique.
 *
 * @module
 */
import { parseSize } from "../memory/guest_ram.ts";
import { DISK_BLOCK, type DriveSpec, MAX_DRIVE_SIZE, MAX_DRIVES } from "./drive.ts";

const ID = /^[A-Za-z0-9_.-]{1,64}$/;
const USAGE = "--drive expects id=ID,file=PATH,size=SIZE";

/** Parses one `--drive` value; throws a RangeError naming what is wrong. */
export function parseDrive(text: string): DriveSpec {
  const kv = new Map<string, string>();
  for (const part of text.split(",")) {
    const eq = part.indexOf("=");
    if (eq <= 0) throw new RangeError(`${USAGE}, got '${text}'`);
    const key = part.slice(0, eq).trim();
    if (!["id", "file", "size"].includes(key)) {
      throw new RangeError(`--drive takes no option '${key}'; ${USAGE}`);
    }
    if (kv.has(key)) throw new RangeError(`--drive: '${key}' given twice`);
    kv.set(key, part.slice(eq + 1).trim());
  }
  const id = kv.get("id"), file = kv.get("file"), size = kv.get("size");
  if (id === undefined || file === undefined || size === undefined) {
    throw new RangeError(`${USAGE}, got '${text}'`);
  }
  if (!ID.test(id)) throw new RangeError(`--drive: id '${id}' is not 1..64 of [A-Za-z0-9_.-]`);
  if (file === "") throw new RangeError("--drive: file is empty");
  const bytes = parseSize(size);
  if (bytes <= 0 || bytes % DISK_BLOCK !== 0 || bytes > MAX_DRIVE_SIZE) {
    throw new RangeError(
      `--drive: size ${size} is not a positive multiple of ${DISK_BLOCK} up to 1T`,
    );
  }
  return { id, file, size: bytes };
}

/** Checks a list of drives: ids once, at most {@link MAX_DRIVES}. */
export function checkDrives(specs: readonly DriveSpec[]): void {
  if (specs.length > MAX_DRIVES) throw new RangeError(`at most ${MAX_DRIVES} --drive`);
  const seen = new Set<string>();
  for (const d of specs) {
    if (seen.has(d.id)) throw new RangeError(`--drive: id '${d.id}' given twice`);
    seen.add(d.id);
  }
}

/**
 * Checks `spec`'s image before anything is built: missing (it will be created) or empty (it
 * will be sized), else a regular file of exactly `size` bytes.
 */
export function checkDriveFile(spec: DriveSpec): void {
  let info: Deno.FileInfo;
  try {
    info = Deno.statSync(spec.file);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return;
    throw new RangeError(`--drive ${spec.id}: cannot read ${spec.file}: ${(e as Error).message}`);
  }
  if (!info.isFile) throw new RangeError(`--drive ${spec.id}: ${spec.file} is not a file`);
  if (info.size !== 0 && info.size !== spec.size) {
    throw new RangeError(
      `--drive ${spec.id}: ${spec.file} has ${info.size} bytes, not the size ${spec.size} given`,
    );
  }
}
