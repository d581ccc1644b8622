/**
 * The source's switchover, shared by precopy's completion and postcopy's start: the vCPU
 * stopped for the last part (finish-migrate), the pause before it (pause-before-switchover:
 * pre-switchover until migrate-continue, as the seed's migration_maybe_pause), the runstate
 * it stopped in (GLOBAL_STATE; the device state is a section of its own), and the wait for the destination's verdict (its
 * SHUT on the return path). Once stopped (and past the pause) the drives go inactive (the
 * seed's bdrv_inactivate_all: the destination's guest may own the images from here), and
 * active again if the guest comes back to this agent; under COLO the primary's guest runs on,
 * its drives stay active.
 *
 * @module
 */
import { setDrivesActive, type SharedDrive } from "../../adapters/disk/drive.ts";
import type { VcpuControl } from "../../adapters/memory/vcpu_control.ts";
import type { Capabilities } from "../options.ts";
import type { MigrationStatus } from "../state_machine.ts";
import { encodeGlobalState } from "../wire/mod.ts";
import { Cancelled } from "./cancelled.ts";
import type { MainLink } from "./main_link.ts";
import type { SourceControl } from "./source_control.ts";

/** What the switchover uses of its outgoing migration. */
export interface SwitchoverRun {
  caps: Capabilities;
  link: MainLink;
  control: SourceControl;
  vcpu: VcpuControl;
  /** Throws on cancel, a return-path error, a failed write or a failed page channel. */
  checkErrors(): void;
  /** A keepalive PING when one is due. */
  keepalive(): Promise<void>;
  /** Something must arrive on the return path within the link timeout. */
  expectReply(): void;
  /** A return path is open (the destination answers with SHUT). */
  returnPath: boolean;
  /** The destination's SHUT value, or null before it. */
  shut(): number | null;
}

/** One outgoing migration's switchover (see the module doc). */
export class Switchover {
  readonly #run: SwitchoverRun;
  /** The guest ran when the vCPU was stopped (it runs on after a failure before the point). */
  vmWasRunning = false;
  #runstateBefore = "running";
  /** When the vCPU stopped for completion (downtime counts from here). */
  downtimeStart = 0;

  readonly #drives: readonly SharedDrive[];
  /** The seed's block_inactive: this switchover inactivated the drives. */
  #inactivated = false;

  /** The switchover of `run`, whose guest has `drives`. */
  constructor(run: SwitchoverRun, drives: readonly SharedDrive[] = []) {
    this.#run = run;
    this.#drives = drives;
  }

  /** bdrv_inactivate_all, once the guest is stopped for good here (not under COLO). */
  inactivateDrives(): void {
    if (this.#run.caps["x-colo"] || this.#drives.length === 0) return;
    setDrivesActive(this.#drives, false);
    this.#inactivated = true;
  }

  /** The guest comes back (a failure or cancel before the point of no return). */
  reactivateDrives(): void {
    if (this.#inactivated) setDrivesActive(this.#drives, true);
    this.#inactivated = false;
  }

  /** Stops the vCPU (finish-migrate); returns when parked. */
  stopVcpu(): void {
    const { vcpu } = this.#run;
    this.vmWasRunning = vcpu.runstate === "running";
    this.#runstateBefore = vcpu.runstate;
    vcpu.setRunstate("finish-migrate");
    if (!vcpu.waitParked(5000)) throw new Error("vCPU did not stop");
  }

  /** migration_maybe_pause: pre-switchover until migrate-continue (or cancel). */
  async maybePause(from: MigrationStatus, to: MigrationStatus): Promise<void> {
    const { link, control, caps } = this.#run;
    if (!caps["pause-before-switchover"]) return;
    control.continued = false;
    if (!await link.transition(from, "pre-switchover")) throw new Cancelled();
    while (!control.continued) {
      this.#run.checkErrors();
      await this.#run.keepalive();
      await control.wake.wait(1000);
    }
    if (!await link.transition("pre-switchover", to)) throw new Cancelled();
  }

  /** Precopy completion, part 1: stop, maybe pause; returns the state completion runs in. */
  async stopForCompletion(): Promise<MigrationStatus> {
    this.downtimeStart = Date.now();
    this.stopVcpu();
    if (this.#run.caps["pause-before-switchover"]) {
      await this.maybePause("active", "device");
      this.inactivateDrives();
      return "device";
    }
    this.inactivateDrives();
    return "active";
  }

  /** GLOBAL_STATE: the runstate before the stop. */
  globalState(): Uint8Array {
    return encodeGlobalState(this.vmWasRunning ? "running" : this.#runstateBefore);
  }

  /** With a return path, completed only after the destination's SHUT without error. */
  async awaitShut(): Promise<void> {
    const run = this.#run;
    if (!run.returnPath) return;
    // No keepalive after EOF (the destination stops reading there): the SHUT is the answer.
    run.expectReply();
    while (run.shut() === null) {
      run.checkErrors();
      await run.control.wake.wait(1000);
    }
    run.checkErrors();
  }
}
