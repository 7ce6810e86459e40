import path from 'node:path';

/** Everything `nftfarm serve` needs to know, resolved once from flags and environment. */
export interface Config {
  listenHost: string;
  listenPort: number;
  dbPath: string;
  /** Explicit API key from NFTFARM_API_KEY; when absent the key file beside the database is used. */
  apiKey: string | null;
  dryRun: boolean;
  logLevel: string;
  /** GET /metrics: 'open' (no key), 'key' (the ZAPI key) or 'off'. */
  metrics: 'open' | 'key' | 'off';
}

export class ConfigError extends Error {}

export const DEFAULT_LISTEN = '127.0.0.1:4444';
export const DEFAULT_DB = 'data/nftfarm.db';
const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'];

export interface ConfigInput {
  listen?: string;
  db?: string;
  dryRun?: boolean;
}

/** Flags win over environment variables, which win over defaults. */
export function loadConfig(flags: ConfigInput, env: NodeJS.ProcessEnv, cwd: string): Config {
  const { host, port } = parseListen(flags.listen ?? env.NFTFARM_LISTEN ?? DEFAULT_LISTEN);
  const dbPath = path.resolve(cwd, flags.db ?? env.NFTFARM_DB ?? DEFAULT_DB);
  const apiKey = env.NFTFARM_API_KEY ?? null;
  if (apiKey !== null && apiKey.length < 8) {
    throw new ConfigError('NFTFARM_API_KEY must be at least 8 characters long');
  }
  const logLevel = env.NFTFARM_LOG_LEVEL ?? 'info';
  if (!LOG_LEVELS.includes(logLevel)) {
    throw new ConfigError(`NFTFARM_LOG_LEVEL must be one of ${LOG_LEVELS.join(', ')}`);
  }
  const dryRun = flags.dryRun ?? parseBool(env.NFTFARM_DRY_RUN, 'NFTFARM_DRY_RUN');
  const metrics = env.NFTFARM_METRICS || 'open';
  if (metrics !== 'open' && metrics !== 'key' && metrics !== 'off') throw new ConfigError('NFTFARM_METRICS must be one of open, key, off');
  return { listenHost: host, listenPort: port, dbPath, apiKey, dryRun, logLevel, metrics };
}

/** Accepts HOST:PORT, [IPv6]:PORT or :PORT (all addresses). */
export function parseListen(value: string): { host: string; port: number } {
  const match = /^(?:\[([0-9a-fA-F:.]+)\]|([^:[\]]*)):(\d{1,5})$/.exec(value);
  const port = match ? Number(match[3]) : NaN;
  if (!match || port < 1 || port > 65535) {
    throw new ConfigError(`invalid listen address '${value}': expected HOST:PORT, e.g. ${DEFAULT_LISTEN}`);
  }
  const host = match[1] ?? (match[2] === '' ? '0.0.0.0' : (match[2] as string));
  return { host, port };
}

function parseBool(value: string | undefined, name: string): boolean {
  if (value === undefined || value === '' || value === '0' || value === 'false') return false;
  if (value === '1' || value === 'true') return true;
  throw new ConfigError(`${name} must be true or false`);
}
