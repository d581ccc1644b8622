/**
 * The agent's event stream: every event gets an increasing id and is kept in a bounded
 * backlog so a client reconnecting with `Last-Event-ID` gets what it missed. Each
 * subscriber has a bounded queue; one that falls too far behind is dropped (it can
 * reconnect and replay) so a slow reader never slows a migration. Subscribers are woken
 * at most once per coalescing window (a few ms): a burst of events (a migration's start or
 * end publishes several within milliseconds) then reaches each subscriber as one write,
 * which matters with hundreds of subscribers on a 2-core host that is migrating.
 *
 * @module
 */

/** One published event. */
export interface FerryEvent {
  id: number;
  event: string;
  data: unknown;
  /** When it was published (ms since the epoch): a replayed event keeps its own time. */
  time: number;
}

/** A subscriber's view: pull events one at a time. */
export interface Subscription {
  /** Next event; `null` once closed or dropped. */
  next(): Promise<FerryEvent | null>;
  /**
   * Every event queued for this subscriber, at least one (waiting for it); empty once
   * closed or dropped. A writer that sends them at once pays one write for a burst.
   */
  nextAll(): Promise<FerryEvent[]>;
  /** Stops the subscription. */
  close(): void;
  /** True when it was dropped for falling behind. */
  readonly dropped: boolean;
}

interface Subscriber {
  queue: FerryEvent[];
  wake: (() => void) | null;
  closed: boolean;
  dropped: boolean;
  onDrop?: () => void;
}

/**
 * Publishes events to many subscribers with replay. `M` maps each event name the bus takes
 * to the type of its data (an agent's bus takes domain/events.ts's FerryEventMap).
 */
// deno-lint-ignore no-explicit-any
export class EventBus<M extends Record<keyof M, unknown> = Record<string, any>> {
  #nextId = 1;
  readonly #backlog: FerryEvent[] = [];
  readonly #subscribers = new Set<Subscriber>();
  readonly #backlogSize: number;
  readonly #queueLimit: number;
  readonly #coalesceMs: number;
  #flush: ReturnType<typeof setTimeout> | null = null;

  /**
   * `backlogSize` events are kept for replay; a subscriber may lag by `queueLimit` events;
   * subscribers are woken `coalesceMs` after the first event of a burst (0: at once).
   */
  constructor(backlogSize = 2048, queueLimit = 4096, coalesceMs = 0) {
    this.#backlogSize = backlogSize;
    this.#queueLimit = queueLimit;
    this.#coalesceMs = coalesceMs;
  }

  /** Number of live subscribers. */
  get subscriberCount(): number {
    return this.#subscribers.size;
  }

  /** Publishes one event to every subscriber and the backlog; returns it. */
  publish<K extends keyof M & string>(event: K, data: M[K]): FerryEvent {
    const e = { id: this.#nextId++, event, data, time: Date.now() };
    this.#backlog.push(e);
    if (this.#backlog.length > this.#backlogSize) this.#backlog.shift();
    for (const s of this.#subscribers) {
      if (s.queue.length >= this.#queueLimit) {
        s.dropped = true;
        this.#close(s);
        s.onDrop?.();
        continue;
      }
      s.queue.push(e);
      if (this.#coalesceMs === 0) s.wake?.();
    }
    if (this.#coalesceMs > 0 && this.#flush === null && this.#subscribers.size > 0) {
      this.#flush = setTimeout(() => {
        this.#flush = null;
        for (const s of this.#subscribers) if (s.queue.length > 0) s.wake?.();
      }, this.#coalesceMs);
      Deno.unrefTimer(this.#flush); // never what keeps a process alive
    }
    return e;
  }

  /**
   * Subscribes; with `lastEventId`, first replays the kept events after it. `onDrop` is
   * called if the bus drops this subscriber for falling behind.
   */
  subscribe(lastEventId?: number, onDrop?: () => void): Subscription {
    const s: Subscriber = { queue: [], wake: null, closed: false, dropped: false, onDrop };
    if (lastEventId !== undefined) s.queue.push(...this.#backlog.filter((e) => e.id > lastEventId));
    this.#subscribers.add(s);
    const ready = async () => {
      while (s.queue.length === 0 && !s.closed) {
        await new Promise<void>((resolve) => (s.wake = resolve));
        s.wake = null;
      }
    };
    return {
      next: async () => {
        await ready();
        return s.queue.shift() ?? null;
      },
      nextAll: async () => {
        await ready();
        return s.queue.splice(0);
      },
      close: () => this.#close(s),
      get dropped() {
        return s.dropped;
      },
    };
  }

  #close(s: Subscriber): void {
    s.closed = true;
    s.queue.length = 0;
    this.#subscribers.delete(s);
    s.wake?.();
  }
}
