/**
 * The only writer to the kernel. Each pass reads the store and the host, renders the whole
 * desired table, and applies the difference from what the kernel has as one `nft -f`
 * transaction. Woken by store writes (debounced: a burst costs one pass), and every few
 * seconds to check for drift (someone flushed or edited the table) and for new neighbour
 * facts. A failed pass leaves the kernel as it was (nft is atomic), is reported in the
 * status, and is retried with backoff as a full resync.
 */
import type { Logger } from 'pino';
import type { Store } from '../store/store.js';
import { readSessions, type SessionKeyLayout } from '../dataplane/sessions.js';
import { openNftObjectReader, type NftObjectReader } from '../dataplane/netlink/nft-objects.js';
import { counterSourcesFor } from '../observe/counter-sources.js';
import { initialSystemRuntime, type LiveSession, type DataplaneView, type FarmRuntime, type SystemRuntime } from '../model/runtime.js';
import type { HostNetwork } from '../dataplane/netlink/host-network.js';
import type { NftRunner } from '../dataplane/nft/runner.js';
import { VipAnnouncer } from '../dataplane/announcer.js';
import { NeighborTable } from '../dataplane/neighbors.js';
import { readRulesetGeneration, type RulesetGeneration } from '../dataplane/netlink/nft-generation.js';
import {
  elementCommands,
  kernelTableFromListing,
  knownKernelTable,
  planTransaction,
  type KernelTable,
} from '../dataplane/nft/ruleset.js';
import type { Conntrack } from '../dataplane/conntrack.js';
import { desiredState, usesConntrack, type BackendHealth, type DesiredState } from './desired.js';
import { newRenderCache, renderTables, type RenderCache, type RenderedTables } from './render.js';
import { NAT_TABLE_FAMILY, NAT_TABLE_NAME, TABLE_FAMILY, TABLE_NAME } from './names.js';

/** nftfarm's tables: netdev (every farm's dispatch, dsr, stateless_dnat) and ip (nat, dnat). */
const TABLES = [
  { family: TABLE_FAMILY, name: TABLE_NAME, of: (r: RenderedTables) => r.netdev },
  { family: NAT_TABLE_FAMILY, name: NAT_TABLE_NAME, of: (r: RenderedTables) => r.ip },
] as const;
type Tables = (KernelTable | null)[];

/** How often the connections of leastconn and max_conns backends are counted. */
const LOAD_INTERVAL_MS = 1000;
import { farmChanges } from './change-log.js';

/** What a pass did: committed a transaction, found nothing to commit, or only checked. */
export type PassResult = 'applied' | 'unchanged' | 'idle' | 'failed';
export interface PassReport {
  kind: PassKind;
  result: PassResult;
  seconds: number;
}
/** Above this many farms changed in one pass (a cold start), one summary line instead of one per farm. */
const MAX_FARM_LOG_LINES = 50;

export interface ReconcilerOptions {
  store: Store;
  net: HostNetwork;
  nft: NftRunner;
  log: Logger;
  dryRun: boolean;
  /** Counts and flushes the connections of nat and dnat farms; absent: not done. */
  conntrack?: Conntrack;
  debounceMs?: number;
  /** Drift check (a ruleset generation read), neighbour refresh and announcement repair period. */
  resyncIntervalMs?: number;
  maxBackoffMs?: number;
  /** Backend health from the checks (src/health); absent: every backend counts as healthy. */
  health?: HealthFacts;
  /** Called after every pass (metrics). */
  onPass?: (report: PassReport) => void;
}

/** What the reconciler reads from the health monitor. */
export interface HealthFacts {
  healthOf(uid: number): BackendHealth | null;
  /** Changes whenever some backend's health changes. */
  fingerprint(): string;
}

type PassKind = 'full' | 'incremental' | 'check';

export class Reconciler implements DataplaneView {
  private readonly store: Store;
  private readonly net: HostNetwork;
  private readonly nft: NftRunner;
  private readonly log: Logger;
  private readonly dryRun: boolean;
  private readonly debounceMs: number;
  private readonly resyncIntervalMs: number;
  private readonly maxBackoffMs: number;
  private readonly onPass: ((report: PassReport) => void) | undefined;
  private readonly announcer: VipAnnouncer;
  private readonly neighbors: NeighborTable;
  private readonly conntrack: Conntrack | undefined;
  private readonly health: HealthFacts | undefined;
  /** Netlink reads of the session maps (read-only), opened on first use. */
  private objects: NftObjectReader | undefined;

  /** The kernel's copy of each table (in TABLES order) after the last successful pass; undefined: unknown. */
  private applied: Tables | undefined = undefined;
  /** Connections per backend mark, for leastconn and max_conns; undefined until counted. */
  private connections: Map<number, number> | undefined = undefined;
  private readonly farms = new Map<number, FarmRuntime>();
  private readonly renderCache: RenderCache = newRenderCache();
  /** The kernel ruleset generation at which the kernel was last known to hold `applied`. */
  private verifiedGeneration = -1;
  /** What the last successful pass was computed from, and its result. */
  private lastInputs: { storeGeneration: number; hostKey: string } | null = null;
  private lastState: DesiredState | null = null;
  private readonly status: SystemRuntime;

  private timer: NodeJS.Timeout | null = null;
  private ticker: NodeJS.Timeout | null = null;
  private loadTicker: NodeJS.Timeout | null = null;
  private counting = false;
  private inFlight: Promise<void> | null = null;
  private dirty = false;
  private needFull = true;
  private notBefore = 0;
  private stopped = false;
  private unwatch: (() => void) | null = null;

  constructor(options: ReconcilerOptions) {
    this.store = options.store;
    this.net = options.net;
    this.nft = options.nft;
    this.log = options.log;
    this.dryRun = options.dryRun;
    this.conntrack = options.conntrack;
    this.debounceMs = options.debounceMs ?? 25;
    this.resyncIntervalMs = options.resyncIntervalMs ?? 2000;
    this.maxBackoffMs = options.maxBackoffMs ?? 30_000;
    this.onPass = options.onPass;
    this.announcer = new VipAnnouncer(this.net, this.store, this.log);
    this.neighbors = new NeighborTable(this.net, this.store, this.log);
    this.health = options.health;
    this.status = initialSystemRuntime(this.dryRun ? 'dry-run' : 'kernel');
  }

  // ---- DataplaneView ----

  farm(farmId: number): FarmRuntime | undefined {
    return this.farms.get(farmId);
  }

  system(): SystemRuntime {
    return { ...this.status, storeGeneration: this.store.generation() };
  }

  async sessions(farmId: number): Promise<LiveSession[]> {
    const where = this.sessionsMapOf(farmId);
    if (!where) return [];
    try {
      this.objects ??= openNftObjectReader();
      return (await readSessions(this.objects, where.family, where.table, where.map, where.layout)) ?? [];
    } catch (err) {
      this.log.warn({ farmId, err: err instanceof Error ? err.message : String(err) }, 'could not read the sessions of a farm');
      return [];
    }
  }

  /** A write to the kernel: done between passes, like every other. */
  async flushSessions(farmId: number, backendUid?: number): Promise<number> {
    return this.exclusive(async () => {
      const where = this.sessionsMapOf(farmId);
      if (!where) return 0;
      const prefix = `${where.family} ${where.table} ${where.map}`;
      for (let attempt = 0; ; attempt++) {
        const victims = (await this.sessions(farmId)).filter((s) => backendUid === undefined || s.mark === backendUid);
        if (victims.length === 0) return 0;
        const script =
          backendUid === undefined
            ? `flush map ${prefix}\n`
            : `${elementCommands('delete', `${where.family} ${where.table}`, where.map, victims.map((v) => v.key)).join('\n')}\n`;
        try {
          await this.nft.apply(script);
          this.log.info({ farmId, backendUid: backendUid ?? null, sessions: victims.length }, 'flushed persistence sessions');
          return victims.length;
        } catch (err) {
          // A session that expired meanwhile makes its delete fail: read again and retry once.
          if (attempt > 0) throw err;
        }
      }
    });
  }

  /** Where the farm's sessions are, as the statistics read them; null when it has none in the kernel. */
  private sessionsMapOf(farmId: number): { family: string; table: string; map: string; layout: SessionKeyLayout } | null {
    const f = this.lastState?.farms.find((x) => x.farmId === farmId);
    if (this.dryRun || !f || !f.running || f.problem !== null) return null;
    const sources = counterSourcesFor({ id: f.farmId, nattype: f.nattype, protocol: f.protocol, persistence: f.persistence });
    return sources.sessions ? { family: sources.family, table: sources.table, ...sources.sessions } : null;
  }

  /** Runs `fn` while no pass runs, and keeps passes waiting until it is done. */
  private async exclusive<T>(fn: () => Promise<T>): Promise<T> {
    while (this.inFlight) await this.inFlight;
    const result = fn();
    this.inFlight = result.then(
      () => undefined,
      () => undefined,
    );
    try {
      return await result;
    } finally {
      this.inFlight = null;
      if (this.dirty && !this.stopped) this.schedule(this.debounceMs);
    }
  }

  // ---- lifecycle ----

  /** Converges once (a full resync in one transaction), then keeps converging. */
  async start(): Promise<void> {
    // Watch first: the first pass asks the kernel for missing MACs, and the answers must wake us.
    if (this.net.watchNeighbors) this.unwatch = this.net.watchNeighbors(() => this.wake());
    await this.runPass('full');
    this.ticker = setInterval(() => this.tick(), this.resyncIntervalMs);
    this.ticker.unref();
    if (this.conntrack && !this.dryRun) {
      this.loadTicker = setInterval(() => void this.countConnections(), LOAD_INTERVAL_MS);
      this.loadTicker.unref();
    }
  }

  /**
   * Counts the connections of the backends of leastconn and max_conns farms (nat, dnat) and
   * converges again when a count changed: their share of new flows depends on it.
   */
  private async countConnections(): Promise<void> {
    if (this.counting || this.stopped || !this.conntrack || !this.lastState) return;
    const marks = countedMarks(this.lastState);
    if (marks.size === 0) return;
    this.counting = true;
    try {
      const counts = await this.conntrack.countByMark();
      const mine = new Map([...counts].filter(([mark]) => marks.has(mark)));
      const before = this.connections;
      this.connections = mine;
      if (!before || before.size !== mine.size || [...mine].some(([m, n]) => before.get(m) !== n)) this.wake();
    } catch (err) {
      this.log.warn({ err: err instanceof Error ? err.message : String(err) }, 'could not count connections (leastconn, max_conns)');
    } finally {
      this.counting = false;
    }
  }

  /** A write happened: converge soon. Bursts of writes share one pass. */
  wake(): void {
    this.dirty = true;
    this.schedule(this.debounceMs);
  }

  /** Stops the loop after applying any pending change; the kernel keeps the rules. */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    if (this.ticker) clearInterval(this.ticker);
    if (this.loadTicker) clearInterval(this.loadTicker);
    this.unwatch?.();
    if (this.inFlight) await this.inFlight;
    // A farm deleted just before shutdown must still lose its rules and announcement.
    if (this.dirty) {
      await this.pass(this.needFull ? 'full' : 'incremental').catch((err: unknown) =>
        this.log.error({ err: err instanceof Error ? err.message : String(err) }, 'the last reconcile pass before stopping failed'),
      );
    }
    this.neighbors.close();
    this.objects?.close();
  }

  private tick(): void {
    if (this.timer === null && this.inFlight === null) void this.runPass('check');
  }

  private schedule(delayMs: number): void {
    if (this.stopped || this.timer) return;
    const wait = Math.max(delayMs, this.notBefore - Date.now());
    this.timer = setTimeout(() => {
      this.timer = null;
      void this.runPass(this.needFull ? 'full' : 'incremental');
    }, wait);
    this.timer.unref();
  }

  private async runPass(kind: PassKind): Promise<void> {
    if (this.inFlight) {
      this.dirty = true;
      return;
    }
    this.dirty = false;
    const started = performance.now();
    const report = (result: PassResult) => this.onPass?.({ kind, result, seconds: (performance.now() - started) / 1000 });
    this.inFlight = this.pass(kind).then(report, (err: unknown) => {
      report('failed');
      this.failed(err, performance.now() - started);
    });
    try {
      await this.inFlight;
    } finally {
      this.inFlight = null;
    }
    if (this.dirty && !this.stopped) this.schedule(this.debounceMs);
  }

  // ---- one pass ----

  private async pass(kind: PassKind): Promise<PassResult> {
    const passStarted = performance.now();
    const interfaces = await this.net.listInterfaces();
    await this.neighbors.refresh();
    const hostKey = `${JSON.stringify(interfaces)}\n${this.neighbors.fingerprint()}\n${this.health?.fingerprint() ?? ''}`;

    let full = kind === 'full' || this.applied === undefined;
    // Someone else committed to nftables since the kernel was last checked: list and compare.
    let suspect = false;
    let generation: RulesetGeneration | null = null;
    if (!this.dryRun && !full && kind === 'check') {
      generation = await readRulesetGeneration();
      suspect = generation.id !== this.verifiedGeneration;
      if (suspect) this.log.debug({ generation: generation.id, verified: this.verifiedGeneration }, 'the nftables ruleset changed: checking for drift');
    }

    // A periodic check with nothing new anywhere: keep announcements and probes going, and stop.
    if (kind === 'check' && !full && !suspect && this.lastInputs?.storeGeneration === this.store.generation() && this.lastInputs.hostKey === hostKey) {
      if (!this.dryRun && this.lastState) {
        this.neighbors.probe(this.backendsToResolve(this.lastState));
        await this.announcer.announce(this.lastState.announcements, this.lastState.routedInterfaces);
      }
      return 'idle';
    }

    const snapshot = this.store.snapshot();
    const state = desiredState(snapshot, {
      interfaces,
      macOf: this.neighbors.macLookup(interfaces),
      connections: this.connections,
      healthOf: (uid) => this.health?.healthOf(uid) ?? null,
    });
    const rendered = renderTables(state, this.renderCache);
    const tables = TABLES.map((t) => t.of(rendered));

    let kernel: Tables = full ? TABLES.map(() => null) : (this.applied as Tables);
    if (!this.dryRun && (full || suspect)) {
      const before = generation ?? (await readRulesetGeneration());
      const listing = await this.nft.run(['-t', '-j', 'list', 'ruleset']);
      const listed = TABLES.map((t) => kernelTableFromListing(listing, t.family, t.name));
      const drift = full ? null : TABLES.map((t, i) => this.driftOf(t, listed[i] ?? null, i)).find((d) => d !== null) ?? null;
      if (drift) {
        this.log.warn({ drift }, 'the kernel ruleset drifted from what nftfarm applied: repairing with a full resync');
        full = true;
      }
      if (full) kernel = listed;
      // Whatever committed after `before` is checked on the next tick.
      this.verifiedGeneration = before.id;
    }
    const commands = TABLES.flatMap((t, i) => planTransaction(kernel[i] ?? null, tables[i] ?? null, t.family, t.name));

    if (!this.dryRun) {
      this.neighbors.probe(this.backendsToResolve(state));
      await this.announcer.retract(state.announcements, state.routedInterfaces);
    }
    if (commands.length > 0) {
      const script = `${commands.join('\n')}\n`;
      if (this.dryRun) this.log.info({ generation: snapshot.generation, full, script }, 'dry run: not applying the transaction');
      else {
        const started = Date.now();
        const before = await readRulesetGeneration();
        await this.nft.apply(script);
        this.log.info({ generation: snapshot.generation, full, commands: commands.length, ms: Date.now() - started }, 'applied the nftables transaction');
        this.logChanges(state, commands, performance.now() - passStarted, full);
        // One transaction is one commit: if nothing else committed meanwhile, the kernel holds
        // exactly what was planned. Otherwise the next tick lists and compares.
        const after = await readRulesetGeneration();
        if (after.id === before.id + 1) this.verifiedGeneration = after.id;
      }
    }
    if (!this.dryRun && this.lastState) await this.forgetConnections(this.lastState, state);
    this.applied = tables.map((t) => (t ? knownKernelTable(t) : null));
    this.needFull = false;
    if (!this.dryRun) await this.announcer.announce(state.announcements, state.routedInterfaces);
    this.lastInputs = { storeGeneration: snapshot.generation, hostKey };
    this.lastState = state;
    this.succeeded(state, snapshot.generation);
    return commands.length > 0 && !this.dryRun ? 'applied' : 'unchanged';
  }

  /** One line per farm the transaction changed (farm, generation, objects touched, pass duration). */
  private logChanges(state: DesiredState, commands: string[], passMs: number, full: boolean): void {
    const ms = Math.round(passMs * 10) / 10;
    const prefixes = TABLES.map((t) => `${t.family} ${t.name}`);
    const changed = state.farms.filter((f) => this.farms.get(f.farmId)?.generation !== f.generation).length;
    if (changed > MAX_FARM_LOG_LINES) {
      this.log.info({ generation: state.generation, farms: changed, commands: commands.length, passMs: ms, full }, 'applied changes to many farms');
      return;
    }
    for (const c of farmChanges(this.farms, state, commands, prefixes)) {
      this.log.info({ farm: c.farm, farmId: c.farmId, generation: c.generation, deleted: c.deleted || undefined, objects: c.objects, passMs: ms, full }, 'applied farm change');
    }
  }

  /**
   * Connections conntrack keeps for a backend that no longer gets them (cut, removed, its farm
   * stopped, deleted or switched to a mode without conntrack) are deleted: conntrack would
   * otherwise keep sending their packets to it. Draining backends keep theirs.
   */
  private async forgetConnections(before: DesiredState, after: DesiredState): Promise<void> {
    if (!this.conntrack) return;
    const tracked = (state: DesiredState) =>
      new Set(
        state.farms
          .filter((f) => f.running && f.problem === null && usesConntrack(f.nattype))
          .flatMap((f) => f.backends.filter((b) => b.role !== 'excluded').map((b) => b.uid)),
      );
    const still = tracked(after);
    for (const mark of tracked(before)) {
      if (still.has(mark)) continue;
      try {
        const deleted = await this.conntrack.deleteByMark(mark);
        this.log.info({ mark, deleted }, 'deleted the tracked connections of a backend that no longer receives them');
      } catch (err) {
        this.log.warn({ mark, err: err instanceof Error ? err.message : String(err) }, 'could not delete the tracked connections of a backend');
      }
    }
  }

  /** Compares the kernel's structure (from the cheap terse listing) with what was applied last. */
  private driftOf(table: (typeof TABLES)[number], kernel: KernelTable | null, index: number): string | null {
    const applied = (this.applied as Tables)[index] ?? null;
    if (!applied) return kernel ? `a table ${table.family} ${table.name} nftfarm did not create exists` : null;
    if (!kernel) return `the table ${table.family} ${table.name} is missing`;
    for (const name of applied.chains.keys()) if (!kernel.chains.has(name)) return `chain ${name} is missing`;
    for (const name of applied.sets.keys()) if (!kernel.sets.has(name)) return `set ${name} is missing`;
    for (const name of kernel.chains.keys()) if (!applied.chains.has(name)) return `unknown chain ${name}`;
    for (const [name, chain] of applied.chains) {
      const count = kernel.chains.get(name)?.listedRules ?? 0;
      const expected = chain.rules?.length ?? 0;
      if (count !== expected) return `chain ${name} has ${count} rules instead of ${expected}`;
    }
    return null;
  }

  private backendsToResolve(state: DesiredState): { ifindex: number; ip: string }[] {
    return state.farms
      .filter((f) => f.running && f.problem === null && f.iface)
      .flatMap((f) => f.backends.map((b) => ({ ifindex: f.iface!.index, ip: b.ip })));
  }

  private succeeded(state: DesiredState, generation: number): void {
    const seen = new Set<number>();
    for (const f of state.farms) {
      seen.add(f.farmId);
      const backends = new Map(f.backends.map((b) => [b.uid, { usable: b.role !== 'excluded' && !b.checkFailing, ...(b.reason ? { reason: b.reason } : {}) }]));
      this.farms.set(f.farmId, {
        generation: f.generation,
        state: !f.running ? 'stopped' : f.problem ? 'failed' : 'applied',
        appliedGeneration: f.problem && f.running ? null : f.generation,
        error: f.running ? f.problem : null,
        interface: f.iface?.name ?? null,
        notice:
          f.algorithm === 'leastconn' && !usesConntrack(f.nattype)
            ? `leastconn needs connection tracking, which nattype '${f.nattype}' does not have: new flows are balanced by weight (as in ZEVENET)`
            : null,
        backends,
      });
    }
    for (const id of this.farms.keys()) if (!seen.has(id)) this.farms.delete(id);
    this.status.appliedGeneration = generation;
    this.status.lastPassAt = new Date().toISOString();
    this.status.lastError = null;
    this.status.consecutiveFailures = 0;
    this.status.passes++;
    this.notBefore = 0;
  }

  private failed(err: unknown, passMs: number): void {
    const message = err instanceof Error ? err.message : String(err);
    this.status.consecutiveFailures++;
    this.status.lastError = message;
    this.status.lastPassAt = new Date().toISOString();
    this.status.passes++;
    // Unknown kernel state now: the next pass lists the kernel and converges all of it.
    this.applied = undefined;
    this.needFull = true;
    const backoff = Math.min(this.maxBackoffMs, 1000 * 2 ** (this.status.consecutiveFailures - 1));
    this.notBefore = Date.now() + backoff;
    this.log.error(
      { err: message, generation: this.store.generation(), passMs: Math.round(passMs * 10) / 10, failures: this.status.consecutiveFailures, retryInMs: backoff },
      'reconcile pass failed; the kernel keeps its previous ruleset',
    );
    for (const { farm } of this.store.snapshot().farms) {
      const runtime = this.farms.get(farm.id);
      if (runtime?.appliedGeneration === farm.generation) continue;
      this.farms.set(farm.id, {
        generation: farm.generation,
        state: 'failed',
        appliedGeneration: runtime?.appliedGeneration ?? null,
        error: message,
        interface: runtime?.interface ?? null,
        backends: runtime?.backends ?? new Map(),
      });
    }
    this.dirty = true;
    this.schedule(backoff);
  }
}

/**
 * The backends whose connection count matters: all of a leastconn farm's, and those with a
 * max_conns, in nat and dnat. A change in anyone else's count wakes no pass.
 */
function countedMarks(state: DesiredState): Set<number> {
  const marks = new Set<number>();
  for (const f of state.farms) {
    if (!f.running || f.problem !== null || !usesConntrack(f.nattype)) continue;
    for (const b of f.backends) if (f.algorithm === 'leastconn' || b.maxConns > 0) marks.add(b.uid);
  }
  return marks;
}

