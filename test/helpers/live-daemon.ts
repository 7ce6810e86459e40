/**
 * A real `nftfarm serve --dry-run` process inside a throwaway network namespace, for tests
 * that drive the API the way operators do (curl scripts, generated clients).
 *
 *   <prefix>-<pid>    lo up; eth0 10.250.0.2/24 (the load balancer; the daemon listens on
 *                     127.0.0.1:4444 here, so every client runs here too)
 *   <prefix>-<pid>-p  eth0 10.250.0.1/24 (the veth peer: it only gives eth0 a carrier)
 *
 * The daemon reads the namespace's interfaces, so 10.250.0.0/24 is its connected network:
 * VIPs like 10.250.0.100 and DSR backends 10.250.0.21.. are accepted. Nothing here touches
 * the root namespace's network. Needs root and a compiled dist/ (`npx tsc -p tsconfig.json`).
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { cleanEnv } from '../../lab/daemon.js';
import { randomBytes } from 'node:crypto';
import { closeSync, existsSync, mkdtempSync, openSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const BIN = join(ROOT, 'bin/nftfarm');
const LISTEN = '127.0.0.1:4444';
export const LB_CIDR = '10.250.0.2/24';
export const PEER_CIDR = '10.250.0.1/24';
export const ZAPI_PATH = '/zapi/v4.0/zapi.cgi';

/** The part of a tap Test this helper uses. */
export interface TestHandle {
  teardown(fn: () => void | Promise<void>): void;
  comment(...args: unknown[]): void;
  passing(): boolean;
}

export interface ExecResult {
  status: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

export interface ExecOptions {
  /** Added to the environment (NODE_OPTIONS is always unset: tap's loader stays out). */
  env?: Record<string, string>;
  input?: string;
  cwd?: string;
  timeoutMs?: number;
}

export interface ZapiAnswer {
  status: number;
  body: unknown;
}

export interface LiveDaemon {
  /** The namespace the daemon and every client run in. */
  ns: string;
  peerNs: string;
  /** Base URL, valid inside `ns` only. */
  url: string;
  key: string;
  dbPath: string;
  /** The daemon's stdout and stderr (pino JSON lines). */
  logPath: string;
  /** Runs argv inside the namespace (`ip netns exec NS ...`). */
  exec(argv: string[], options?: ExecOptions): Promise<ExecResult>;
  /** One ZAPI call with curl inside the namespace; the body is parsed JSON (or the raw text). */
  zapi(method: string, path: string, body?: unknown): Promise<ZapiAnswer>;
  /** Stops the daemon and starts it again on the same database. */
  restart(): Promise<void>;
  /** SIGTERM, then SIGKILL after a grace period; the process this helper started only. */
  stop(): Promise<void>;
}

export interface DaemonOptions {
  /** Per-test-file prefix of the namespace names, e.g. 'nfex'. */
  prefix: string;
  startTimeoutMs?: number;
  /** The database goes in this subdirectory of the test's directory (created by the daemon). */
  dataDir?: string;
  /** No NFTFARM_API_KEY: the daemon uses (and creates) its key file; `key` is read from it. */
  keyFile?: boolean;
  /** More arguments for `nftfarm serve`, and more environment. */
  args?: string[];
  env?: Record<string, string>;
  /** Serve HTTPS: the URL is https:// and curl trusts this CA file. */
  caFile?: string;
}

function must(argv: string[]): void {
  const [cmd, ...args] = argv as [string, ...string[]];
  const r = spawnSync(cmd, args, { encoding: 'utf8', timeout: 30_000 });
  if (r.status !== 0) throw new Error(`${argv.join(' ')} failed (${r.status ?? r.signal}): ${r.stderr || String(r.error ?? '')}`);
}

/** The test's environment without tap's own variables. */

/**
 * argv run with NODE_OPTIONS unset. Inside tap, every spawn gets tap's process-info loader
 * put back into NODE_OPTIONS, whatever env is passed; the daemon and the clients must run
 * as they do outside tests (the loader's require hook once broke bin/nftfarm with
 * ERR_REQUIRE_CYCLE_MODULE). `env` execs, so pids are kept.
 */
export const withoutTapLoader = (argv: string[]): string[] => ['env', '-u', 'NODE_OPTIONS', ...argv];

function run(argv: string[], options: ExecOptions = {}): Promise<ExecResult> {
  const [cmd, ...args] = argv as [string, ...string[]];
  return new Promise((resolveRun, reject) => {
    const child = spawn(cmd, args, { env: cleanEnv(options.env), cwd: options.cwd ?? ROOT, stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), options.timeoutMs ?? 60_000);
    child.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    child.on('close', (status, signal) => {
      clearTimeout(timer);
      resolveRun({ status, signal, stdout, stderr });
    });
    // A command may exit before reading its stdin (a script that fails fast): not an error.
    child.stdin.on('error', () => {});
    child.stdin.end(options.input ?? '');
  });
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function exited(child: ChildProcess): boolean {
  return child.exitCode !== null || child.signalCode !== null;
}

export async function startDaemon(t: TestHandle, options: DaemonOptions): Promise<LiveDaemon> {
  if (!existsSync(join(ROOT, 'dist/main.js'))) throw new Error('dist/ is missing: run `npx tsc -p tsconfig.json` first');
  const ns = `${options.prefix}-${process.pid}`;
  const peerNs = `${ns}-p`;
  const dir = mkdtempSync(join(tmpdir(), `${options.prefix}-`));
  const dbPath = join(dir, options.dataDir ?? '', 'nftfarm.db');
  const logPath = join(dir, 'nftfarm.log');
  let key = `test-${randomBytes(12).toString('hex')}`;
  const url = `${options.caFile ? 'https' : 'http'}://${LISTEN}`;
  const curlTls = options.caFile ? ['--cacert', options.caFile] : [];
  let child: ChildProcess | null = null;

  const stop = async (): Promise<void> => {
    const proc = child;
    child = null;
    if (!proc || proc.pid === undefined || exited(proc)) return;
    const gone = new Promise<void>((r) => proc.once('exit', () => r()));
    proc.kill('SIGTERM');
    const graceful = await Promise.race([gone.then(() => true), sleep(5_000).then(() => false)]);
    if (!graceful && !exited(proc)) {
      proc.kill('SIGKILL');
      await gone;
    }
  };

  // Registered before anything is created, so a failure half-way still cleans up.
  t.teardown(async () => {
    await stop();
    if (!t.passing() && existsSync(logPath)) t.comment(`nftfarm log (${logPath}):\n${readFileSync(logPath, 'utf8').slice(-8_000)}`);
    for (const name of [ns, peerNs]) spawnSync('ip', ['netns', 'del', name]);
    rmSync(dir, { recursive: true, force: true });
  });

  // Left over by an earlier run with the same pid: start clean.
  for (const name of [ns, peerNs]) spawnSync('ip', ['netns', 'del', name]);
  must(['ip', 'netns', 'add', ns]);
  must(['ip', 'netns', 'add', peerNs]);
  // Both ends are created inside their namespaces: no name is ever taken in the root namespace.
  must(['ip', 'link', 'add', 'eth0', 'netns', ns, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', peerNs]);
  for (const name of [ns, peerNs]) {
    must(['ip', '-n', name, 'link', 'set', 'lo', 'up']);
    must(['ip', '-n', name, 'link', 'set', 'eth0', 'up']);
  }
  must(['ip', '-n', ns, 'addr', 'add', LB_CIDR, 'dev', 'eth0']);
  must(['ip', '-n', peerNs, 'addr', 'add', PEER_CIDR, 'dev', 'eth0']);

  const exec = (argv: string[], opts: ExecOptions = {}): Promise<ExecResult> => run(['ip', 'netns', 'exec', ns, ...withoutTapLoader(argv)], opts);

  const start = async (): Promise<void> => {
    // A file, not a pipe: a pipe nobody drains would block the daemon's logger.
    const log = openSync(logPath, 'a');
    try {
      // `ip netns exec` and `env` exec (no fork), so this pid is the daemon's own.
      child = spawn(
        'ip',
        ['netns', 'exec', ns, ...withoutTapLoader([process.execPath, BIN, 'serve', '--dry-run', '--listen', LISTEN, '--db', dbPath, ...(options.args ?? [])])],
        {
          cwd: dir,
          env: cleanEnv({ ...(options.keyFile ? {} : { NFTFARM_API_KEY: key }), NFTFARM_LOG_LEVEL: 'info', ...options.env }),
          stdio: ['ignore', log, log],
        },
      );
    } finally {
      closeSync(log);
    }
    const proc = child;
    // If the test process dies without its teardown, the daemon must not outlive it.
    const killOnExit = () => void (exited(proc) || proc.kill('SIGKILL'));
    process.once('exit', killOnExit);
    proc.once('exit', () => process.removeListener('exit', killOnExit));
    const deadline = Date.now() + (options.startTimeoutMs ?? 20_000);
    for (;;) {
      if (exited(proc)) throw new Error(`nftfarm exited (${proc.exitCode ?? proc.signalCode}) before answering:\n${readFileSync(logPath, 'utf8')}`);
      const probe = await exec(['curl', '-sf', ...curlTls, '--max-time', '2', `${url}/healthz`], { timeoutMs: 5_000 });
      if (probe.status === 0) {
        if (options.keyFile) key = readFileSync(join(dirname(dbPath), 'api-key'), 'utf8').trim();
        return;
      }
      if (Date.now() > deadline) {
        await stop();
        throw new Error(`nftfarm did not answer ${url}/healthz in time:\n${readFileSync(logPath, 'utf8')}`);
      }
      await sleep(100);
    }
  };

  const zapi = async (method: string, path: string, body?: unknown): Promise<ZapiAnswer> => {
    const argv = ['curl', '-sS', ...curlTls, '-X', method, '-H', `ZAPI_KEY: ${key}`, '-w', '\n%{http_code}'];
    if (body !== undefined) argv.push('-H', 'Content-Type: application/json', '--data-binary', '@-');
    argv.push(`${url}${ZAPI_PATH}${path}`);
    const r = await exec(argv, body === undefined ? {} : { input: JSON.stringify(body) });
    if (r.status !== 0) throw new Error(`curl ${method} ${path} failed (${r.status}): ${r.stderr}`);
    const cut = r.stdout.lastIndexOf('\n');
    const text = r.stdout.slice(0, cut);
    let parsed: unknown = text;
    try {
      parsed = JSON.parse(text);
    } catch {
      // Not JSON (a text/plain route): the raw text is the answer.
    }
    return { status: Number(r.stdout.slice(cut + 1)), body: parsed };
  };

  await start();
  return {
    ns,
    peerNs,
    url,
    get key() {
      return key;
    },
    dbPath,
    logPath,
    exec,
    zapi,
    restart: async () => {
      await stop();
      await start();
    },
    stop,
  };
}
