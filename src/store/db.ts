import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import Database from 'better-sqlite3';

export type Db = Database.Database;

export const MIGRATIONS_DIR = fileURLToPath(new URL('../../migrations/', import.meta.url));

export class SchemaTooNewError extends Error {}

export interface Migration {
  version: number;
  name: string;
  sql: string;
}

/** Reads `NNN-name.sql` files; versions must run 1, 2, 3... without gaps so an order is never guessed. */
export function readMigrations(dir: string = MIGRATIONS_DIR): Migration[] {
  const files = fs.readdirSync(dir).filter((f) => f.endsWith('.sql')).sort();
  return files.map((file, index) => {
    const match = /^(\d{3})-([a-z0-9-]+)\.sql$/.exec(file);
    if (!match) throw new Error(`migration file '${file}' is not named NNN-name.sql`);
    const version = Number(match[1]);
    if (version !== index + 1) throw new Error(`migration '${file}' is out of sequence: expected version ${index + 1}`);
    return { version, name: match[2] as string, sql: fs.readFileSync(path.join(dir, file), 'utf8') };
  });
}

/**
 * Opens (creating if needed) the SQLite database and brings its schema up to date.
 * synchronous=FULL: an acknowledged API write must survive a power cut, and writes are rare.
 */
export function openDatabase(file: string, migrations: Migration[] = readMigrations()): Db {
  if (file !== ':memory:') fs.mkdirSync(path.dirname(file), { recursive: true });
  const db = new Database(file);
  try {
    db.pragma('journal_mode = WAL');
    db.pragma('synchronous = FULL');
    db.pragma('foreign_keys = ON');
    db.pragma('busy_timeout = 5000');
    migrate(db, migrations);
    return db;
  } catch (err) {
    db.close();
    throw err;
  }
}

/** Applies every pending migration in one transaction; returns the versions applied. */
export function migrate(db: Db, migrations: Migration[]): number[] {
  const latest = migrations.length;
  const applied: number[] = [];
  db.transaction(() => {
    const current = db.pragma('user_version', { simple: true }) as number;
    if (current > latest) {
      throw new SchemaTooNewError(
        `the database schema is version ${current}, newer than this nftfarm supports (${latest}); ` +
          'upgrade nftfarm or point --db at another database',
      );
    }
    for (const m of migrations.slice(current)) {
      db.exec(m.sql);
      applied.push(m.version);
    }
    // user_version lives in the database header and is written inside this transaction.
    if (applied.length > 0) db.pragma(`user_version = ${latest}`);
  }).immediate();
  return applied;
}
