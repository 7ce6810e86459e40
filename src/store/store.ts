import type { Db } from './db.js';
import type { Backend, Farm, HealthCheck, Maintenance } from '../model/farm.js';

/** A farm with everything the data plane needs, read in one consistent snapshot. */
export interface FarmConfig {
  farm: Farm;
  backends: Backend[];
  healthCheck: HealthCheck | null;
}

export interface Snapshot {
  generation: number;
  farms: FarmConfig[];
}

export type NewFarm = Omit<Farm, 'id' | 'profile' | 'generation'>;

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

/**
 * The only code that runs SQL. Reads are plain; every write runs in one IMMEDIATE
 * transaction that also bumps the store generation, then tells the listeners.
 */
export class Store {
  private readonly listeners = new Set<(generation: number) => void>();
  private writeDepth = 0;

  /** `onListenerError`: a listener that throws is reported here; the committed write stands. */
  constructor(
    readonly db: Db,
    private readonly onListenerError: (err: unknown) => void = (err) => console.error('store listener failed:', err),
  ) {}

  close(): void {
    this.db.close();
  }

  /** Called after every committed write with the new generation (the reconciler's wake-up). */
  onChange(listener: (generation: number) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  generation(): number {
    return (this.db.prepare('SELECT value FROM store_generation WHERE id = 1').get() as { value: number }).value;
  }

  /**
   * Runs `fn` (validation and writes) in one transaction that bumps the generation.
   * Throwing inside `fn` rolls everything back, so a refused request changes nothing.
   */
  write<T>(fn: (generation: number) => T): T {
    if (this.writeDepth > 0) throw new Error('nested Store.write');
    this.writeDepth++;
    let generation = 0;
    let result: T;
    try {
      result = this.db
        .transaction(() => {
          this.db.prepare('UPDATE store_generation SET value = value + 1 WHERE id = 1').run();
          generation = this.generation();
          return fn(generation);
        })
        .immediate();
    } finally {
      this.writeDepth--;
    }
    // The write is committed: a listener's failure is its own, never the writer's.
    for (const listener of this.listeners) {
      try {
        listener(generation);
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
        for (const b of (this.db.prepare('SELECT * FROM backends ORDER BY farm_id, id').all() as BackendRow[]).map(backendFromRow)) {
          const list = backendsByFarm.get(b.farmId) ?? [];
          list.push(b);
          backendsByFarm.set(b.farmId, list);
        }
        const checks = new Map(this.listHealthChecks().map((c) => [c.name, c]));
        const links = new Map(
          (this.db.prepare('SELECT farm_id, check_name FROM farm_health_checks').all() as { farm_id: number; check_name: string }[]).map(
            (r) => [r.farm_id, r.check_name],
          ),
        );
        const farms = this.listFarms().map((farm) => ({
          farm,
          backends: backendsByFarm.get(farm.id) ?? [],
          healthCheck: checks.get(links.get(farm.id) ?? '') ?? null,
        }));
        return { generation, farms };
      })
      .deferred();
  }

  // ---- farms ----

  listFarms(): Farm[] {
    return (this.db.prepare('SELECT * FROM farms ORDER BY name').all() as FarmRow[]).map(farmFromRow);
  }

  getFarm(name: string): Farm | undefined {
    const row = this.db.prepare('SELECT * FROM farms WHERE name = ?').get(name) as FarmRow | undefined;
    return row && farmFromRow(row);
  }

  getFarmById(id: number): Farm | undefined {
    const row = this.db.prepare('SELECT * FROM farms WHERE id = ?').get(id) as FarmRow | undefined;
    return row && farmFromRow(row);
  }

  /** Must run inside write(). */
  insertFarm(f: NewFarm, generation: number): Farm {
    const info = this.db
      .prepare(
        `INSERT INTO farms (name, vip, vport, protocol, nattype, algorithm, persistence, ttl, running, generation)
         VALUES (@name, @vip, @vport, @protocol, @nattype, @algorithm, @persistence, @ttl, @running, @generation)`,
      )
      .run({ ...f, running: f.running ? 1 : 0, generation });
    return this.getFarmById(Number(info.lastInsertRowid)) as Farm;
  }

  /** Must run inside write(). */
  updateFarm(id: number, changes: FarmChanges, generation: number): Farm {
    const sets = ['generation = @generation'];
    const params: Record<string, unknown> = { id, generation };
    for (const [key, value] of Object.entries(changes) as [keyof FarmChanges, unknown][]) {
      if (value === undefined) continue;
      sets.push(`${FARM_COLUMNS[key]} = @${key}`);
      params[key] = sqlValue(value);
    }
    this.db.prepare(`UPDATE farms SET ${sets.join(', ')} WHERE id = @id`).run(params);
    return this.getFarmById(id) as Farm;
  }

  /** Marks the farm changed (its backends or links changed). Must run inside write(). */
  touchFarm(id: number, generation: number): void {
    this.db.prepare('UPDATE farms SET generation = ? WHERE id = ?').run(generation, id);
  }

  /** Must run inside write(). */
  deleteFarm(id: number): void {
    this.db.prepare('DELETE FROM farms WHERE id = ?').run(id);
  }

  // ---- backends ----

  listBackends(farmId: number): Backend[] {
    return (this.db.prepare('SELECT * FROM backends WHERE farm_id = ? ORDER BY id').all(farmId) as BackendRow[]).map(backendFromRow);
  }

  getBackend(farmId: number, id: number): Backend | undefined {
    const row = this.db.prepare('SELECT * FROM backends WHERE farm_id = ? AND id = ?').get(farmId, id) as BackendRow | undefined;
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
    return this.getBackend(farmId, id) as Backend;
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
    if (sets.length > 0) this.db.prepare(`UPDATE backends SET ${sets.join(', ')} WHERE farm_id = @farmId AND id = @id`).run(params);
    this.touchFarm(farmId, generation);
    return this.getBackend(farmId, id) as Backend;
  }

  /** Must run inside write(). */
  deleteBackend(farmId: number, id: number, generation: number): void {
    this.db.prepare('DELETE FROM backends WHERE farm_id = ? AND id = ?').run(farmId, id);
    this.touchFarm(farmId, generation);
  }

  // ---- health checks ----

  listHealthChecks(): HealthCheck[] {
    return (this.db.prepare('SELECT * FROM health_checks ORDER BY template DESC, name').all() as HealthCheckRow[]).map(healthCheckFromRow);
  }

  getHealthCheck(name: string): HealthCheck | undefined {
    const row = this.db.prepare('SELECT * FROM health_checks WHERE name = ?').get(name) as HealthCheckRow | undefined;
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
    const row = this.db.prepare('SELECT check_name FROM farm_health_checks WHERE farm_id = ?').get(farmId) as { check_name: string } | undefined;
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
    if (sets.length > 0) this.db.prepare(`UPDATE health_checks SET ${sets.join(', ')} WHERE name = @name`).run(params);
    this.db
      .prepare('UPDATE farms SET generation = ? WHERE id IN (SELECT farm_id FROM farm_health_checks WHERE check_name = ?)')
      .run(generation, name);
    return this.getHealthCheck(name) as HealthCheck;
  }

  /** Must run inside write(). */
  deleteHealthCheck(name: string): void {
    this.db.prepare('DELETE FROM health_checks WHERE name = ?').run(name);
  }

  /** Must run inside write(). */
  linkHealthCheck(farmId: number, name: string, generation: number): void {
    this.db.prepare('INSERT INTO farm_health_checks (farm_id, check_name) VALUES (?, ?)').run(farmId, name);
    this.touchFarm(farmId, generation);
  }

  /** Must run inside write(). */
  unlinkHealthCheck(farmId: number, generation: number): void {
    this.db.prepare('DELETE FROM farm_health_checks WHERE farm_id = ?').run(farmId);
    this.touchFarm(farmId, generation);
  }

  // ---- data-plane bookkeeping: not configuration, so no generation bump ----

  savedKernelSettings(): Map<string, string> {
    const rows = this.db.prepare('SELECT name, value FROM saved_kernel_settings').all() as { name: string; value: string }[];
    return new Map(rows.map((r) => [r.name, r.value]));
  }

  /** Keeps the first value saved: that is the one from before nftfarm changed it. */
  saveKernelSetting(name: string, value: string): void {
    this.db.prepare('INSERT OR IGNORE INTO saved_kernel_settings (name, value) VALUES (?, ?)').run(name, value);
  }

  forgetKernelSetting(name: string): void {
    this.db.prepare('DELETE FROM saved_kernel_settings WHERE name = ?').run(name);
  }

  knownNeighbors(): { interface: string; ip: string; mac: string }[] {
    return this.db.prepare('SELECT interface, ip, mac FROM known_neighbors').all() as { interface: string; ip: string; mac: string }[];
  }

  rememberNeighbor(iface: string, ip: string, mac: string): void {
    this.db
      .prepare(
        `INSERT INTO known_neighbors (interface, ip, mac, seen_at) VALUES (?, ?, ?, ?)
         ON CONFLICT (interface, ip) DO UPDATE SET mac = excluded.mac, seen_at = excluded.seen_at`,
      )
      .run(iface, ip, mac, new Date().toISOString());
  }
}
