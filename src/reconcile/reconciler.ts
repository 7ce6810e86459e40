/**
 * The only writer to the kernel. It follows the store's change feed (which farms changed) and
 * the host's facts (interfaces, backend MACs, health verdicts, connection counts); each pass
 * re-derives and re-renders only the farms those touched, plans their differences from what
 * it applied (element-level changes of the table-wide maps, plan.ts) and applies them as one
 * atomic transaction. A pass starts as soon as something changed and none is running; changes
 * that arrive meanwhile share the next one. A full pass (at start, after a failure, after
 * drift) re-derives every farm and rewrites what the kernel holds of nftfarm's tables in one
 * transaction, keeping pins and sessions. A failed pass leaves the kernel as it was, is
 * reported on the farms it carried and in the status, and is retried with backoff as a full
 * pass.
 */
import type { Logger } from 'pino';
import type { Store } from '../store/store.js';
import type { HostInterface, HostNetwork } from '../dataplane/netlink/host-network.js';
import { initialSystemRuntime, type DataplaneView, type FarmRuntime, type LiveSession, type SystemRuntime } from '../model/runtime.js';
import type { TableInventory } from '../dataplane/netlink/nft-objects.js';
import type { KernelWriter, LoadSession } from '../dataplane/kernel-writer.js';
import type { TableName } from '../dataplane/nft/objects.js';
import { isElementOperation, transactionText, type ElementOperation, type Operation } from '../dataplane/nft/transaction.js';
import { VipAnnouncer, type Sysctl } from '../dataplane/announcer.js';
import { NeighborTable } from '../dataplane/neighbors.js';
import type { Conntrack } from '../dataplane/conntrack.js';
import type { SessionKeyLayout } from '../dataplane/sessions.js';
import { findConnectedInterface } from '../dataplane/netlink/ipv4.js';
import {
  desiredFarm,
  isRendered,
  localAddressesOf,
  sendsToBackendMacs,
  usesConntrack,
  type Announcement,
  type BackendHealth,
  type DesiredFarm,
  type HostFacts,
  type VipInterface,
} from './desired.js';
import { FarmClaims } from './claims.js';
import { farmServesVip, sortVips } from '../cluster/vips.js';
import { dynamicMap, renderFarm, SESSION_KEYS } from './farm-render.js';
import { AppliedState, planChanges } from './plan.js';
import { ingressChainOf, ipBaseChains, tableSets, TABLE_NAMES, TABLES } from './tables.js';
import { ANY_DISPATCH_MAP, PORT_DISPATCH_MAP, RANGE_DISPATCH_MAP, farmSessionsMap } from './names.js';

/** How often the connections of leastconn and max_conns backends are counted. */
const LOAD_INTERVAL_MS = 1000;
/** Drift that the inventory does not show (an edited rule or element) is rewritten at most this often. */
const DRIFT_REWRITE_MS = 6000;

/** A full pass lets the event loop in after deriving or comparing this many farms (see fullPass). */
const YIELD_EVERY = 1000;
const yieldToEventLoop = () => new Promise<void>((resolve) => setImmediate(resolve));

/** A first load of more farms than this goes in chunks of this many (see loadInChunks). */
const LOAD_CHUNK_FARMS = 500;
/** A reconciler whose last pass ended longer ago than this is quiet: see kick(). */
const QUIET_MS = 50;

/** Above this many farms changed in one pass (a full pass), one summary line instead of one per farm. */
const MAX_FARM_LOG_LINES = 50;

/** What a pass did: committed a transaction, found nothing to commit, or had nothing to do. */
export type PassResult = 'applied' | 'unchanged' | 'idle' | 'failed';
export type PassKind = 'full' | 'incremental';
export interface PassReport {
  kind: PassKind;
  result: PassResult;
  seconds: number;
}

/** What the reconciler reads and writes in the kernel (a fake in unit tests). */
export interface KernelAccess {
  writer: KernelWriter;
  /** The chains and sets of one of nftfarm's tables; null when it does not exist. */
  inventory(table: TableName): Promise<TableInventory | null>;
  /** The kernel's ruleset generation: every commit, by anyone, bumps it. */
  generation(): Promise<number>;
  /** A dynamic map's elements (persistence sessions); null when it does not exist. */
  sessions(table: TableName, map: string, layout: SessionKeyLayout): Promise<LiveSession[] | null>;
}

/** What the reconciler reads from the health monitor. */
export interface HealthFacts {
  healthOf(uid: number): BackendHealth | null;
}

export interface ReconcilerOptions {
  store: Store;
  net: HostNetwork;
  kernel: KernelAccess;
  log: Logger;
  /** Render and log, never write the kernel (no root needed). */
  dryRun: boolean;
  /** Counts and flushes the connections of nat and dnat farms; absent: not done. */
  conntrack?: Conntrack;
  /** Period of the checks for drift, interface changes, unresolved MACs and announcements. */
  resyncIntervalMs?: number;
  /** The wait before retrying a failed pass, doubled at each failure up to maxBackoffMs. */
  backoffMs?: number;
  maxBackoffMs?: number;
  /** Backend health from the checks (src/health); absent: every backend counts as healthy. */
  health?: HealthFacts;
  /** Called after every pass (metrics). */
  onPass?: (report: PassReport) => void;
  /** Where kernel settings are read and written (/proc/sys; a fake in unit tests). */
  sysctl?: Sysctl;
  /** Called when the set of VIPs this node can serve changed (the BGP speaker). */
  onServableVipsChanged?: () => void;
}

export class Reconciler implements DataplaneView {
  private readonly store: Store;
  private readonly net: HostNetwork;
  private readonly kernel: KernelAccess;
  private readonly log: Logger;
  private readonly dryRun: boolean;
  private readonly conntrack: Conntrack | undefined;
  private readonly health: HealthFacts | undefined;
  private readonly resyncIntervalMs: number;
  private readonly backoffMs: number;
  private readonly maxBackoffMs: number;
  private readonly onPass: ((report: PassReport) => void) | undefined;
  private readonly announcer: VipAnnouncer;
  private readonly neighbors: NeighborTable;

  /** What the kernel holds of nftfarm's tables, as applied. */
  private applied = new AppliedState();
  /** Each farm as derived from its configuration and the host (before claims across farms are judged). */
  private readonly derived = new Map<number, DesiredFarm>();
  /** Each farm as applied (claims judged). */
  private readonly desired = new Map<number, DesiredFarm>();
  private claims = new FarmClaims();
  private readonly runtimes = new Map<number, FarmRuntime>();
  /** Farms that send to backend MACs, by backend address: a neighbour change wakes only them. */
  private readonly farmsByBackendIp = new Map<string, Set<number>>();
  /** The farm of each backend whose connection count matters (leastconn, max_conns). */
  private readonly counted = new Map<number, number>();
  private connections: Map<number, number> | undefined = undefined;
  private interfaces: HostInterface[] = [];
  private interfacesKey = '';
  /** VIP announcements and routed interfaces, with the farms that want each. */
  private readonly vipUsers = new Map<string, { iface: VipInterface; farms: Set<number> }>();
  private readonly routedUsers = new Map<string, { iface: VipInterface; farms: Set<number> }>();
  private announcedKey = '';
  /** VIPs with a farm that serves them as applied (BGP announces them), with those farms. */
  private readonly servable = new Map<string, Set<number>>();
  private readonly servesVip = new Map<number, string>();
  private readonly onServableVipsChanged: (() => void) | undefined;

  private readonly dirty = new Set<number>();
  private fullNeeded = true;
  private neighborsDirty = false;
  private interfacesDirty = false;
  private running = false;
  /** When the last pass ended (performance.now()). */
  private lastPassEnded = 0;
  private lock: Promise<unknown> = Promise.resolve();
  private notBefore = 0;
  private stopped = false;
  /** The kernel's ruleset generation when it was last known to hold what nftfarm applied. */
  private knownGeneration = -1;
  /**
   * Farms whose rules the kernel refused, at the store generation it refused: left out of
   * every transaction (the kernel keeps what it had of them) until their configuration changes.
   */
  private readonly refused = new Map<number, { generation: number; error: string }>();
  /** Whether the first full pass tried to adopt what the kernel holds (see adopt). */
  private adoptionTried = false;
  private lastDriftRewrite = 0;
  private readonly status: SystemRuntime;
  private timer: NodeJS.Timeout | null = null;
  private ticker: NodeJS.Timeout | null = null;
  private loadTicker: NodeJS.Timeout | null = null;
  private counting = false;
  private unsubscribe: (() => void)[] = [];

  constructor(options: ReconcilerOptions) {
    this.store = options.store;
    this.net = options.net;
    this.kernel = options.kernel;
    this.log = options.log;
    this.dryRun = options.dryRun;
    this.conntrack = options.conntrack;
    this.health = options.health;
    this.resyncIntervalMs = options.resyncIntervalMs ?? 2000;
    this.backoffMs = options.backoffMs ?? 1000;
    this.maxBackoffMs = options.maxBackoffMs ?? 30_000;
    this.onPass = options.onPass;
    this.onServableVipsChanged = options.onServableVipsChanged;
    this.announcer = new VipAnnouncer(this.net, this.store, this.log, options.sysctl);
    this.neighbors = new NeighborTable(this.net, this.store, this.log);
    this.status = initialSystemRuntime(this.dryRun ? 'dry-run' : 'kernel');
  }

  // ---- DataplaneView ----

  farm(farmId: number): FarmRuntime | undefined {
    return this.runtimes.get(farmId);
  }

  system(): SystemRuntime {
    return { ...this.status, storeGeneration: this.store.generation() };
  }

  async sessions(farmId: number): Promise<LiveSession[]> {
    const where = this.sessionsMapOf(farmId);
    if (!where) return [];
    try {
      return (await this.kernel.sessions(where.table, where.map, where.layout)) ?? [];
    } catch (err) {
      this.log.warn({ farmId, err: messageOf(err) }, 'could not read the sessions of a farm');
      return [];
    }
  }

  /** A write to the kernel: done between passes, like every other. */
  async flushSessions(farmId: number, backendUid?: number): Promise<number> {
    return this.exclusive(async () => {
      const where = this.sessionsMapOf(farmId);
      if (!where) return 0;
      for (let attempt = 0; ; attempt++) {
        const victims = (await this.sessions(farmId)).filter((s) => backendUid === undefined || s.mark === backendUid);
        if (victims.length === 0) return 0;
        const set = dynamicMap(where.map, SESSION_KEYS[where.layout].type, 1);
        const op: ElementOperation =
          backendUid === undefined
            ? { op: 'flush-set', table: TABLES[where.table], set, elements: [] }
            : { op: 'delete-elements', table: TABLES[where.table], set, elements: victims.map((v) => ({ key: v.key, value: String(v.mark) })) };
        try {
          await this.kernel.writer.apply([op]);
          this.log.info({ farmId, backendUid: backendUid ?? null, sessions: victims.length }, 'flushed persistence sessions');
          return victims.length;
        } catch (err) {
          // A session that expired meanwhile makes its delete fail: read again and retry once.
          if (attempt > 0) throw err;
        }
      }
    });
  }

  /** Where the farm's sessions are; null when it has none in the kernel. */
  private sessionsMapOf(farmId: number): { table: TableName; map: string; layout: SessionKeyLayout } | null {
    const f = this.desired.get(farmId);
    if (this.dryRun || !f || !isRendered(f) || f.persistence === '') return null;
    return { table: usesConntrack(f.nattype) ? 'ip' : 'netdev', map: farmSessionsMap(f.slot), layout: f.persistence };
  }

  /** The VIPs this node can serve as the kernel holds its farms now (src/cluster/vips.ts). */
  servableVips(): string[] {
    return sortVips(this.servable.keys());
  }

  /** After a commit: which VIPs the applied farms can serve. */
  private updateServable(ids: Iterable<number>): void {
    let changed = false;
    for (const id of ids) {
      const farm = this.desired.get(id);
      const vip = farm && farmServesVip(farm) ? farm.vip : null;
      const was = this.servesVip.get(id) ?? null;
      if (was === vip) continue;
      if (was !== null) {
        const farms = this.servable.get(was)!;
        farms.delete(id);
        if (farms.size === 0) {
          this.servable.delete(was);
          changed = true;
        }
        this.servesVip.delete(id);
      }
      if (vip !== null) {
        const farms = this.servable.get(vip) ?? new Set<number>();
        if (farms.size === 0) changed = true;
        farms.add(id);
        this.servable.set(vip, farms);
        this.servesVip.set(id, vip);
      }
    }
    if (changed) this.onServableVipsChanged?.();
  }

  // ---- inputs ----

  /** Farms whose configuration changed (the store's change feed). */
  farmsChanged(farmIds: Iterable<number>): void {
    for (const id of farmIds) this.dirty.add(id);
    this.kick(performance.now() - this.lastPassEnded > QUIET_MS);
  }

  /** The health of some backends of these farms changed. */
  healthChanged(farmIds: Iterable<number>): void {
    this.farmsChanged(farmIds);
  }

  // ---- lifecycle ----

  /** Converges once (a full pass in one transaction), then follows the changes. */
  async start(): Promise<void> {
    this.unsubscribe.push(this.store.onChange((change) => this.farmsChanged(change.farmIds)));
    // Watch first: the first pass asks the kernel for missing MACs, and the answers must wake us.
    if (this.net.watchNeighbors) {
      this.unsubscribe.push(
        this.net.watchNeighbors(() => {
          this.neighborsDirty = true;
          this.kick();
        }),
      );
    }
    if (this.net.watchInterfaces) {
      this.unsubscribe.push(
        this.net.watchInterfaces(() => {
          this.interfacesDirty = true;
          this.kick();
        }),
      );
    }
    await this.exclusive(() => this.onePass());
    this.ticker = setInterval(() => void this.tick(), this.resyncIntervalMs);
    this.ticker.unref();
    if (this.conntrack && !this.dryRun) {
      this.loadTicker = setInterval(() => void this.countConnections(), LOAD_INTERVAL_MS);
      this.loadTicker.unref();
    }
    this.kick();
  }

  /** Stops following changes after applying what is pending; the kernel keeps the rules. */
  async stop(): Promise<void> {
    this.stopped = true;
    for (const u of this.unsubscribe) u();
    if (this.timer) clearTimeout(this.timer);
    if (this.ticker) clearInterval(this.ticker);
    if (this.loadTicker) clearInterval(this.loadTicker);
    await this.lock;
    // A farm deleted just before shutdown must still lose its rules and announcement.
    if (this.dirty.size > 0 || this.fullNeeded) {
      await this.exclusive(() => this.onePass()).catch((err: unknown) => this.log.error({ err: messageOf(err) }, 'the last reconcile pass before stopping failed'));
    }
    this.neighbors.close();
  }

  /** Resolves once every change seen so far is applied (or has failed) and no pass runs. */
  async idle(): Promise<void> {
    for (;;) {
      await this.lock;
      if (this.stopped || (!this.running && (!this.pending() || Date.now() < this.notBefore))) return;
      await new Promise((resolve) => setImmediate(resolve));
    }
  }

  /** Runs `fn` while no pass runs, and keeps passes waiting until it is done. */
  private exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const result = this.lock.then(fn);
    this.lock = result.catch(() => undefined);
    return result;
  }

  private pending(): boolean {
    return this.fullNeeded || this.dirty.size > 0 || this.neighborsDirty || this.interfacesDirty;
  }

  /**
   * Starts a pass now if something is pending and none runs (after the backoff, if any).
   * `soon`: a change to a quiet reconciler. Its pass starts in a microtask, that is before
   * the API has answered the request that made the change (the answer and its audit row,
   * with its fsync, follow while the kernel commits), not after the event loop's next I/O
   * turn: measured at one farm, 0.8-1 ms sooner at the kernel. A busy reconciler waits
   * for that turn instead, so that the writes of many requests go in one pass: starting
   * every pass at once under 1,000 PUTs/s made passes of one farm each, and the applied
   * generation fell seconds behind.
   */
  private kick(soon = false): void {
    if (this.stopped || this.running || this.timer || !this.pending()) return;
    const wait = this.notBefore - Date.now();
    if (wait > 0) {
      this.timer = setTimeout(() => {
        this.timer = null;
        this.kick();
      }, wait);
      this.timer.unref();
      return;
    }
    this.running = true;
    if (soon) queueMicrotask(() => void this.loop());
    else setImmediate(() => void this.loop());
  }

  private async loop(): Promise<void> {
    try {
      while (!this.stopped && this.pending() && Date.now() >= this.notBefore) await this.exclusive(() => this.onePass());
    } finally {
      this.running = false;
      this.kick();
    }
  }

  private async onePass(): Promise<void> {
    const kind: PassKind = this.fullNeeded ? 'full' : 'incremental';
    const started = performance.now();
    // A pass that found nothing to do (a neighbour event about no backend) is not reported.
    const report = (result: PassResult) => {
      if (result === 'idle') return;
      const seconds = (performance.now() - started) / 1000;
      this.status.lastPass = { kind, result, ms: Math.round(seconds * 10_000) / 10 };
      this.onPass?.({ kind, result, seconds });
    };
    const carried = new Set<number>();
    try {
      report(kind === 'full' ? await this.fullPass(carried) : await this.incrementalPass(carried));
    } catch (err) {
      report('failed');
      this.failed(err, performance.now() - started, carried);
    } finally {
      this.lastPassEnded = performance.now();
    }
  }

  // ---- passes ----

  private facts(): HostFacts {
    const names = new Map(this.interfaces.map((i) => [i.index, i.name]));
    return {
      interfaces: this.interfaces,
      macOf: (ifindex, ip) => this.neighbors.lookup(ifindex, names.get(ifindex) ?? '', ip).mac,
      connections: this.connections,
      healthOf: (uid) => this.health?.healthOf(uid) ?? null,
      routedVips: this.store.bgpSettings().enabled,
    };
  }

  private async refreshInterfaces(): Promise<boolean> {
    const interfaces = await this.net.listInterfaces();
    const key = JSON.stringify(interfaces);
    if (key === this.interfacesKey) return false;
    this.interfaces = interfaces;
    this.interfacesKey = key;
    return true;
  }

  /** Applies the changes of the dirty farms. */
  private async incrementalPass(carried: Set<number>): Promise<PassResult> {
    const started = performance.now();
    const generation = this.store.generation();
    if (this.interfacesDirty) {
      this.interfacesDirty = false;
      // Every farm's VIP and backends are looked up among the interfaces: all re-derived.
      if (await this.refreshInterfaces()) for (const id of this.derived.keys()) this.dirty.add(id);
    }
    if (this.neighborsDirty) {
      this.neighborsDirty = false;
      const changed = await this.neighbors.refresh(this.interfaces);
      for (const ip of changed) for (const id of this.farmsByBackendIp.get(ip) ?? []) this.dirty.add(id);
      if (changed.size > 0) this.log.debug({ addresses: [...changed].slice(0, 10), farms: this.dirty.size }, 'neighbours changed');
    }
    if (this.dirty.size === 0) return 'idle';
    const ids = [...this.dirty];
    this.dirty.clear();
    for (const id of ids) carried.add(id);
    const configs = this.store.farmConfigs(ids);
    const facts = this.facts();
    const local = localAddressesOf(this.interfaces);
    // Claims first for every changed farm, then judgements: a farm's judgement depends on
    // the claims of others, and a change of claims may change an overlapping farm's.
    const rejudge = new Set<number>();
    for (const id of ids) {
      const config = configs.get(id);
      const farm = config ? desiredFarm(config, facts, local) : null;
      if (farm) this.derived.set(id, farm);
      else this.derived.delete(id);
      for (const other of this.claims.set(farm, id)) rejudge.add(other);
    }
    const changes = new Map<number, DesiredFarm | null>();
    const before = new Map<number, DesiredFarm | undefined>();
    for (const id of ids) this.judge(id, changes, before, true);
    for (const id of rejudge) if (!changes.has(id) && this.derived.has(id)) this.judge(id, changes, before, false);
    for (const id of changes.keys()) carried.add(id);
    return this.apply(changes, before, generation, started, 'incremental');
  }

  /** Judges the farm's claims and renders it when its state changed (`changed`: its inputs changed). */
  private judge(id: number, changes: Map<number, DesiredFarm | null>, before: Map<number, DesiredFarm | undefined>, changed: boolean, retryRefused = false): void {
    const derived = this.derived.get(id);
    const problem = derived ? this.claims.problemOf(derived) : null;
    const farm = derived && problem ? { ...derived, problem } : (derived ?? null);
    const was = this.desired.get(id);
    if (!changed && was && farm && was.problem === farm.problem) return;
    // Refused as it is: keep what the kernel has of it; a new configuration is tried again.
    // A full pass tries every farm again (it rewrites the tables: what it leaves out is gone).
    const refused = this.refused.get(id);
    if (refused && farm && refused.generation === farm.generation && !retryRefused) return;
    if (refused) this.refused.delete(id);
    before.set(id, was);
    if (farm) this.desired.set(id, farm);
    else this.desired.delete(id);
    changes.set(id, farm);
  }

  /** Derives, renders and rewrites everything (start, after a failure or drift). */
  private async fullPass(carried: Set<number>): Promise<PassResult> {
    const started = performance.now();
    const snapshot = this.store.snapshot();
    this.interfacesDirty = false;
    await this.refreshInterfaces();
    await this.neighbors.refresh(this.interfaces);
    this.neighborsDirty = false;
    this.dirty.clear();
    const facts = this.facts();
    const local = localAddressesOf(this.interfaces);
    this.claims = new FarmClaims();
    const gone = new Set(this.desired.keys());
    this.derived.clear();
    // A full pass of 10,000 farms derives and compares for a few hundred milliseconds: it
    // lets the event loop in every YIELD_EVERY farms, so the API answers meanwhile (right
    // after a restart the API listens while this pass starts).
    let done = 0;
    for (const config of snapshot.farms) {
      if (++done % YIELD_EVERY === 0) await yieldToEventLoop();
      const farm = desiredFarm(config, facts, local);
      this.derived.set(farm.farmId, farm);
      this.claims.set(farm);
      gone.delete(farm.farmId);
      carried.add(farm.farmId);
    }
    const changes = new Map<number, DesiredFarm | null>();
    const before = new Map<number, DesiredFarm | undefined>();
    for (const id of this.derived.keys()) {
      if (++done % YIELD_EVERY === 0) await yieldToEventLoop();
      this.judge(id, changes, before, true, true);
    }
    for (const id of gone) {
      before.set(id, this.desired.get(id));
      this.desired.delete(id);
      changes.set(id, null);
    }
    const adopted = this.adoptionTried || this.dryRun ? null : await this.adopt();
    this.adoptionTried = true;
    if (adopted) {
      // What the kernel holds is what was last committed: plan only the farms that differ.
      const same = new Set<number>();
      for (const [id, farm] of changes) {
        if (++done % YIELD_EVERY === 0) await yieldToEventLoop();
        const was = adopted.farms.get(id);
        if (was && farm && JSON.stringify(was) === JSON.stringify(farm)) same.add(id);
      }
      this.applied = adopted;
      this.log.info({ farms: adopted.farms.size, unchanged: same.size, generation: this.knownGeneration }, 'adopted the rules the kernel holds: they are what nftfarm last committed');
      return this.apply(changes, before, snapshot.generation, started, 'full', same);
    }
    // The kernel's state is unknown: plan from nothing, then rebase onto what it holds.
    const previous = this.applied;
    this.applied = new AppliedState();
    return this.apply(changes, before, snapshot.generation, started, 'full', null, previous);
  }

  /**
   * After a restart: the state nftfarm last committed, when the kernel provably still holds
   * it (its ruleset generation is the one recorded right after that commit, so nobody has
   * committed since, and the tables' chains and sets are there); otherwise null. Adopting
   * costs no kernel write and no element dump, whatever the number of farms.
   */
  private async adopt(): Promise<AppliedState | null> {
    const recorded = this.store.appliedState();
    if (recorded.generation === null) return null;
    const generation = await this.kernel.generation();
    if (generation !== recorded.generation) {
      this.log.info({ recorded: recorded.generation, kernel: generation }, 'the kernel changed since nftfarm last committed: rewriting its tables');
      return null;
    }
    const state = new AppliedState();
    const farms = new Map<number, DesiredFarm>();
    for (const text of recorded.farms) {
      const farm = JSON.parse(text) as DesiredFarm;
      farms.set(farm.farmId, farm);
    }
    // Rebuilt YIELD_EVERY farms at a time, the event loop let in between (10,000 farms held it
    // for about half a second, right after the API started listening), as a first load plans.
    const ids = [...farms.keys()];
    for (let i = 0; i < ids.length; i += YIELD_EVERY) {
      planChanges(state, new Map(ids.slice(i, i + YIELD_EVERY).map((id) => [id, farms.get(id)!]))).commit();
      await yieldToEventLoop();
    }
    for (const table of TABLE_NAMES) {
      const problem = driftOf(table, await this.kernel.inventory(table), state);
      if (problem) {
        this.log.info({ problem }, 'the kernel does not hold what nftfarm last committed: rewriting its tables');
        return null;
      }
    }
    this.knownGeneration = generation;
    return state;
  }

  /** Plans, writes and records one pass's changes. */
  private async apply(
    changes: Map<number, DesiredFarm | null>,
    before: Map<number, DesiredFarm | undefined>,
    generation: number,
    started: number,
    kind: PassKind,
    adopted: ReadonlySet<number> | null = null,
    /** In a rewrite: what was applied before it (a refused farm keeps that). */
    previous: AppliedState | null = null,
  ): Promise<PassResult> {
    for (const [id] of changes) this.updateIndexes(id, before.get(id), this.desired.get(id));
    let wanted = this.wantedAnnouncements();
    if (!this.dryRun && wanted.key !== this.announcedKey) await this.announcer.retract(wanted.announcements, wanted.routed);
    // A full pass rewrites the kernel's tables (rebased onto what they hold), unless it
    // adopted them; an incremental one changes what the changed farms need.
    const rewrite = kind === 'full' && !adopted && !this.dryRun;
    const inventories = rewrite ? await Promise.all(TABLE_NAMES.map((t) => this.kernel.inventory(t))) : [];
    const empty = inventories.every((i) => i === null);
    const kernelHolds = new Map(TABLE_NAMES.map((t, i) => [t, inventories[i] ?? null]));
    const planFor = (farms: ReadonlyMap<number, DesiredFarm | null>) => {
      const plan = planChanges(this.applied, adopted ? new Map([...farms].filter(([id]) => !adopted.has(id))) : farms);
      return { plan, operations: rewrite && !empty ? rebase(plan.operations, kernelHolds) : plan.operations };
    };

    // A first load of many farms goes in chunks: the plan of 10,000 farms at once (every
    // element of every region) made the heap peak, and the process kept that memory.
    const chunked = rewrite && empty && changes.size > LOAD_CHUNK_FARMS;
    let { plan, operations } = chunked ? { plan: null, operations: [] as Operation[] } : planFor(changes);
    let via = '';
    const refusedNow = new Set<number>();
    let rowsWritten = false;
    if (chunked) {
      via = 'load';
      const loaded = await this.loadInChunks(changes, before);
      for (const id of loaded.refused) refusedNow.add(id);
      rowsWritten = loaded.rowsWritten;
    } else if (this.dryRun) {
      if (operations.length > 0) this.log.info({ generation, script: transactionText(operations) }, 'dry run: not applying the transaction');
    } else if (operations.length > 0 || rewrite) {
      try {
        via = await this.write(operations, rewrite, empty);
      } catch (err) {
        // Find the farms the kernel refuses, leave them out, and apply everything else.
        const refused = await this.isolate(changes, planFor);
        if (refused.size === 0) throw err;
        for (const [id, error] of refused) {
          this.leaveOut(id, error, changes, before, rewrite ? (previous?.farms.get(id) ?? null) : undefined);
          refusedNow.add(id);
        }
        wanted = this.wantedAnnouncements();
        ({ plan, operations } = planFor(changes));
        via = await this.write(operations, rewrite, empty);
      }
    }
    plan?.commit();
    this.fullNeeded = false;
    // An adopted kernel is already recorded: only the farms this pass planned are written
    // (a start with 10,000 unchanged farms writes no row).
    if (!this.dryRun) this.record(adopted ? new Map([...changes].filter(([id]) => !adopted.has(id))) : changes, kind === 'full' && !adopted, { rowsWritten });

    if (!this.dryRun) {
      this.probe(changes.keys());
      if (wanted.key !== this.announcedKey) {
        await this.announcer.announce(wanted.announcements, wanted.routed);
        this.announcedKey = wanted.key;
      }
      await this.forgetConnections(changes.keys(), before);
    }
    this.updateServable(changes.keys());
    const passMs = Math.round((performance.now() - started) * 10) / 10;
    this.logChanges(changes, before, plan?.touched ?? new Map(), passMs, kind, via);
    for (const id of changes.keys()) {
      const farm = this.desired.get(id);
      if (farm) this.runtimes.set(id, runtimeOf(farm));
      else this.runtimes.delete(id);
    }
    for (const [id, { generation: refusedAt, error }] of this.refused) {
      if (!refusedNow.has(id) && !rewrite) continue;
      const runtime = this.runtimes.get(id);
      this.runtimes.set(id, {
        generation: refusedAt,
        state: 'failed',
        appliedGeneration: this.applied.farms.get(id)?.generation ?? null,
        error: `the kernel refused this farm's rules, so it keeps what it had of them (other farms are applied): ${error}`,
        interface: runtime?.interface ?? null,
        notice: runtime?.notice ?? null,
        backends: runtime?.backends ?? new Map(),
      });
    }
    this.status.appliedGeneration = generation;
    this.status.lastPassAt = new Date().toISOString();
    this.status.firstPassAt ??= this.status.lastPassAt;
    this.status.lastError = null;
    this.status.consecutiveFailures = 0;
    this.status.passes++;
    this.notBefore = 0;
    return (operations.length > 0 || chunked) && !this.dryRun ? 'applied' : 'unchanged';
  }

  /**
   * Writes a pass's operations: a rewrite of the tables (a first load into an empty kernel
   * goes in batches), or one transaction. Keeps `knownGeneration` exact when it can be.
   */
  private async write(operations: readonly Operation[], rewrite: boolean, empty: boolean): Promise<string> {
    if (rewrite) {
      let via = '';
      if (operations.length > 0) {
        if (empty) await this.kernel.writer.load(operations, isDispatch);
        else await this.kernel.writer.apply(operations);
        via = empty ? 'load' : 'nft';
      }
      this.knownGeneration = await this.kernel.generation();
      return via;
    }
    // One transaction is one commit: if nothing else committed since the generation we know,
    // the commit made the next one and the kernel holds exactly what was planned. Otherwise
    // the next check compares. (The writer reports the commit's generation, so a known
    // generation needs no round trip before the commit.)
    const was = this.knownGeneration > 0 ? this.knownGeneration : await this.kernel.generation();
    const result = await this.kernel.writer.apply(operations);
    const now = result.generation ?? (await this.kernel.generation());
    if (now === was + 1 && this.knownGeneration === was) this.knownGeneration = now;
    else this.knownGeneration = -1;
    return result.via;
  }

  /**
   * A first load into an empty kernel, LOAD_CHUNK_FARMS farms at a time, and the dispatch
   * elements of every farm last, in one batch (no packet reaches a farm before its elements
   * are in). Until then no farm chain is reachable from the base chains, so the kernel's
   * validation of jumps, which walks every reachable chain at each commit, stays small: with
   * each chunk's dispatch sent after it, the later chunks' commits walked thousands of farms.
   * A chunk the kernel refuses is bisected like any pass; the refused farms are left out.
   * Returns them, and whether the record's rows are written already (loadPipelined). The
   * dispatch batch failing fails the pass (the next one rewrites the tables).
   */
  private async loadInChunks(changes: Map<number, DesiredFarm | null>, before: Map<number, DesiredFarm | undefined>): Promise<{ refused: number[]; rowsWritten: boolean }> {
    const refused: number[] = [];
    const ids = [...changes.keys()];
    const dispatch: Operation[] = [];
    const withoutDispatch = (operations: readonly Operation[]) => {
      const now: Operation[] = [];
      for (const o of operations) (isElementOperation(o) && isDispatch(o) ? dispatch : now).push(o);
      return now;
    };
    const session = await this.kernel.writer.beginLoad?.();
    if (session) {
      if (await this.loadPipelined(session, ids, changes, withoutDispatch, dispatch)) return { refused, rowsWritten: true };
      dispatch.length = 0;
    }
    for (let i = 0; i < ids.length; i += LOAD_CHUNK_FARMS) {
      const chunk = new Map(ids.slice(i, i + LOAD_CHUNK_FARMS).map((id) => [id, changes.get(id)!]));
      const planFor = (farms: ReadonlyMap<number, DesiredFarm | null>) => planChanges(this.applied, farms);
      let plan = planFor(chunk);
      const mark = dispatch.length;
      try {
        await this.kernel.writer.load(withoutDispatch(plan.operations), isDispatch);
      } catch (err) {
        dispatch.length = mark;
        const found = await this.isolate(chunk, planFor);
        if (found.size === 0) throw err;
        for (const [id, error] of found) {
          this.leaveOut(id, error, changes, before, null);
          chunk.delete(id);
          refused.push(id);
        }
        plan = planFor(chunk);
        await this.kernel.writer.load(withoutDispatch(plan.operations), isDispatch);
      }
      plan.commit();
    }
    await this.kernel.writer.load(dispatch, isDispatch);
    this.knownGeneration = await this.kernel.generation();
    return { refused, rowsWritten: false };
  }

  /**
   * The first load as loadInChunks' loop, but each chunk is planned while the kernel inserts
   * the one before (in the load writer's helper process): the kernel's share of a cold start of
   * 10,000 farms (about 1 s in sendmsg) then overlaps the planning instead of following it.
   * True once the kernel holds every farm. On any failure (a farm the kernel refuses, a
   * batch too large), false with the kernel and the applied state as before the load: the
   * tables it made are removed, and loadInChunks' loop loads again, finding the refused farms.
   */
  private async loadPipelined(
    session: LoadSession,
    ids: readonly number[],
    changes: ReadonlyMap<number, DesiredFarm | null>,
    withoutDispatch: (operations: readonly Operation[]) => Operation[],
    dispatch: readonly Operation[],
  ): Promise<boolean> {
    try {
      try {
        for (let i = 0; i < ids.length; i += LOAD_CHUNK_FARMS) {
          const plan = planChanges(this.applied, new Map(ids.slice(i, i + LOAD_CHUNK_FARMS).map((id) => [id, changes.get(id)!])));
          await session.write(withoutDispatch(plan.operations));
          // Recorded before the kernel answers, so the next chunk plans on top of it; undone
          // below if anything fails.
          plan.commit();
          // The API's requests get in between chunks.
          await yieldToEventLoop();
        }
        await session.write(dispatch);
        // The record's rows while the kernel inserts the last batches: without a generation,
        // so a crash before the load ends makes the next start rewrite; apply() then adds
        // the generation alone.
        this.record(new Map(), true, { provisional: true });
      } finally {
        await session.finish();
      }
      this.knownGeneration = await this.kernel.generation();
      return true;
    } catch (err) {
      this.log.warn({ err: messageOf(err) }, 'the first load failed part way: the tables it made are removed, and it is loaded again chunk by chunk to find what the kernel refuses');
      const held = await Promise.all(TABLE_NAMES.map(async (t) => ((await this.kernel.inventory(t)) ? t : null)));
      const removals: Operation[] = held.filter((t): t is TableName => t !== null).map((t) => ({ op: 'delete-table', table: TABLES[t] }));
      if (removals.length > 0) await this.kernel.writer.apply(removals);
      this.applied = new AppliedState();
      this.knownGeneration = -1;
      return false;
    }
  }

  /**
   * Which of the changed farms the kernel refuses, found by having it check (nft -c, nothing
   * committed) growing sets of them: in id order, the farms it accepts so far plus the next
   * half, bisected down to the first farm whose addition it refuses. So a farm refused on its
   * own is found, and so is the later of two farms refused only together (their rules or keys
   * collide in a way the claims do not know): the lower id keeps its rules, as with claims.
   * Empty when the transaction fails without any of them (not a farm's fault), or when the
   * search runs out of checks.
   */
  private async isolate(
    changes: ReadonlyMap<number, DesiredFarm | null>,
    planFor: (farms: ReadonlyMap<number, DesiredFarm | null>) => { operations: Operation[] },
  ): Promise<Map<number, string>> {
    const candidates = [...changes]
      .filter(([, f]) => f !== null && isRendered(f))
      .map(([id]) => id)
      .sort((a, b) => a - b);
    const found = new Map<number, string>();
    if (candidates.length === 0) return found;
    const accepted = new Set<number>();
    const refusal = async (ids: readonly number[]): Promise<string | null> => {
      const kept = new Set([...accepted, ...ids]);
      try {
        await this.kernel.writer.check(planFor(new Map([...changes].filter(([id, f]) => f === null || !isRendered(f) || kept.has(id)))).operations);
        return null;
      } catch (err) {
        return messageOf(err);
      }
    };
    // Bounded: k refused farms among n cost about 2k log2(n) checks.
    let budget = 64;
    const search = async (ids: readonly number[]): Promise<void> => {
      if (budget-- <= 0) return;
      const refused = await refusal(ids);
      if (refused === null) {
        for (const id of ids) accepted.add(id);
        return;
      }
      if (ids.length === 1) {
        found.set(ids[0]!, refused);
        return;
      }
      const half = ids.length >> 1;
      await search(ids.slice(0, half));
      await search(ids.slice(half));
    };
    if ((await refusal([])) !== null) return found;
    // The failed commit is not evidence against the farms (it may have been transient): checked anew.
    await search(candidates);
    if (budget <= 0) return new Map();
    if (found.size > 0) this.log.warn({ farms: [...found].map(([id, err]) => ({ farm: changes.get(id)?.name, err })) }, 'the kernel refuses these farms\' rules: applying every other change without them');
    return found;
  }

  /**
   * Leaves a refused farm's new state out of the pass: the kernel keeps what was applied of
   * it. `rewritten`: in a rewrite of the tables, what was applied before it, which the
   * rewrite then carries (null: nothing); undefined in an incremental pass.
   */
  private leaveOut(id: number, error: string, changes: Map<number, DesiredFarm | null>, before: Map<number, DesiredFarm | undefined>, rewritten: DesiredFarm | null | undefined): void {
    const farm = changes.get(id);
    if (farm) this.refused.set(id, { generation: farm.generation, error });
    const was = rewritten === undefined ? before.get(id) : (rewritten ?? undefined);
    this.updateIndexes(id, this.desired.get(id), was);
    if (was) this.desired.set(id, was);
    else this.desired.delete(id);
    if (rewritten) {
      changes.set(id, rewritten);
      return;
    }
    changes.delete(id);
    before.delete(id);
  }

  /**
   * Records in the store what the kernel now holds (the farms this pass changed, or all after
   * a rewrite) and its generation when exactly known, so that a restart can adopt it. Written
   * after the commit, never before: a crash in between leaves a record whose generation the
   * kernel has moved past, so the restart rewrites instead of adopting (every commit, by
   * anyone, bumps the generation; it is never the same with other contents).
   */
  private record(changes: ReadonlyMap<number, DesiredFarm | null>, all: boolean, options: { provisional?: boolean; rowsWritten?: boolean } = {}): void {
    const farms = new Map<number, string | null>();
    // Rows written ahead by a pipelined load (provisional): only the generation is left.
    const ids = options.rowsWritten ? [] : all ? this.applied.farms.keys() : changes.keys();
    for (const id of ids) {
      const farm = this.applied.farms.get(id);
      farms.set(id, farm ? JSON.stringify(farm) : null);
    }
    const replaceAll = all && !options.rowsWritten;
    const exact = !options.provisional && this.knownGeneration >= 0 ? this.knownGeneration : null;
    try {
      this.store.recordApplied(farms, exact, replaceAll);
    } catch (err) {
      this.log.warn({ err: messageOf(err) }, 'could not record the applied state: the next start rewrites the tables');
    }
  }

  private failed(err: unknown, passMs: number, carried: Set<number>): void {
    const message = messageOf(err);
    this.status.consecutiveFailures++;
    this.status.lastError = message;
    this.status.lastPassAt = new Date().toISOString();
    this.status.passes++;
    // Unknown kernel state now: the next pass reads the kernel and converges all of it.
    this.fullNeeded = true;
    const backoff = Math.min(this.maxBackoffMs, this.backoffMs * 2 ** (this.status.consecutiveFailures - 1));
    this.notBefore = Date.now() + backoff;
    this.log.error(
      { err: message, generation: this.store.generation(), passMs: Math.round(passMs * 10) / 10, failures: this.status.consecutiveFailures, retryInMs: backoff },
      'reconcile pass failed; the kernel keeps its previous ruleset',
    );
    for (const id of carried) {
      const farm = this.derived.get(id);
      if (!farm) continue;
      const runtime = this.runtimes.get(id);
      if (runtime?.appliedGeneration === farm.generation && runtime.state !== 'failed') continue;
      this.runtimes.set(id, {
        generation: farm.generation,
        state: 'failed',
        appliedGeneration: runtime?.appliedGeneration ?? null,
        error: message,
        interface: runtime?.interface ?? null,
        backends: runtime?.backends ?? new Map(),
      });
    }
    this.kick();
  }

  // ---- host facts, checks ----

  /**
   * Every few seconds: interfaces (a change re-derives every farm), the ARP table when no
   * notification says so, MACs still missing, drift of the kernel, and the announcements.
   */
  private async tick(): Promise<void> {
    if (this.stopped || this.running) return;
    try {
      if (await this.refreshInterfaces()) for (const id of this.derived.keys()) this.dirty.add(id);
      if (!this.net.watchNeighbors) this.neighborsDirty = true;
      if (!this.dryRun) {
        this.probe(this.derived.keys());
        await this.checkDrift();
        if (!this.fullNeeded) {
          const wanted = this.wantedAnnouncements();
          await this.exclusive(() => this.announcer.announce(wanted.announcements, wanted.routed));
        }
      }
    } catch (err) {
      this.log.warn({ err: messageOf(err) }, 'periodic check failed');
    }
    this.kick();
  }

  /**
   * Someone else committed to nftables (the generation moved without us): nftfarm's tables
   * may have lost or changed a chain, a rule or an element. A missing or extra chain or set,
   * or a changed rule count, is repaired at once; otherwise the tables are rewritten anyway
   * (an edited rule or element does not show in the inventory), at most once per
   * DRIFT_REWRITE_MS, since a host with other nftables users commits for its own reasons.
   * Checking costs one generation read while nobody else commits.
   */
  private async checkDrift(): Promise<void> {
    if (this.fullNeeded) return;
    const generation = await this.kernel.generation();
    if (generation === this.knownGeneration) return;
    const drift = await this.exclusive(async () => {
      for (const table of TABLE_NAMES) {
        const problem = driftOf(table, await this.kernel.inventory(table), this.applied);
        if (problem) return problem;
      }
      return null;
    });
    if (drift) {
      this.log.warn({ drift }, 'the kernel ruleset drifted from what nftfarm applied: repairing with a full pass');
      this.fullNeeded = true;
      this.lastDriftRewrite = Date.now();
    } else if (Date.now() - this.lastDriftRewrite >= DRIFT_REWRITE_MS) {
      this.log.warn({ generation, known: this.knownGeneration }, 'another process committed to nftables: rewriting nftfarm\'s tables in case it changed a rule or an element of theirs');
      this.fullNeeded = true;
      this.lastDriftRewrite = Date.now();
    }
  }

  /** Asks the kernel to resolve the MACs of the backends of these farms that still have none. */
  private probe(farmIds: Iterable<number>): void {
    const wanted: { ifindex: number; ip: string }[] = [];
    for (const id of farmIds) {
      const f = this.desired.get(id);
      if (f && isRendered(f) && f.iface && sendsToBackendMacs(f.nattype)) for (const b of f.backends) wanted.push({ ifindex: f.iface.index, ip: b.ip });
    }
    if (wanted.length > 0) this.neighbors.probe(wanted);
  }

  /**
   * Counts the connections of the backends of leastconn and max_conns farms (nat, dnat) and
   * re-renders a farm when one of its counts changed: its share of new flows depends on it.
   */
  private async countConnections(): Promise<void> {
    if (this.counting || this.stopped || !this.conntrack || this.counted.size === 0) return;
    this.counting = true;
    try {
      const counts = await this.conntrack.countByMark();
      const mine = new Map([...this.counted.keys()].map((uid) => [uid, counts.get(uid) ?? 0]));
      const before = this.connections;
      this.connections = mine;
      for (const [uid, n] of mine) if (before?.get(uid) !== n) this.dirty.add(this.counted.get(uid)!);
      this.kick();
    } catch (err) {
      this.log.warn({ err: messageOf(err) }, 'could not count connections (leastconn, max_conns)');
    } finally {
      this.counting = false;
    }
  }

  /** Keeps the per-farm indexes (backend addresses, counted backends, announcements) in step. */
  private updateIndexes(id: number, was: DesiredFarm | undefined, now: DesiredFarm | undefined): void {
    const drop = <K>(m: Map<K, { farms: Set<number> }> | Map<K, Set<number>>, key: K) => {
      const entry = m.get(key) as Set<number> | { farms: Set<number> } | undefined;
      const set = entry instanceof Set ? entry : entry?.farms;
      set?.delete(id);
      if (set?.size === 0) m.delete(key);
    };
    if (was) {
      for (const b of was.backends) {
        drop(this.farmsByBackendIp, b.ip);
        if (this.counted.get(b.uid) === id) this.counted.delete(b.uid);
      }
      drop(this.vipUsers, was.vip);
      for (const i of this.routedOf(was)) drop(this.routedUsers, i.name);
    }
    if (!now) return;
    if (sendsToBackendMacs(now.nattype)) {
      for (const b of now.backends) {
        let ids = this.farmsByBackendIp.get(b.ip);
        if (!ids) this.farmsByBackendIp.set(b.ip, (ids = new Set()));
        ids.add(id);
      }
    }
    if (isRendered(now) && usesConntrack(now.nattype)) {
      for (const b of now.backends) if (now.algorithm === 'leastconn' || b.maxConns > 0) this.counted.set(b.uid, id);
    }
    if (isRendered(now) && now.iface && now.proxied) {
      const entry = this.vipUsers.get(now.vip) ?? { iface: now.iface, farms: new Set<number>() };
      entry.farms.add(id);
      this.vipUsers.set(now.vip, entry);
    }
    for (const iface of this.routedOf(now)) {
      const entry = this.routedUsers.get(iface.name) ?? { iface, farms: new Set<number>() };
      entry.farms.add(id);
      this.routedUsers.set(iface.name, entry);
    }
  }

  /** Where a nat, dnat or stateless_dnat farm's traffic comes in and goes out (forwarding on, no redirects). */
  private routedOf(f: DesiredFarm): VipInterface[] {
    if (!isRendered(f) || !f.iface || f.nattype === 'dsr') return [];
    const out = new Map<string, VipInterface>([[f.iface.name, f.iface]]);
    for (const b of f.backends) {
      const match = findConnectedInterface(this.interfaces, b.ip);
      if (match) out.set(match.iface.name, { name: match.iface.name, index: match.iface.index, mac: match.iface.mac });
    }
    return [...out.values()];
  }

  private wantedAnnouncements(): { announcements: Announcement[]; routed: VipInterface[]; key: string } {
    const announcements = [...this.vipUsers].map(([vip, e]) => ({ vip, iface: e.iface })).sort((a, b) => (a.vip < b.vip ? -1 : 1));
    const routed = [...this.routedUsers.values()].map((e) => e.iface).sort((a, b) => (a.name < b.name ? -1 : 1));
    return { announcements, routed, key: JSON.stringify([announcements, routed]) };
  }

  /**
   * Connections conntrack keeps for a backend that no longer gets them (cut, removed, its farm
   * stopped, deleted or switched to a mode without conntrack) are deleted: conntrack would
   * otherwise keep sending their packets to it. Draining backends keep theirs.
   */
  private async forgetConnections(farmIds: Iterable<number>, before: Map<number, DesiredFarm | undefined>): Promise<void> {
    if (!this.conntrack) return;
    const tracked = (f: DesiredFarm | undefined) =>
      new Set(f && isRendered(f) && usesConntrack(f.nattype) ? f.backends.filter((b) => b.role !== 'excluded').map((b) => b.uid) : []);
    for (const id of farmIds) {
      const still = tracked(this.desired.get(id));
      for (const mark of tracked(before.get(id))) {
        if (still.has(mark)) continue;
        try {
          const deleted = await this.conntrack.deleteByMark(mark);
          this.log.info({ mark, deleted }, 'deleted the tracked connections of a backend that no longer receives them');
        } catch (err) {
          this.log.warn({ mark, err: messageOf(err) }, 'could not delete the tracked connections of a backend');
        }
      }
    }
  }

  /** One line per farm the pass changed (or a summary line for many). */
  private logChanges(
    changes: Map<number, DesiredFarm | null>,
    before: Map<number, DesiredFarm | undefined>,
    touched: Map<number, string[]>,
    passMs: number,
    kind: PassKind,
    via: string,
  ): void {
    const changed = [...changes.keys()].filter((id) => touched.has(id) || before.get(id)?.generation !== this.desired.get(id)?.generation);
    if (changed.length > MAX_FARM_LOG_LINES) {
      this.log.info({ farms: changed.length, passMs, kind, via }, 'applied changes to many farms');
      return;
    }
    for (const id of changed) {
      const farm = this.desired.get(id);
      this.log.info(
        { farm: farm?.name ?? null, farmId: id, generation: farm?.generation ?? null, deleted: farm ? undefined : true, objects: touched.get(id) ?? [], passMs, kind, via },
        'applied farm change',
      );
    }
  }
}

/** A farm's data-plane status for the API. */
function runtimeOf(f: DesiredFarm): FarmRuntime {
  return {
    generation: f.generation,
    state: !f.running ? 'stopped' : f.problem ? 'failed' : 'applied',
    appliedGeneration: f.problem && f.running ? null : f.generation,
    error: f.running ? f.problem : null,
    interface: f.iface?.name ?? null,
    notice:
      f.algorithm === 'leastconn' && !usesConntrack(f.nattype)
        ? `leastconn needs connection tracking, which nattype '${f.nattype}' does not have: new flows are balanced by weight (as in ZEVENET)`
        : null,
    backends: new Map(f.backends.map((b) => [b.uid, { usable: b.role !== 'excluded' && !b.checkFailing, ...(b.reason ? { reason: b.reason } : {}) }])),
  };
}

/** Dispatch elements go last in a first load: no packet reaches a farm before its elements do. */
const isDispatch = (o: ElementOperation): boolean => o.set.name === PORT_DISPATCH_MAP || o.set.name === RANGE_DISPATCH_MAP || o.set.name === ANY_DISPATCH_MAP;


/**
 * A plan made from nothing, turned into one that rewrites what the kernel holds: existing
 * static sets are re-created (their elements are rendered again), dynamic ones kept (pins and
 * sessions are live state), existing chains rewritten, base chains re-created, and objects
 * nftfarm no longer wants deleted. One transaction, so traffic never sees a half state.
 */
export function rebase(operations: readonly Operation[], kernel: ReadonlyMap<TableName, TableInventory | null>): Operation[] {
  const out: Operation[] = [];
  const tableOf = (o: Operation): TableName => (o.table === TABLES.netdev ? 'netdev' : 'ip');
  const wantedTables = new Set(operations.filter((o) => o.op === 'add-table').map(tableOf));
  const wantedChains = new Map<TableName, Set<string>>(TABLE_NAMES.map((t) => [t, new Set()]));
  const wantedSets = new Map<TableName, Set<string>>(TABLE_NAMES.map((t) => [t, new Set()]));
  for (const o of operations) {
    const t = tableOf(o);
    const have = kernel.get(t);
    if (o.op === 'add-chain') wantedChains.get(t)!.add(o.chain.name);
    if (o.op === 'add-set') wantedSets.get(t)!.add(o.set.name);
    if (!have) {
      out.push(o);
      continue;
    }
    if (o.op === 'add-set') {
      const existing = have.sets.get(o.set.name);
      // Static content is rendered again; a dynamic set (pins, sessions) keeps its content.
      if (existing && !(existing.dynamic && o.set.dynamic)) out.push({ op: 'delete-set', table: o.table, set: { ...o.set, kind: existing.map ? 'map' : 'set' } });
      out.push(o);
    } else if (o.op === 'add-chain' && have.chains.has(o.chain.name)) {
      // A base chain is bound to its interface when created: re-created, in the same transaction.
      if (o.chain.hook) out.push({ op: 'delete-chain', table: o.table, chain: o.chain.name }, o);
      else out.push({ op: 'replace-rules', table: o.table, chain: o.chain });
    } else out.push(o);
  }
  for (const t of TABLE_NAMES) {
    const have = kernel.get(t);
    if (!have) continue;
    if (!wantedTables.has(t)) {
      out.push({ op: 'delete-table', table: TABLES[t] });
      continue;
    }
    for (const name of have.chains.keys()) if (!wantedChains.get(t)!.has(name)) out.push({ op: 'delete-chain', table: TABLES[t], chain: name });
    for (const [name, s] of have.sets) {
      if (wantedSets.get(t)!.has(name)) continue;
      out.push({ op: 'delete-set', table: TABLES[t], set: { kind: s.map ? 'map' : 'set', name, body: [], typeKey: '', dynamic: s.dynamic } });
    }
  }
  return out;
}

/** What differs between the structure the kernel lists and what nftfarm applied, or null. */
function driftOf(table: TableName, kernel: TableInventory | null, applied: AppliedState): string | null {
  if (!applied.tableExists(table)) return kernel ? `a table ${TABLES[table].family} ${TABLES[table].name} nftfarm did not create exists` : null;
  if (!kernel) return `the table ${TABLES[table].family} ${TABLES[table].name} is missing`;
  const chains = new Map<string, number>();
  const sets = new Set(tableSets(table).map((s) => s.name));
  if (table === 'ip') for (const c of ipBaseChains()) chains.set(c.name, c.rules.length);
  for (const [, e] of applied.ingress) if (table === 'netdev') chains.set(ingressChainOf(e.value).name, ingressChainOf({ iface: e.value.iface, replies: e.replyUsers > 0 }).rules.length);
  for (const [, e] of applied.stages) if (e.value.table === table) chains.set(e.value.chain.name, e.value.chain.rules.length);
  for (const farm of applied.farms.values()) {
    const f = renderFarm(farm);
    for (const c of f.chains) if (c.table === table) chains.set(c.chain.name, c.chain.rules.length);
    for (const s of f.sets) if (s.table === table) sets.add(s.set.name);
  }
  for (const name of sets) if (!kernel.sets.has(name)) return `set ${name} is missing`;
  for (const name of kernel.sets.keys()) if (!sets.has(name)) return `unknown set ${name}`;
  for (const [name, rules] of chains) {
    const listed = kernel.chains.get(name);
    if (!listed) return `chain ${name} is missing`;
    if (listed.rules !== rules) return `chain ${name} has ${listed.rules} rules instead of ${rules}`;
  }
  for (const name of kernel.chains.keys()) if (!chains.has(name)) return `unknown chain ${name}`;
  return null;
}

const messageOf = (err: unknown): string => (err instanceof Error ? err.message : String(err));

