/**
 * A migration's policy (`x-policy`): a completion timeout per GiB of guest RAM and a
 * progress timeout, and what to do, in order, each time one fires (escalation). Pure:
 * the caller feeds observations and carries out the returned action.
 *
 * @module
 */

/** What a policy can do when a timeout fires. */
export type PolicyAction = "auto-converge" | "postcopy" | "cancel";

/** The `x-policy` member of `POST /migrations`. */
export interface MigrationPolicy {
  /** Seconds per GiB of guest RAM before the completion timeout fires. */
  "completion-timeout-per-gib"?: number;
  /** Seconds without progress (RAM left reaching a new low) before the progress timeout fires. */
  "progress-timeout"?: number;
  /** Actions taken in order, one per firing; the last one repeats. */
  actions: PolicyAction[];
}

/** One firing: which timeout and the action to take. */
export interface PolicyFiring {
  trigger: "completion-timeout" | "progress-timeout";
  action: PolicyAction;
  /** How many times the policy has fired, this one included. */
  step: number;
}

/** Tracks one migration against its policy. */
export class PolicyTracker {
  readonly #policy: MigrationPolicy;
  readonly #completionMs: number;
  #deadline: number;
  #lowest = Infinity;
  #lastProgress: number;
  #step = 0;

  /** Starts tracking at `now` for a guest of `ramBytes`. */
  constructor(policy: MigrationPolicy, ramBytes: number, now: number) {
    this.#policy = policy;
    const perGib = policy["completion-timeout-per-gib"];
    this.#completionMs = perGib ? perGib * 1000 * Math.max(ramBytes / 2 ** 30, 1 / 1024) : Infinity;
    this.#deadline = now + this.#completionMs;
    this.#lastProgress = now;
  }

  /** Feeds the RAM left at `now`; returns a firing when a timeout has passed. */
  observe(now: number, remaining: number): PolicyFiring | null {
    if (remaining < this.#lowest * 0.98) {
      this.#lowest = remaining;
      this.#lastProgress = now;
    }
    const progress = this.#policy["progress-timeout"];
    let trigger: PolicyFiring["trigger"] | null = null;
    if (now >= this.#deadline) trigger = "completion-timeout";
    else if (progress && now - this.#lastProgress >= progress * 1000) trigger = "progress-timeout";
    if (!trigger || this.#policy.actions.length === 0) return null;
    const actions = this.#policy.actions;
    const action = actions[Math.min(this.#step, actions.length - 1)];
    this.#step++;
    // Give the action time to work before the next escalation.
    this.#deadline = now + this.#completionMs;
    this.#lastProgress = now;
    this.#lowest = remaining;
    return { trigger, action, step: this.#step };
  }
}
