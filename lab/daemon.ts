/**
 * The real nftfarm daemon (bin/nftfarm serve) in a lab's load-balancer namespace, driven
 * through its HTTP API only (curl inside the namespace). Used by the tests and the demo.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { ChildProcess } from 'node:child_process';
import { PACKAGE_ROOT, type Lab } from './lab.js';

export const API_KEY = 'lab-test-key-0123456789';
const PREFIX = '/zapi/v4.0/zapi.cgi';

export interface ApiAnswer {
  status: number;
  body: any;
}

export interface LabDaemon {
  dir: string;
  dbPath: string;
  logFile: string;
  api(method: string, route: string, body?: unknown): Promise<ApiAnswer>;
  /** Waits until GET /healthz answers. */
  ready(): Promise<void>;
  /** Signals the daemon and resolves with how it exited (null: it was not running). */
  stop(signal?: NodeJS.Signals): Promise<{ code: number | null; signal: NodeJS.Signals | null } | null>;
  /** The daemon's PID while it runs. */
  pid(): number | null;
  /** When the daemon process was last spawned (Date.now()). */
  startedAt(): number;
  start(): Promise<void>;
  /** Polls `check` every 200 ms until it returns true or `timeoutMs` passes. */
  until(check: () => Promise<boolean>, timeoutMs: number): Promise<boolean>;
  nft(args: string[]): Promise<string>;
  logs(): string;
}

/**
 * The environment without the test runner's settings, plus `extra`. (tap puts its loader
 * back into NODE_OPTIONS of every child it sees spawned; bin/nftfarm is CommonJS so that the
 * loader cannot break it.)
 */
export function cleanEnv(extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, ...extra };
  delete env.NODE_OPTIONS;
  for (const key of Object.keys(env)) if (key.startsWith('TAP') || key.startsWith('_TAPJS')) delete env[key];
  return env;
}

interface Teardown {
  teardown(fn: () => void | Promise<void>): void;
}

/** Starts nftfarm in the lab's load balancer; `t.teardown` kills it and removes its files. */
export async function startLabDaemon(
  t: Teardown,
  lab: Lab,
  env: NodeJS.ProcessEnv = {},
  options: {
    beforeStart?: (dbPath: string) => void;
    /** Wraps the daemon's command line, e.g. in setpriv to run it as another user. */
    wrap?: (argv: string[]) => string[];
  } = {},
): Promise<LabDaemon> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `${lab.prefix}-`));
  const dbPath = path.join(dir, 'nftfarm.db');
  const logFile = path.join(dir, 'nftfarm.log');
  let child: ChildProcess | null = null;
  let spawnedAt = 0;

  const daemon: LabDaemon = {
    dir,
    dbPath,
    logFile,
    async api(method, route, body) {
      const argv = ['curl', '-s', '-m', '10', '-X', method, '-H', `ZAPI_KEY: ${API_KEY}`, '-w', '\n%{http_code}'];
      if (body !== undefined) argv.push('-H', 'Content-Type: application/json', '--data-binary', JSON.stringify(body));
      argv.push(`http://127.0.0.1:4444${PREFIX}${route}`);
      const r = await lab.exec(lab.lb.ns, argv);
      const cut = r.stdout.lastIndexOf('\n');
      const text = r.stdout.slice(0, cut);
      const status = Number(r.stdout.slice(cut + 1));
      let parsed: unknown = text;
      try {
        parsed = JSON.parse(text);
      } catch {
        // text answers (backend-setup) stay text
      }
      return { status, body: parsed };
    },
    /** The API listens once the first reconcile pass is done: with many farms that takes a while. */
    async ready() {
      // A daemon that exited (it refused to start) will not come up: say so at once.
      const gone = () => child !== null && (child.exitCode !== null || child.signalCode !== null);
      const ok = await daemon.until(async () => gone() || (await lab.exec(lab.lb.ns, ['curl', '-s', '-m', '1', 'http://127.0.0.1:4444/healthz'])).code === 0, 120_000);
      if (!ok || gone()) throw new Error(`nftfarm did not come up:\n${daemon.logs()}`);
    },
    startedAt: () => spawnedAt,
    async start() {
      const out = fs.openSync(logFile, 'a');
      spawnedAt = Date.now();
      const argv = [process.execPath, path.join(PACKAGE_ROOT, 'bin', 'nftfarm'), 'serve', '--db', dbPath];
      child = lab.spawn(lab.lb.ns, options.wrap ? options.wrap(argv) : argv, {
        stdio: ['ignore', out, out],
        env: { ...cleanEnv(), NFTFARM_API_KEY: API_KEY, NFTFARM_LISTEN: '127.0.0.1:4444', ...env },
      });
      fs.closeSync(out);
      await daemon.ready();
    },
    async stop(signal = 'SIGTERM') {
      if (!child || child.exitCode !== null) return null;
      const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child!.once('exit', (code, signal) => resolve({ code, signal })));
      child.kill(signal);
      const how = await exited;
      child = null;
      return how;
    },
    pid: () => child?.pid ?? null,
    async until(check, timeoutMs) {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        if (await check()) return true;
        if (Date.now() > deadline) return false;
        await new Promise((r) => setTimeout(r, 200));
      }
    },
    async nft(args) {
      return (await lab.exec(lab.lb.ns, ['nft', ...args])).stdout;
    },
    logs: () => (fs.existsSync(logFile) ? fs.readFileSync(logFile, 'utf8') : ''),
  };
  t.teardown(async () => {
    await daemon.stop('SIGKILL');
    fs.rmSync(dir, { recursive: true, force: true });
  });
  options.beforeStart?.(dbPath);
  await daemon.start();
  return daemon;
}

/** Creates a started DSR farm on the lab's VIP with the lab's backends, through the API. */
export async function createDsrFarm(daemon: LabDaemon, lab: Lab, name: string, vip: string, vport: string, extra: Record<string, unknown> = {}): Promise<void> {
  const created = await daemon.api('POST', '/farms', { farmname: name, profile: 'l4xnat', vip, vport });
  if (created.status !== 201) throw new Error(`create ${name}: ${JSON.stringify(created)}`);
  const modified = await daemon.api('PUT', `/farms/${name}`, { nattype: 'dsr', ...extra });
  if (modified.status !== 200) throw new Error(`modify ${name}: ${JSON.stringify(modified)}`);
  for (const b of lab.backends) {
    const added = await daemon.api('POST', `/farms/${name}/backends`, { ip: b.ip });
    if (added.status !== 201) throw new Error(`backend ${b.ip}: ${JSON.stringify(added)}`);
  }
}

/** True once the farm's rules are applied and every backend is usable. */
export async function farmReady(daemon: LabDaemon, name: string): Promise<boolean> {
  const farm = await daemon.api('GET', `/farms/${name}`);
  if (farm.status !== 200) return false;
  const { dataplane, status } = farm.body.params;
  return dataplane.state === 'applied' && dataplane.applied_generation === dataplane.generation && status === 'up';
}
