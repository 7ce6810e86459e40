/**
 * The audit trail's table (migration 004): append one row per write request, keep the newest
 * `maxRows`, page through them newest first. Not configuration, so no store generation.
 */
import type { Db } from './db.js';

export const AUDIT_MAX_ROWS = 100_000;

export interface AuditEntry {
  at: Date;
  method: string;
  route: string;
  farm: string | null;
  keyFingerprint: string;
  remote: string;
  status: number;
}

export interface AuditRow extends Omit<AuditEntry, 'at'> {
  id: number;
  at: string;
}

export interface AuditQuery {
  limit: number;
  /** Only entries older than this id (the cursor of the next page). */
  before?: number;
  farm?: string;
}

export interface AuditPage {
  entries: AuditRow[];
  /** The `before` of the next page; null on the last one. */
  nextBefore: number | null;
}

interface Row {
  id: number;
  at: string;
  method: string;
  route: string;
  farm: string | null;
  key_fingerprint: string;
  remote: string;
  status: number;
}

export class AuditLog {
  private readonly maxRows: number;
  private readonly insert;
  private readonly prune;

  constructor(
    private readonly db: Db,
    options: { maxRows?: number } = {},
  ) {
    this.maxRows = options.maxRows ?? AUDIT_MAX_ROWS;
    this.insert = db.prepare(
      'INSERT INTO audit_log (at, method, route, farm, key_fingerprint, remote, status) VALUES (@at, @method, @route, @farm, @keyFingerprint, @remote, @status)',
    );
    // Ids only grow: everything more than maxRows below the newest is old. Each insert
    // deletes about one row through the primary key, so the bound costs nothing to keep.
    this.prune = db.prepare('DELETE FROM audit_log WHERE id <= ?');
  }

  /** Appends an entry and drops what falls out of the window, in one transaction. */
  record(entry: AuditEntry): void {
    this.db.transaction(() => {
      const id = Number(this.insert.run({ ...entry, at: entry.at.toISOString() }).lastInsertRowid);
      this.prune.run(id - this.maxRows);
    })();
  }

  list(query: AuditQuery): AuditPage {
    const where: string[] = [];
    const params: unknown[] = [];
    if (query.before !== undefined) {
      where.push('id < ?');
      params.push(query.before);
    }
    if (query.farm !== undefined) {
      where.push('farm = ?');
      params.push(query.farm);
    }
    // One more than asked: whether there is a next page.
    const rows = this.db
      .prepare(`SELECT * FROM audit_log ${where.length ? `WHERE ${where.join(' AND ')}` : ''} ORDER BY id DESC LIMIT ?`)
      .all(...params, query.limit + 1) as Row[];
    const entries = rows.slice(0, query.limit).map((r) => ({
      id: r.id,
      at: r.at,
      method: r.method,
      route: r.route,
      farm: r.farm,
      keyFingerprint: r.key_fingerprint,
      remote: r.remote,
      status: r.status,
    }));
    return { entries, nextBefore: rows.length > query.limit ? (entries[entries.length - 1]?.id ?? null) : null };
  }
}
