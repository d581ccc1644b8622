/**
 * The device state as a section sent whole (QEMU's vmstate sections, sent once as FULL
 * records in the completion): the vCPU's registers, and a WebAssembly guest's own state,
 * saved with the vCPU stopped (adapters/memory/device_state.ts lays the bytes out). The
 * source side is {@link DeviceSection}; the destination's is {@link DeviceSectionLoader}.
 *
 * @module
 */
import { WireError } from "../wire/wire_error.ts";
import type { FrameSink, LiveSection, PendingBytes, SectionLoader } from "./live_section.ts";
import { NOTHING_PENDING } from "./live_section.ts";
import { encodeSectionFull } from "../wire/sections.ts";

/** The device-state section's wire identity (docs/wire-format.md, "Sections"). */
export const DEVICE_SECTION = { id: 2, name: "device", version: 1 } as const;

/** What saves and loads the device state (the vCPU's control). */
export interface DeviceStateHolder {
  /** The device state of the stopped vCPU. */
  saveDeviceState(): Uint8Array;
  /** Checks `bytes` completely, then installs them; throws changing nothing. */
  loadDeviceState(bytes: Uint8Array): void;
}

/** The source's device-state section: nothing before the switchover, one FULL record in it. */
export class DeviceSection implements LiveSection {
  readonly id = DEVICE_SECTION.id;
  readonly name = DEVICE_SECTION.name;
  readonly version = DEVICE_SECTION.version;
  readonly kind = "full" as const;
  readonly #vcpu: DeviceStateHolder;

  /** The device state of `vcpu`. */
  constructor(vcpu: DeviceStateHolder) {
    this.#vcpu = vcpu;
  }

  /** Nothing to set up: the state is saved once the vCPU stopped. */
  setup(): Promise<void> {
    return Promise.resolve();
  }

  /** Not live: nothing pending before the switchover (as QEMU's vmstate sections). */
  pendingEstimate(): PendingBytes {
    return NOTHING_PENDING;
  }

  /** Not live: nothing pending before the switchover. */
  pendingExact(): PendingBytes {
    return NOTHING_PENDING;
  }

  /** Not live: nothing to iterate. */
  iterate(): Promise<boolean> {
    return Promise.resolve(true);
  }

  /** The FULL record of the stopped vCPU's state. */
  async completePrecopy(out: FrameSink): Promise<void> {
    await out.append(encodeSectionFull(this, this.#vcpu.saveDeviceState()));
  }

  /** The same FULL record, into postcopy's package. */
  async completePostcopy(out: FrameSink): Promise<void> {
    await out.append(encodeSectionFull(this, this.#vcpu.saveDeviceState()));
  }

  /** Nothing held. */
  cleanup(): void {}
}

/** The destination's device-state section: one FULL record, checked whole, then installed. */
export class DeviceSectionLoader implements SectionLoader {
  readonly id = DEVICE_SECTION.id;
  readonly name = DEVICE_SECTION.name;
  readonly version = DEVICE_SECTION.version;
  readonly kind = "full" as const;
  readonly #vcpu: DeviceStateHolder;
  /** A FULL record was loaded. */
  loaded = false;

  /** Loads into `vcpu`. */
  constructor(vcpu: DeviceStateHolder) {
    this.#vcpu = vcpu;
  }

  /** A full section never opens. */
  loadSetup(): void {
    throw new WireError(`migration stream: section '${this.name}' is sent whole, not opened`);
  }

  /** A full section takes no frames of its own. */
  loadState(): Promise<void> {
    return Promise.reject(
      new WireError(`migration stream: section '${this.name}' takes no frames`),
    );
  }

  /** Installs the device state (checked whole by the vCPU first). */
  loadFull(_version: number, body: Uint8Array): void {
    this.#vcpu.loadDeviceState(body);
    this.loaded = true;
  }

  /** Nothing held back. */
  settle(): Promise<void> {
    return Promise.resolve();
  }

  /** Nothing held. */
  loadCleanup(): void {}
}
