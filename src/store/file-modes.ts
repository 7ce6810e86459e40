/**
 * Least privilege on disk: the database (with its -wal and -shm files), the API key file and
 * the data directory are the owner's only (0600/0700). Run before SQLite opens the database:
 * SQLite creates -wal and -shm with the database file's mode, so a 0600 database keeps them
 * 0600 too. Files found looser are tightened, and the caller logs each one.
 */
import fs from 'node:fs';
import path from 'node:path';

export interface ModeChange {
  path: string;
  /** The mode found, e.g. 0o644. */
  from: number;
  to: number;
}

export interface DataFileModes {
  tightened: ModeChange[];
  /** What was left looser than it should be, and why. */
  warnings: string[];
}

const FILE_MODE = 0o600;
const DIR_MODE = 0o700;

/** The files nftfarm keeps beside the database: a directory holding only these is nftfarm's own. */
export const dataFiles = (dbPath: string): string[] => {
  const base = path.basename(dbPath);
  return [base, `${base}-wal`, `${base}-shm`, `${base}-journal`, 'api-key'];
};

const modeOf = (p: string): number | null => {
  try {
    return fs.statSync(p).mode & 0o7777;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw err;
  }
};

/** Creates the data directory and the database file owner-only, or tightens them; `:memory:` has none. */
export function secureDataFiles(dbPath: string): DataFileModes {
  const out: DataFileModes = { tightened: [], warnings: [] };
  if (dbPath === ':memory:') return out;
  const dir = path.dirname(dbPath);
  const dirMode = modeOf(dir);
  if (dirMode === null) fs.mkdirSync(dir, { recursive: true, mode: DIR_MODE });
  else if ((dirMode & 0o077) !== 0) {
    // Only a directory that is nftfarm's own is tightened: `--db /var/lib/x.db` must not
    // lock everyone else out of /var/lib.
    const foreign = fs.readdirSync(dir).filter((f) => !dataFiles(dbPath).includes(f));
    if (foreign.length === 0) {
      fs.chmodSync(dir, DIR_MODE);
      out.tightened.push({ path: dir, from: dirMode, to: DIR_MODE });
    } else {
      out.warnings.push(
        `the directory ${dir} that holds the database is open to others (mode 0${dirMode.toString(8)}) and holds other files ` +
          `(${foreign.slice(0, 3).join(', ')}${foreign.length > 3 ? ', ...' : ''}): left as is; nftfarm's own files in it are 0600`,
      );
    }
  }
  // Created empty (a valid empty database) with its mode, before SQLite creates it with 0644.
  fs.closeSync(fs.openSync(dbPath, 'a', FILE_MODE));
  for (const name of dataFiles(dbPath)) {
    const file = path.join(dir, name);
    const mode = modeOf(file);
    if (mode !== null && (mode & 0o077) !== 0) {
      fs.chmodSync(file, FILE_MODE);
      out.tightened.push({ path: file, from: mode, to: FILE_MODE });
    }
  }
  return out;
}
