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
  /**
   * GET /metrics: 'open' (no key), 'key' (the ZAPI key) or 'off'. NFTFARM_METRICS=auto (the
   * default) is resolved here: open while the API listens on loopback only, the key otherwise.
   */
  metrics: 'open' | 'key' | 'off';
  /** HTTPS: the PEM certificate (chain) and private key files; null: plain HTTP. */
  tls: { certPath: string; keyPath: string } | null;
}

export class ConfigError extends Error {}

export const DEFAULT_LISTEN = '127.0.0.1:4444';
export const DEFAULT_DB = 'data/nftfarm.db';
const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'];

export interface ConfigInput {
  listen?: string;
  db?: string;
  dryRun?: boolean;
  tlsCert?: string;
  tlsKey?: string;
}

const METRICS_ACCESS = ['auto', 'open', 'key', 'off'] as const;

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
  const metricsSetting = env.NFTFARM_METRICS || 'auto';
  if (!(METRICS_ACCESS as readonly string[]).includes(metricsSetting)) throw new ConfigError(`NFTFARM_METRICS must be one of ${METRICS_ACCESS.join(', ')}`);
  // Farm names, backend addresses and a costly scrape are not for whoever can reach the port.
  const metrics = metricsSetting === 'auto' ? (isLoopbackHost(host) ? 'open' : 'key') : (metricsSetting as Config['metrics']);
  const certPath = flags.tlsCert ?? env.NFTFARM_TLS_CERT;
  const keyPath = flags.tlsKey ?? env.NFTFARM_TLS_KEY;
  if (!certPath !== !keyPath) {
    throw new ConfigError('HTTPS needs both a certificate and a key: --tls-cert and --tls-key (NFTFARM_TLS_CERT, NFTFARM_TLS_KEY)');
  }
  const tls = certPath && keyPath ? { certPath: path.resolve(cwd, certPath), keyPath: path.resolve(cwd, keyPath) } : null;
  return { listenHost: host, listenPort: port, dbPath, apiKey, dryRun, logLevel, metrics, tls };
}

/** True for addresses only this host can reach: 127.0.0.0/8, ::1 (also IPv4-mapped) and localhost. */
export function isLoopbackHost(host: string): boolean {
  const v4 = host.startsWith('::ffff:') ? host.slice(7) : host;
  return host === 'localhost' || host === '::1' || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(v4);
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
