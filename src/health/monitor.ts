/**
 * Runs the linked health check of every running farm against each of its backends (the
 * backend's own IP and port, never the VIP), keeps each backend's health, and tells the
 * reconciler when one changes. It only reads the store and never touches the kernel: the
 * reconciler reads `healthOf` as a host fact on its next pass.
 */
import type { Logger } from 'pino';
import type { FarmConfig, Store, Snapshot } from '../store/store.js';
import type { HealthCheck } from '../model/farm.js';
import { parseVport } from '../model/ports.js';
import type { BackendHealth } from '../reconcile/desired.js';
import { parseCheckCommand, resolvePort, type CheckSpec } from './command.js';
import { effectiveTimeoutMs, runCheck, type Checker, type CheckTarget } from './checkers.js';
import { HealthTracker, type Transition } from './hysteresis.js';
import { Scheduler, systemClock, type Clock } from './scheduler.js';

export interface HealthMonitorOptions {
  store: Store;
  log: Logger;
  /** Called after a backend of this farm changed state (the reconciler's wake). */
  onTransition: (farmId: number) => void;
  /** Called after every check (metrics: the check latency histogram). */
  onResult?: (result: { farm: string; backend: string; up: boolean; latencyMs: number | null }) => void;
  checker?: Checker;
  clock?: Clock;
  random?: () => number;
}

interface Target {
  uid: number;
  farmId: number;
  farm: string;
  backendId: number;
  check: HealthCheck;
  target: CheckTarget;
  timeoutMs: number;
  /** Identity of what runs and when: a change restarts the job. */
  key: string;
  tracker: HealthTracker;
}

/** A backend's health for the API and the logs. */
export interface BackendHealthView extends BackendHealth {
  latencyMs: number | null;
  lastCheckAt: string | null;
  lastResult: string;
}

export class HealthMonitor {
  private readonly store: Store;
  private readonly log: Logger;
  private readonly onTransition: (farmId: number) => void;
  private readonly onResult: HealthMonitorOptions['onResult'];
  private readonly checker: Checker;
  private readonly clock: Clock;
  private readonly scheduler: Scheduler;
  private readonly targets = new Map<number, Target>();
  /** Backends (uids) checked per farm, so a change of one farm syncs only its checks. */
  private readonly byFarm = new Map<number, Set<number>>();
  /** Farms changed since the last sync: synced after the write's request is answered. */
  private readonly changed = new Set<number>();
  private syncQueued = false;
  private unsubscribe: (() => void) | null = null;
  private stopped = false;

  constructor(options: HealthMonitorOptions) {
    this.store = options.store;
    this.log = options.log;
    this.onTransition = options.onTransition;
    this.onResult = options.onResult;
    this.checker = options.checker ?? runCheck;
    this.clock = options.clock ?? systemClock;
    this.scheduler = new Scheduler({ clock: this.clock, random: options.random });
  }

  start(): void {
    this.unsubscribe = this.store.onChange((change) => this.farmsChanged(change.farmIds));
    this.sync();
  }

  /** The store changed these farms: their checks are synced soon, off the writer's request. */
  farmsChanged(farmIds: Iterable<number>): void {
    for (const id of farmIds) this.changed.add(id);
    if (this.syncQueued) return;
    this.syncQueued = true;
    setImmediate(() => {
      this.syncQueued = false;
      if (this.stopped) return;
      const ids = [...this.changed];
      this.changed.clear();
      const configs = this.store.farmConfigs(ids);
      this.syncFarms(ids.map((id) => ({ id, config: configs.get(id) })));
    });
  }

  stop(): void {
    this.stopped = true;
    this.unsubscribe?.();
    this.scheduler.stop();
    this.targets.clear();
  }

  /** null while the backend is unchecked or has no result yet. */
  healthOf(uid: number): BackendHealthView | null {
    const t = this.targets.get(uid);
    if (!t || t.tracker.state === 'unknown') return null;
    const tr = t.tracker;
    return {
      up: tr.state === 'up',
      since: new Date(tr.since!).toISOString(),
      reason: tr.reason,
      latencyMs: tr.lastLatencyMs,
      lastCheckAt: tr.lastResultAt === null ? null : new Date(tr.lastResultAt).toISOString(),
      lastResult: tr.lastReason,
    };
  }

  /** Backends being checked (uids). */
  checked(): number[] {
    return [...this.targets.keys()];
  }

  /** Reads the whole store and starts, changes or stops checks to match it. */
  sync(snapshot: Snapshot = this.store.snapshot()): void {
    const present = new Set(snapshot.farms.map((c) => c.farm.id));
    const gone = [...this.byFarm.keys()].filter((id) => !present.has(id)).map((id) => ({ id, config: undefined }));
    this.syncFarms([...snapshot.farms.map((config) => ({ id: config.farm.id, config })), ...gone]);
  }

  /** Starts, changes or stops the checks of these farms (config undefined: deleted). */
  private syncFarms(farms: { id: number; config: FarmConfig | undefined }[]): void {
    if (this.stopped) return;
    for (const { id, config } of farms) {
      const wanted = config ? this.wantedTargets(config) : new Map<number, Omit<Target, 'tracker'>>();
      const had = this.byFarm.get(id) ?? new Set<number>();
      for (const uid of had) {
        if (wanted.has(uid)) continue;
        this.scheduler.remove(String(uid));
        this.targets.delete(uid);
      }
      if (wanted.size === 0) this.byFarm.delete(id);
      else this.byFarm.set(id, new Set(wanted.keys()));
      for (const [uid, w] of wanted) {
        const existing = this.targets.get(uid);
        if (existing && existing.key === w.key) {
          // Names, fall/rise, cut_conns: no need to restart the job.
          Object.assign(existing, { farm: w.farm, backendId: w.backendId, check: w.check });
          existing.tracker.fall = w.check.fall;
          existing.tracker.rise = w.check.rise;
          continue;
        }
        const tracker = existing?.tracker ?? new HealthTracker(w.check.fall, w.check.rise);
        tracker.fall = w.check.fall;
        tracker.rise = w.check.rise;
        tracker.resetCounts();
        const t: Target = { ...w, tracker };
        this.targets.set(uid, t);
        this.scheduler.add(String(uid), w.check.interval * 1000, () => this.runOnce(t));
      }
    }
  }

  /** The checks one farm needs: one per backend while the farm runs with a check linked. */
  private wantedTargets({ farm, backends, healthCheck }: FarmConfig): Map<number, Omit<Target, 'tracker'>> {
    const wanted = new Map<number, Omit<Target, 'tracker'>>();
    if (!farm.running || !healthCheck) return wanted;
    const parsed = parseCheckCommand(healthCheck.command);
    if (!parsed.ok) {
      // Stored before commands were validated: never run, said once per sync.
      this.log.warn({ farm: farm.name, check: healthCheck.name, problem: parsed.problem }, 'health check command refused: not running it');
      return wanted;
    }
    const spec = parsed.spec;
    const farmPort = lowestPort(farm.vport);
    for (const b of backends) {
      const port = spec.kind === 'ping' ? null : resolvePort(spec.port, b.port, farmPort, spec.kind === 'http' && spec.ssl);
      if (spec.kind !== 'ping' && port === null) {
        this.log.warn({ farm: farm.name, backend: b.id, check: healthCheck.name }, "the check uses PORT but the backend has no port and the farm's virtual port is '*': not checking it");
        continue;
      }
      const target: CheckTarget = { spec, ip: b.ip, port };
      const timeoutMs = effectiveTimeoutMs(spec, healthCheck.timeout);
      const key = JSON.stringify([spec, b.ip, port, healthCheck.interval, timeoutMs]);
      wanted.set(b.uid, { uid: b.uid, farmId: farm.id, farm: farm.name, backendId: b.id, check: healthCheck, target, timeoutMs, key });
    }
    return wanted;
  }

  private async runOnce(t: Target): Promise<void> {
    const result = await this.checker(t.target, t.timeoutMs);
    // Removed or replaced while it ran: the result belongs to nobody.
    if (this.stopped || this.targets.get(t.uid) !== t) return;
    const transition = t.tracker.record(result.ok, result.reason, result.latencyMs, this.clock.now());
    this.onResult?.({ farm: t.farm, backend: String(t.backendId), up: result.ok, latencyMs: result.latencyMs });
    if (t.check.log) {
      this.log.info({ farm: t.farm, backend: t.backendId, ip: t.target.ip, check: t.check.name, ok: result.ok, reason: result.reason, latencyMs: result.latencyMs }, 'health check result');
    }
    if (transition) this.transitioned(t, transition);
  }

  private transitioned(t: Target, tr: Transition): void {
    const fields = {
      farm: t.farm,
      backend: t.backendId,
      ip: t.target.ip,
      port: t.target.port,
      check: t.check.name,
      from: tr.from,
      to: tr.to,
      reason: tr.reason,
      latencyMs: tr.latencyMs,
    };
    const message = `backend ${t.backendId} of farm ${t.farm} is ${tr.to} (was ${tr.from}): ${tr.reason}`;
    if (tr.to === 'down') this.log.warn(fields, message);
    else this.log.info(fields, message);
    this.onTransition(t.farmId);
  }
}

/** What PORT means for a backend without a port: the farm's (lowest) virtual port; none for '*'. */
function lowestPort(vport: string): number | null {
  const spec = parseVport(vport);
  if (!spec || spec.any) return null;
  return Math.min(...spec.ranges.map((r) => r.low));
}

export type { CheckSpec };
