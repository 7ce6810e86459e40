import type { Statement } from 'better-sqlite3';
import type { Db } from './db.js';
import { MAX_BACKEND_MARK, MAX_FARM_SLOT, type Backend, type Farm, type HealthCheck, type Maintenance } from '../model/farm.js';
import { sortedNeighbors, type BgpSettings } from '../cluster/bgp-settings.js';

/** A farm with everything the data plane needs, read in one consistent snapshot. */
export interface FarmConfig {
  farm: Farm;
  backends: Backend[];
  healthCheck: HealthCheck | null;
}

export interface Snapshot {
  generation: number;
  farms: FarmConfig[];
  /**
   * BGP announces the VIPs (issue 12): no proxy ARP for them, and a VIP need not lie in a
   * connected network (it takes the interface that leads to its backends).
   */
  routedVips?: boolean;
}

export type NewFarm = Omit<Farm, 'id' | 'profile' | 'generation' | 'slot'>;

export type FarmChanges = Partial<NewFarm>;

export type NewBackend = Pick<Backend, 'ip' | 'port' | 'weight' | 'priority' | 'maxConns'>;

export type BackendChanges = Partial<NewBackend & Pick<Backend, 'maintenance'>>;

export type HealthCheckFields = Omit<HealthCheck, 'name' | 'template'>;

/** A farms row: the Farm, with SQLite's integer for the boolean. */
type FarmRow = Omit<Farm, 'running'> & { running: number };

interface BackendRow {
  uid: number;
  farm_id: number;
  id: number;
  ip: string;
  port: number | null;
  weight: number;
  priority: number;
  max_conns: number;
  maintenance: Maintenance;
}

interface HealthCheckRow {
  name: string;
  description: string;
  command: string;
  interval: number;
  timeout: number;
  fall: number;
  rise: number;
  cut_conns: number;
  log: number;
  backend_alias: number;
  template: number;
}

const farmFromRow = (r: FarmRow): Farm => ({ ...r, running: r.running === 1 });

const backendFromRow = (r: BackendRow): Backend => ({
  uid: r.uid,
  farmId: r.farm_id,
  id: r.id,
  ip: r.ip,
  port: r.port,
  weight: r.weight,
  priority: r.priority,
  maxConns: r.max_conns,
  maintenance: r.maintenance,
});

const healthCheckFromRow = (r: HealthCheckRow): HealthCheck => ({
  name: r.name,
  description: r.description,
  command: r.command,
  interval: r.interval,
  timeout: r.timeout,
  fall: r.fall,
  rise: r.rise,
  cutConns: r.cut_conns === 1,
  log: r.log === 1,
  backendAlias: r.backend_alias === 1,
  template: r.template === 1,
});

const FARM_COLUMNS: Record<keyof FarmChanges, string> = {
  name: 'name',
  vip: 'vip',
  vport: 'vport',
  protocol: 'protocol',
  nattype: 'nattype',
  algorithm: 'algorithm',
  persistence: 'persistence',
  ttl: 'ttl',
  running: 'running',
};

const BACKEND_COLUMNS: Record<keyof BackendChanges, string> = {
  ip: 'ip',
  port: 'port',
  weight: 'weight',
  priority: 'priority',
  maxConns: 'max_conns',
  maintenance: 'maintenance',
};

const CHECK_COLUMNS: Record<keyof HealthCheckFields, string> = {
  description: 'description',
  command: 'command',
  interval: 'interval',
  timeout: 'timeout',
  fall: 'fall',
  rise: 'rise',
  cutConns: 'cut_conns',
  log: 'log',
  backendAlias: 'backend_alias',
};

const sqlValue = (v: unknown): unknown => (typeof v === 'boolean' ? (v ? 1 : 0) : v);

/** What one committed write changed: the change feed's unit. */
export interface StoreChange {
  generation: number;
  /** Farms whose configuration (the farm, its backends, its check or check link) changed, deleted ones included. */
  farmIds: ReadonlySet<number>;
}

export type StoreListener = (change: StoreChange) => void;

/** A limit of the data plane's numbering is reached: the write is refused. */
export class StoreLimitError extends Error {
  override name = 'StoreLimitError';
}

/**
 * The only code that runs SQL. Reads are plain; every write runs in one IMMEDIATE
 * transaction that also bumps the store generation, then tells the listeners which farms it
 * changed (the change feed the reconciler and the health monitor follow).
 */
export class Store {
  private readonly listeners = new Set<StoreListener>();
  private writeDepth = 0;
  /** Farms touched by the write in progress. */
  private touched = new Set<number>();

  /** `onListenerError`: a listener that throws is reported here; the committed write stands. */
  constructor(
    readonly db: Db,
    private readonly onListenerError: (err: unknown) => void = (err) => console.error('store listener failed:', err),
  ) {}

  close(): void {
    this.db.close();
  }

  /** Prepared statements by SQL text: preparing costs more than most of these statements' runs. */
  private readonly statements = new Map<string, Statement>();

  private sql(text: string): Statement {
    let statement = this.statements.get(text);
    if (!statement) this.statements.set(text, (statement = this.db.prepare(text)));
    return statement;
  }

  /** Called after every committed write (the reconciler's and the health monitor's wake-up). */
  onChange(listener: StoreListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  generation(): number {
    return (this.sql('SELECT value FROM store_generation WHERE id = 1').get() as { value: number }).value;
  }

  /**
   * Runs `fn` (validation and writes) in one transaction that bumps the generation.
   * Throwing inside `fn` rolls everything back, so a refused request changes nothing.
   */
  write<T>(fn: (generation: number) => T): T {
    if (this.writeDepth > 0) throw new Error('nested Store.write');
    this.writeDepth++;
    this.touched = new Set();
    let generation = 0;
    let result: T;
    try {
      result = this.db
        .transaction(() => {
          this.sql('UPDATE store_generation SET value = value + 1 WHERE id = 1').run();
          generation = this.generation();
          return fn(generation);
        })
        .immediate();
    } finally {
      this.writeDepth--;
    }
    const change: StoreChange = { generation, farmIds: this.touched };
    // The write is committed: a listener's failure is its own, never the writer's.
    for (const listener of this.listeners) {
      try {
        listener(change);
      } catch (err) {
        this.onListenerError(err);
      }
    }
    return result;
  }

  /** One consistent read of everything the data plane needs. */
  snapshot(): Snapshot {
    return this.db
      .transaction(() => {
        const generation = this.generation();
        const backendsByFarm = new Map<number, Backend[]>();
        for (const b of (this.sql('SELECT * FROM backends ORDER BY farm_id, id').all() as BackendRow[]).map(backendFromRow)) {
          const list = backendsByFarm.get(b.farmId) ?? [];
          list.push(b);
          backendsByFarm.set(b.farmId, list);
        }
        const checks = new Map(this.listHealthChecks().map((c) => [c.name, c]));
        const links = new Map(
          (this.sql('SELECT farm_id, check_name FROM farm_health_checks').all() as { farm_id: number; check_name: string }[]).map(
            (r) => [r.farm_id, r.check_name],
          ),
        );
        const farms = this.listFarms().map((farm) => ({
          farm,
          backends: backendsByFarm.get(farm.id) ?? [],
          healthCheck: checks.get(links.get(farm.id) ?? '') ?? null,
        }));
        return { generation, farms, routedVips: this.bgpSettings().enabled };
      })
      .deferred();
  }

  /** One farm with its backends and check, read in one transaction; undefined when it does not exist. */
  farmConfig(id: number): FarmConfig | undefined {
    return this.farmConfigs([id]).get(id);
  }

  /**
   * Several farms by id, in one read transaction (absent ids: deleted farms). Three queries
   * whatever the count: a cold start's health monitor asks for 10,000 farms, and three
   * queries per farm took 0.3 s of it.
   */
  farmConfigs(ids: Iterable<number>): Map<number, FarmConfig> {
    const wanted = [...ids];
    const list = JSON.stringify(wanted);
    return this.db
      .transaction(() => {
        const farms = new Map(
          (this.sql('SELECT * FROM farms WHERE id IN (SELECT value FROM json_each(?))').all(list) as FarmRow[]).map((r) => [r.id, farmFromRow(r)]),
        );
        const backends = new Map<number, Backend[]>();
        for (const row of this.sql('SELECT * FROM backends WHERE farm_id IN (SELECT value FROM json_each(?)) ORDER BY farm_id, id').all(list) as BackendRow[]) {
          const b = backendFromRow(row);
          const of = backends.get(b.farmId);
          if (of) of.push(b);
          else backends.set(b.farmId, [b]);
        }
        const checks = new Map<number, HealthCheck>();
        const linked = this.sql(
          'SELECT l.farm_id AS linked_farm_id, c.* FROM farm_health_checks l JOIN health_checks c ON c.name = l.check_name WHERE l.farm_id IN (SELECT value FROM json_each(?))',
        ).all(list) as (HealthCheckRow & { linked_farm_id: number })[];
        for (const row of linked) checks.set(row.linked_farm_id, healthCheckFromRow(row));
        const out = new Map<number, FarmConfig>();
        for (const id of wanted) {
          const farm = farms.get(id);
          if (farm) out.set(id, { farm, backends: backends.get(id) ?? [], healthCheck: checks.get(id) ?? null });
        }
        return out;
      })
      .deferred();
  }

  // ---- farms ----

  /** Farm ids in listFarms' order. */
  farmIdsByName(): number[] {
    return this.sql('SELECT id FROM farms ORDER BY name').pluck().all() as number[];
  }

  listFarms(): Farm[] {
    return (this.sql('SELECT * FROM farms ORDER BY name').all() as FarmRow[]).map(farmFromRow);
  }

  getFarm(name: string): Farm | undefined {
    const row = this.sql('SELECT * FROM farms WHERE name = ?').get(name) as FarmRow | undefined;
    return row && farmFromRow(row);
  }

  /** Running farms on one VIP (port conflicts are only possible among them). */
  runningFarmsOnVip(vip: string): Farm[] {
    return (this.sql('SELECT * FROM farms WHERE vip = ? AND running = 1').all(vip) as FarmRow[]).map(farmFromRow);
  }

  getFarmById(id: number): Farm | undefined {
    const row = this.sql('SELECT * FROM farms WHERE id = ?').get(id) as FarmRow | undefined;
    return row && farmFromRow(row);
  }

  /** Must run inside write(). Takes the lowest free data-plane slot. */
  insertFarm(f: NewFarm, generation: number): Farm {
    const slot = this.takeFarmSlot();
    const info = this.db
      .prepare(
        `INSERT INTO farms (name, vip, vport, protocol, nattype, algorithm, persistence, ttl, running, generation, slot)
         VALUES (@name, @vip, @vport, @protocol, @nattype, @algorithm, @persistence, @ttl, @running, @generation, @slot)`,
      )
      .run({ ...f, running: f.running ? 1 : 0, generation, slot });
    const id = Number(info.lastInsertRowid);
    this.touched.add(id);
    return this.getFarmById(id) as Farm;
  }

  /** The lowest slot a deleted farm gave back, or the next one after the highest in use (from 1). */
  private takeFarmSlot(): number {
    const free = this.sql('SELECT MIN(slot) AS slot FROM free_farm_slots').get() as { slot: number | null };
    if (free.slot !== null) {
      this.sql('DELETE FROM free_farm_slots WHERE slot = ?').run(free.slot);
      return free.slot;
    }
    const highest = this.sql('SELECT MAX(slot) AS slot FROM farms').get() as { slot: number | null };
    const slot = highest.slot === null ? 1 : highest.slot + 1;
    if (slot > this.maxFarmSlot) throw new StoreLimitError(`no farm can be added: ${this.maxFarmSlot} farms exist, the most the data plane can number`);
    return slot;
  }

  /** The highest data-plane slot; lower in tests of the limit. */
  maxFarmSlot = MAX_FARM_SLOT;

  /** Must run inside write(). */
  updateFarm(id: number, changes: FarmChanges, generation: number): Farm {
    const sets = ['generation = @generation'];
    const params: Record<string, unknown> = { id, generation };
    for (const [key, value] of Object.entries(changes) as [keyof FarmChanges, unknown][]) {
      if (value === undefined) continue;
      sets.push(`${FARM_COLUMNS[key]} = @${key}`);
      params[key] = sqlValue(value);
    }
    this.sql(`UPDATE farms SET ${sets.join(', ')} WHERE id = @id`).run(params);
    this.touched.add(id);
    return this.getFarmById(id) as Farm;
  }

  /** Marks the farm changed (its backends or links changed). Must run inside write(). */
  touchFarm(id: number, generation: number): void {
    this.sql('UPDATE farms SET generation = ? WHERE id = ?').run(generation, id);
    this.touched.add(id);
  }

  /** Must run inside write(). */
  deleteFarm(id: number): void {
    const row = this.sql('SELECT slot FROM farms WHERE id = ?').get(id) as { slot: number | null } | undefined;
    this.sql('DELETE FROM farms WHERE id = ?').run(id);
    if (row && row.slot !== null) this.sql('INSERT OR IGNORE INTO free_farm_slots (slot) VALUES (?)').run(row.slot);
    this.touched.add(id);
  }

  // ---- backends ----

  listBackends(farmId: number): Backend[] {
    return (this.sql('SELECT * FROM backends WHERE farm_id = ? ORDER BY id').all(farmId) as BackendRow[]).map(backendFromRow);
  }

  getBackend(farmId: number, id: number): Backend | undefined {
    const row = this.sql('SELECT * FROM backends WHERE farm_id = ? AND id = ?').get(farmId, id) as BackendRow | undefined;
    return row && backendFromRow(row);
  }

  /** Adds with the lowest free id, as ZEVENET does. Must run inside write(). */
  insertBackend(farmId: number, b: NewBackend, generation: number): Backend {
    const used = new Set(this.listBackends(farmId).map((x) => x.id));
    let id = 0;
    while (used.has(id)) id++;
    this.db
      .prepare(
        `INSERT INTO backends (farm_id, id, ip, port, weight, priority, max_conns)
         VALUES (?, ?, ?, ?, ?, ?, ?)`,
      )
      .run(farmId, id, b.ip, b.port, b.weight, b.priority, b.maxConns);
    this.touchFarm(farmId, generation);
    const added = this.getBackend(farmId, id) as Backend;
    // The uid is the backend's mark in the data plane; never reused, so a new backend never
    // inherits the flows pinned to a deleted one.
    if (added.uid > MAX_BACKEND_MARK) throw new StoreLimitError(`no backend can be added: the data plane has numbered ${MAX_BACKEND_MARK} backends`);
    return added;
  }

  /** Must run inside write(). */
  updateBackend(farmId: number, id: number, changes: BackendChanges, generation: number): Backend {
    const sets: string[] = [];
    const params: Record<string, unknown> = { farmId, id };
    for (const [key, value] of Object.entries(changes) as [keyof BackendChanges, unknown][]) {
      if (value === undefined) continue;
      sets.push(`${BACKEND_COLUMNS[key]} = @${key}`);
      params[key] = value;
    }
    if (sets.length > 0) this.sql(`UPDATE backends SET ${sets.join(', ')} WHERE farm_id = @farmId AND id = @id`).run(params);
    this.touchFarm(farmId, generation);
    return this.getBackend(farmId, id) as Backend;
  }

  /** Must run inside write(). */
  deleteBackend(farmId: number, id: number, generation: number): void {
    this.sql('DELETE FROM backends WHERE farm_id = ? AND id = ?').run(farmId, id);
    this.touchFarm(farmId, generation);
  }

  // ---- health checks ----

  listHealthChecks(): HealthCheck[] {
    return (this.sql('SELECT * FROM health_checks ORDER BY template DESC, name').all() as HealthCheckRow[]).map(healthCheckFromRow);
  }

  getHealthCheck(name: string): HealthCheck | undefined {
    const row = this.sql('SELECT * FROM health_checks WHERE name = ?').get(name) as HealthCheckRow | undefined;
    return row && healthCheckFromRow(row);
  }

  /** Names of the farms using a check. */
  farmsUsingCheck(name: string): string[] {
    return (
      this.db
        .prepare('SELECT f.name FROM farm_health_checks l JOIN farms f ON f.id = l.farm_id WHERE l.check_name = ? ORDER BY f.name')
        .all(name) as { name: string }[]
    ).map((r) => r.name);
  }

  farmCheckName(farmId: number): string | null {
    const row = this.sql('SELECT check_name FROM farm_health_checks WHERE farm_id = ?').get(farmId) as { check_name: string } | undefined;
    return row ? row.check_name : null;
  }

  /** Must run inside write(). */
  insertHealthCheck(name: string, fields: HealthCheckFields): HealthCheck {
    this.db
      .prepare(
        `INSERT INTO health_checks (name, description, command, interval, timeout, fall, rise, cut_conns, log, backend_alias, template)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 0)`,
      )
      .run(name, fields.description, fields.command, fields.interval, fields.timeout, fields.fall, fields.rise, sqlValue(fields.cutConns), sqlValue(fields.log), sqlValue(fields.backendAlias));
    return this.getHealthCheck(name) as HealthCheck;
  }

  /** Must run inside write(). Farms using the check are marked changed. */
  updateHealthCheck(name: string, changes: Partial<HealthCheckFields>, generation: number): HealthCheck {
    const sets: string[] = [];
    const params: Record<string, unknown> = { name };
    for (const [key, value] of Object.entries(changes) as [keyof HealthCheckFields, unknown][]) {
      if (value === undefined) continue;
      sets.push(`${CHECK_COLUMNS[key]} = @${key}`);
      params[key] = sqlValue(value);
    }
    if (sets.length > 0) this.sql(`UPDATE health_checks SET ${sets.join(', ')} WHERE name = @name`).run(params);
    const users = this.sql('SELECT farm_id FROM farm_health_checks WHERE check_name = ?').all(name) as { farm_id: number }[];
    for (const { farm_id } of users) this.touchFarm(farm_id, generation);
    return this.getHealthCheck(name) as HealthCheck;
  }

  /** Must run inside write(). */
  deleteHealthCheck(name: string): void {
    this.sql('DELETE FROM health_checks WHERE name = ?').run(name);
  }

  /** Must run inside write(). */
  linkHealthCheck(farmId: number, name: string, generation: number): void {
    this.sql('INSERT INTO farm_health_checks (farm_id, check_name) VALUES (?, ?)').run(farmId, name);
    this.touchFarm(farmId, generation);
  }

  /** Must run inside write(). */
  unlinkHealthCheck(farmId: number, generation: number): void {
    this.sql('DELETE FROM farm_health_checks WHERE farm_id = ?').run(farmId);
    this.touchFarm(farmId, generation);
  }

  // ---- data-plane bookkeeping: not configuration, so no generation bump ----

  savedKernelSettings(): Map<string, string> {
    const rows = this.sql('SELECT name, value FROM saved_kernel_settings').all() as { name: string; value: string }[];
    return new Map(rows.map((r) => [r.name, r.value]));
  }

  /** Keeps the first value saved: that is the one from before nftfarm changed it. */
  saveKernelSetting(name: string, value: string): void {
    this.sql('INSERT OR IGNORE INTO saved_kernel_settings (name, value) VALUES (?, ?)').run(name, value);
  }

  forgetKernelSetting(name: string): void {
    this.sql('DELETE FROM saved_kernel_settings WHERE name = ?').run(name);
  }

  knownNeighbors(): { interface: string; ip: string; mac: string }[] {
    return this.sql('SELECT interface, ip, mac FROM known_neighbors').all() as { interface: string; ip: string; mac: string }[];
  }

  rememberNeighbor(iface: string, ip: string, mac: string): void {
    this.db
      .prepare(
        `INSERT INTO known_neighbors (interface, ip, mac, seen_at) VALUES (?, ?, ?, ?)
         ON CONFLICT (interface, ip) DO UPDATE SET mac = excluded.mac, seen_at = excluded.seen_at`,
      )
      .run(iface, ip, mac, new Date().toISOString());
  }

  // ---- what the reconciler committed (adoption after a restart) ----

  /** The farms the reconciler last committed (JSON of its DesiredFarm) and the kernel generation right after, or null. */
  appliedState(): { generation: number | null; farms: string[] } {
    const generation = (this.sql('SELECT value FROM applied_generation WHERE id = 1').get() as { value: number | null }).value;
    const farms = this.sql('SELECT state FROM applied_farms ORDER BY farm_id').pluck().all() as string[];
    return { generation, farms };
  }

  /**
   * Records what a pass committed: each farm's state (null: no rules any more), all of them
   * when `replaceAll`, and the kernel generation right after (null when not known exactly).
   */
  recordApplied(farms: ReadonlyMap<number, string | null>, generation: number | null, replaceAll: boolean): void {
    // Without the fsync of an API write (0.3 ms per pass here): this record only lets a
    // restart adopt the kernel's rules. A power cut empties the kernel as well, and a record
    // lost otherwise makes the next start rewrite the tables, which is safe.
    this.db.pragma('synchronous = NORMAL');
    try {
      this.writeApplied(farms, generation, replaceAll);
    } finally {
      this.db.pragma('synchronous = FULL');
    }
  }

  private writeApplied(farms: ReadonlyMap<number, string | null>, generation: number | null, replaceAll: boolean): void {
    this.db.transaction(() => {
      if (replaceAll) this.sql('DELETE FROM applied_farms').run();
      const upsert = this.sql('INSERT INTO applied_farms (farm_id, state) VALUES (?, ?) ON CONFLICT (farm_id) DO UPDATE SET state = excluded.state');
      const remove = this.sql('DELETE FROM applied_farms WHERE farm_id = ?');
      for (const [id, state] of farms) {
        if (state === null) remove.run(id);
        else upsert.run(id, state);
      }
      this.sql('UPDATE applied_generation SET value = ? WHERE id = 1').run(generation);
    })();
  }

  // ---- BGP (issue 12) ----

  bgpSettings(): BgpSettings {
    const r = this.sql('SELECT * FROM bgp_settings WHERE id = 1').get() as {
      enabled: number;
      speaker: BgpSettings['speaker'];
      asn: number | null;
      router_id: string | null;
      hold_time: number;
      drain_time: number;
      med: number | null;
      communities: string;
      graceful_restart: number;
    };
    const neighbors = this.sql('SELECT address, asn FROM bgp_neighbors').all() as { address: string; asn: number }[];
    return {
      enabled: r.enabled === 1,
      speaker: r.speaker,
      asn: r.asn,
      routerId: r.router_id,
      holdTime: r.hold_time,
      neighbors: sortedNeighbors(neighbors),
      drainTime: r.drain_time,
      med: r.med,
      communities: r.communities === '' ? [] : r.communities.split(' '),
      gracefulRestart: r.graceful_restart === 1,
    };
  }

  /**
   * Must run inside write(). Turning BGP on or off changes how every farm's VIP is placed
   * (Snapshot.routedVips), so every farm is marked changed.
   */
  saveBgpSettings(s: BgpSettings, generation: number): void {
    const before = this.bgpSettings();
    this.db
      .prepare(
        `UPDATE bgp_settings SET enabled = ?, speaker = ?, asn = ?, router_id = ?, hold_time = ?, drain_time = ?, med = ?, communities = ?, graceful_restart = ?
         WHERE id = 1`,
      )
      .run(s.enabled ? 1 : 0, s.speaker, s.asn, s.routerId, s.holdTime, s.drainTime, s.med, s.communities.join(' '), s.gracefulRestart ? 1 : 0);
    this.db.prepare('DELETE FROM bgp_neighbors').run();
    const add = this.db.prepare('INSERT INTO bgp_neighbors (address, asn) VALUES (?, ?)');
    for (const n of s.neighbors) add.run(n.address, n.asn);
    if (before.enabled !== s.enabled) {
      this.sql('UPDATE farms SET generation = ?').run(generation);
      for (const id of this.sql('SELECT id FROM farms').pluck().all() as number[]) this.touched.add(id);
    }
  }
}
