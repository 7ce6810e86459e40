/**
 * Runs periodic jobs (health checks) from one timer. Jobs wait in a min-heap ordered by due
 * time; the single timer is armed for the earliest one, so hundreds of backends cost one
 * timer, not hundreds. Each job starts at a random offset within its first interval (checks
 * spread out), never overlaps itself (its next run is queued only when the current one has
 * finished), and at most `maxConcurrent` jobs run at once. The clock and the randomness are
 * injectable so the timing is tested without waiting.
 */

export interface Clock {
  now(): number;
  setTimer(fn: () => void, ms: number): unknown;
  clearTimer(handle: unknown): void;
}

export const systemClock: Clock = {
  now: () => Date.now(),
  setTimer: (fn, ms) => {
    const t = setTimeout(fn, ms);
    t.unref();
    return t;
  },
  clearTimer: (h) => clearTimeout(h as NodeJS.Timeout),
};

export interface SchedulerOptions {
  clock?: Clock;
  /** In [0, 1): the start offset as a fraction of the interval. */
  random?: () => number;
  maxConcurrent?: number;
}

interface Job {
  key: string;
  intervalMs: number;
  run: () => Promise<void>;
  /** Bumped on replace: heap entries of an older token are stale. */
  token: number;
  running: boolean;
  removed: boolean;
}

interface Entry {
  due: number;
  seq: number;
  job: Job;
  token: number;
}

export class Scheduler {
  private readonly clock: Clock;
  private readonly random: () => number;
  private readonly maxConcurrent: number;
  private readonly jobs = new Map<string, Job>();
  private readonly heap: Entry[] = [];
  /** Due jobs waiting for a free slot, in due order. */
  private readonly ready: Job[] = [];
  private running = 0;
  private seq = 0;
  private timer: unknown = null;
  private timerDue = Infinity;
  private stopped = false;

  constructor(options: SchedulerOptions = {}) {
    this.clock = options.clock ?? systemClock;
    this.random = options.random ?? Math.random;
    this.maxConcurrent = options.maxConcurrent ?? 64;
  }

  /**
   * Adds a job, or replaces the one with this key; its first run comes after a random part
   * of its interval. A replaced job that is running finishes first: the key never runs twice
   * at once.
   */
  add(key: string, intervalMs: number, run: () => Promise<void>): void {
    const old = this.jobs.get(key);
    if (old) {
      old.intervalMs = intervalMs;
      old.run = run;
      old.token++; // its queued run is stale
      // Running: its completion queues the next run, with the new interval.
      if (!old.running) this.push(old, this.clock.now() + Math.floor(this.random() * intervalMs));
      return;
    }
    const job: Job = { key, intervalMs, run, token: 1, running: false, removed: false };
    this.jobs.set(key, job);
    this.push(job, this.clock.now() + Math.floor(this.random() * intervalMs));
  }

  remove(key: string): void {
    const job = this.jobs.get(key);
    if (!job) return;
    job.removed = true;
    this.jobs.delete(key);
  }

  has(key: string): boolean {
    return this.jobs.has(key);
  }

  keys(): string[] {
    return [...this.jobs.keys()];
  }

  /** How many jobs run right now. */
  inFlight(): number {
    return this.running;
  }

  /** How many heap entries are waiting (stale ones included): the timer bookkeeping's size. */
  queued(): number {
    return this.heap.length;
  }

  stop(): void {
    this.stopped = true;
    if (this.timer !== null) this.clock.clearTimer(this.timer);
    this.timer = null;
    this.jobs.clear();
  }

  private push(job: Job, due: number): void {
    const entry: Entry = { due, seq: this.seq++, job, token: job.token };
    const h = this.heap;
    h.push(entry);
    let i = h.length - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!before(h[i]!, h[parent]!)) break;
      [h[i], h[parent]] = [h[parent]!, h[i]!];
      i = parent;
    }
    this.arm();
  }

  private pop(): Entry | undefined {
    const h = this.heap;
    const top = h[0];
    const last = h.pop();
    if (h.length > 0 && last) {
      h[0] = last;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < h.length && before(h[l]!, h[m]!)) m = l;
        if (r < h.length && before(h[r]!, h[m]!)) m = r;
        if (m === i) break;
        [h[i], h[m]] = [h[m]!, h[i]!];
        i = m;
      }
    }
    return top;
  }

  /** One timer, armed for the earliest due entry. */
  private arm(): void {
    if (this.stopped) return;
    const top = this.heap[0];
    const due = top ? top.due : Infinity;
    if (due >= this.timerDue) return;
    if (this.timer !== null) this.clock.clearTimer(this.timer);
    this.timerDue = due;
    this.timer = this.clock.setTimer(() => this.fire(), Math.max(0, due - this.clock.now()));
  }

  private fire(): void {
    this.timer = null;
    this.timerDue = Infinity;
    const now = this.clock.now();
    while (this.heap.length > 0 && this.heap[0]!.due <= now) {
      const entry = this.pop()!;
      if (entry.token !== entry.job.token || entry.job.removed) continue;
      this.ready.push(entry.job);
    }
    this.startReady();
    this.arm();
  }

  private startReady(): void {
    while (!this.stopped && this.running < this.maxConcurrent && this.ready.length > 0) {
      const job = this.ready.shift()!;
      if (job.removed || job.running) continue;
      this.start(job);
    }
  }

  private start(job: Job): void {
    job.running = true;
    this.running++;
    const started = this.clock.now();
    let result: Promise<void>;
    try {
      result = job.run();
    } catch (err) {
      result = Promise.reject(err);
    }
    result
      .catch(() => undefined) // a job reports its own failures; the schedule goes on
      .then(() => {
        job.running = false;
        this.running--;
        if (!this.stopped && !job.removed) {
          // Never overlapping: the next run is due one interval after this one started, or
          // now if this one took longer than that.
          this.push(job, Math.max(started + job.intervalMs, this.clock.now()));
        }
        this.startReady();
      });
  }
}

const before = (a: Entry, b: Entry): boolean => a.due < b.due || (a.due === b.due && a.seq < b.seq);
