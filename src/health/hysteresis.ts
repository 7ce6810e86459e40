/**
 * The up/down state of one backend from its check results, with hysteresis: `fall`
 * consecutive failures take an up backend down, `rise` consecutive successes bring a down
 * one back. The first result after (re)start decides at once: a backend is not trusted or
 * distrusted for several intervals on no evidence. Pure.
 */

export type HealthState = 'unknown' | 'up' | 'down';

export interface Transition {
  from: HealthState;
  to: 'up' | 'down';
  reason: string;
  latencyMs: number;
  at: number;
}

export class HealthTracker {
  state: HealthState = 'unknown';
  /** When the current state began (ms since the epoch); null while unknown. */
  since: number | null = null;
  /** The result that caused the current state. */
  reason = '';
  lastLatencyMs: number | null = null;
  lastResultAt: number | null = null;
  lastReason = '';
  private successes = 0;
  private failures = 0;

  constructor(
    public fall: number,
    public rise: number,
  ) {}

  /** Records one result; returns the transition it caused, if any. */
  record(ok: boolean, reason: string, latencyMs: number, at: number): Transition | null {
    this.lastLatencyMs = latencyMs;
    this.lastResultAt = at;
    this.lastReason = reason;
    if (ok) {
      this.successes++;
      this.failures = 0;
    } else {
      this.failures++;
      this.successes = 0;
    }
    const from = this.state;
    let to: 'up' | 'down' | null = null;
    if (from === 'unknown') to = ok ? 'up' : 'down';
    else if (from === 'up' && this.failures >= this.fall) to = 'down';
    else if (from === 'down' && this.successes >= this.rise) to = 'up';
    if (to === null) return null;
    this.state = to;
    this.since = at;
    this.reason = reason;
    return { from, to, reason, latencyMs, at };
  }

  /** Counts restart (after the check's settings changed); the state stays. */
  resetCounts(): void {
    this.successes = 0;
    this.failures = 0;
  }
}
