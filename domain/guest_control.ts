/**
 * The guest-facing operations of an agent: QMP stop and cont (refused while a migration
 * runs or the guest has not arrived), a WebAssembly guest's input, and query-block.
 *
 * @module
 */
import { type DriveInfo, drivesInfo } from "../adapters/disk/drive.ts";
import type { InputRefusal, Machine, RunState } from "../adapters/memory/machine.ts";
import { DomainError, MIGRATION_ACTIVE } from "./errors.ts";
import { isSetupOrActive, type MigrationStatus } from "./state_machine.ts";

/** What `POST /machine/input` answers when the machine refuses the input. */
const INPUT_REFUSED: Record<InputRefusal, (m: Machine) => string> = {
  "no-input": () => "The guest takes no input",
  full: () => "The guest's unread input fills its buffer",
  incoming: () =>
    "The guest has not arrived yet (runstate inmigrate); send its input to the source " +
    "until it runs here",
  away: (m) =>
    `A migration took the guest's state and unread input (runstate ${m.runstate}); ` +
    "send its input to the destination once the guest runs there, or here again if it " +
    "runs on here",
};

/** Where a COLO primary's guest input goes (the outgoing data path), and how much waits there. */
export interface ColoInput {
  give(bytes: Uint8Array): void;
  /** Bytes handed over and not given to the guest yet. */
  waiting(): number;
}

/** Stop, cont, input and the drives of one agent's guest. */
export class GuestControl {
  readonly #machine: Machine;
  readonly #sourceStatus: () => MigrationStatus;
  readonly #coloInput: ColoInput;

  /**
   * Operations on `machine`; `sourceStatus` is the newest outgoing migration's status, and
   * `coloInput` takes the guest's input while that migration runs COLO (engine/colo_input.ts).
   */
  constructor(
    machine: Machine,
    sourceStatus: () => MigrationStatus,
    coloInput: ColoInput = { give: () => {}, waiting: () => 0 },
  ) {
    this.#machine = machine;
    this.#sourceStatus = sourceStatus;
    this.#coloInput = coloInput;
  }

  /** QMP stop; resolves to the runstate after it. */
  async stop(): Promise<RunState> {
    this.#assertIdle();
    if (this.#machine.runstate === "running") await this.#machine.stop();
    return this.#machine.runstate;
  }

  /** `POST /machine/input`: appends `bytes` to a WebAssembly guest's stdin. */
  input(bytes: Uint8Array): void {
    const colo = this.#sourceStatus() === "colo";
    // In COLO the input waiting for the COLO loop counts too: nothing is given while COLO
    // holds, and input accepted is never dropped for want of room (engine/colo_input.ts).
    const refused = colo
      ? this.#machine.inputRefusal(bytes, this.#coloInput.waiting())
      : this.#machine.input(bytes);
    if (refused !== null) {
      throw new DomainError("wrong-state", INPUT_REFUSED[refused](this.#machine));
    }
    // A COLO primary's Worker gives it to the guest and to the secondary's, in one step.
    if (colo) this.#coloInput.give(bytes);
  }

  /** QMP cont; returns the runstate after it. */
  cont(): RunState {
    this.#assertIdle();
    const rs = this.#machine.runstate;
    if (rs === "shutdown" || rs === "guest-panicked") {
      throw new DomainError("wrong-state", `The guest has ended (runstate ${rs})`);
    }
    this.#machine.guestOutput.fenced = false; // the operator's decision (colo_arbiter.ts)
    this.#machine.cont();
    return this.#machine.runstate;
  }

  /** query-block: the drives' ids, files and sizes. */
  drives(): DriveInfo[] {
    return drivesInfo(this.#machine.shared.drives ?? []);
  }

  #assertIdle(): void {
    const out = this.#sourceStatus();
    if (isSetupOrActive(out) || out === "cancelling") {
      throw new DomainError("active", MIGRATION_ACTIVE);
    }
    if (this.#machine.runstate === "inmigrate") {
      throw new DomainError("wrong-state", "Guest is waiting for an incoming migration");
    }
  }
}
