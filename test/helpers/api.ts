/** Builds the real app on a real SQLite file in a temp dir, with a fake host network view. */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { FastifyInstance } from 'fastify';
import { buildApp, type AppDeps } from '../../src/app.js';
import { noDataplane, type ConnectedNetwork, type HostView } from '../../src/model/runtime.js';
import { openDatabase } from '../../src/store/db.js';
import { Store } from '../../src/store/store.js';
import { ZAPI_PREFIX } from '../../src/api/zapi.js';

export const API_KEY = 'test-key-123456';
export const ZAPI = ZAPI_PREFIX;

/** The only parts of tap's Test the helpers use. */
interface Teardown {
  teardown(fn: () => unknown): void;
}

/** 10.250.0.0/24 and 2001:db8:250::/64 on eth0 (where VIPs go), 10.9.0.0/24 on eth1; nothing else is connected. */
export const fakeHost: HostView = {
  async connectedNetworks(ips: readonly string[]): Promise<(ConnectedNetwork | null)[]> {
    return ips.map((ip) =>
      ip.startsWith('10.250.0.')
        ? { interface: 'eth0', network: '10.250.0.0/24' }
        : ip.startsWith('2001:db8:250::')
          ? { interface: 'eth0', network: '2001:db8:250::/64' }
          : ip.startsWith('10.9.0.') ? { interface: 'eth1', network: '10.9.0.0/24' } : null,
    );
  },
};

export interface TestApp {
  app: FastifyInstance;
  store: Store;
  dir: string;
  dbPath: string;
  /** Closes the app and the database (idempotent; teardown calls it too). */
  close(): Promise<void>;
}

/**
 * `dir`: reuse a database directory (the caller removes it); otherwise a fresh one is made and
 * removed. `app`: more of buildApp's dependencies and options.
 */
export async function buildTestApp(t: Teardown, opts: { dir?: string; app?: Partial<AppDeps> } = {}): Promise<TestApp> {
  const dir = opts.dir ?? fs.mkdtempSync(path.join(os.tmpdir(), 'nftfarm-test-'));
  if (!opts.dir) t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const dbPath = path.join(dir, 'nftfarm.db');
  const store = new Store(openDatabase(dbPath));
  const app = await buildApp({ store, apiKey: API_KEY, host: fakeHost, dataplane: noDataplane, ...opts.app });
  let closed = false;
  const close = async () => {
    if (closed) return;
    closed = true;
    await app.close();
    store.close();
  };
  t.teardown(close);
  return { app, store, dir, dbPath, close };
}

/** The app listening on 127.0.0.1 (a random port); `url` is the ZAPI base URL. */
export async function listenTestApp(t: Teardown): Promise<TestApp & { url: string }> {
  const built = await buildTestApp(t);
  const address = await built.app.listen({ host: '127.0.0.1', port: 0 });
  return { ...built, url: `${address}${ZAPI}` };
}

export interface Answer {
  status: number;
  body: any;
  headers: Record<string, unknown>;
}

/** One authorized ZAPI call through inject; `body` is sent as JSON. */
export async function call(app: FastifyInstance, method: 'GET' | 'POST' | 'PUT' | 'DELETE', url: string, body?: unknown): Promise<Answer> {
  const res = await app.inject({
    method,
    url: `${ZAPI}${url}`,
    headers: { ZAPI_KEY: API_KEY, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
    ...(body === undefined ? {} : { payload: JSON.stringify(body) }),
  });
  return { status: res.statusCode, body: res.body === '' ? undefined : tryJson(res.body), headers: res.headers };
}

const tryJson = (text: string): unknown => {
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
};

/** Creates a farm (VIP in eth0's network unless given) and checks it was created. */
export async function createFarm(app: FastifyInstance, farmname: string, vport = '80', vip = '10.250.0.10'): Promise<void> {
  const res = await call(app, 'POST', '/farms', { farmname, profile: 'l4xnat', vip, vport });
  if (res.status !== 201) throw new Error(`creating farm ${farmname}: ${res.status} ${JSON.stringify(res.body)}`);
}

/** Adds a backend and returns its id. */
export async function addBackend(app: FastifyInstance, farm: string, backend: Record<string, unknown>): Promise<number> {
  const res = await call(app, 'POST', `/farms/${farm}/backends`, backend);
  if (res.status !== 201) throw new Error(`adding backend to ${farm}: ${res.status} ${JSON.stringify(res.body)}`);
  return res.body.params.id as number;
}

/** The error envelope ZAPI answers for a refused call. */
export const zapiError = (description: string, message: string) => ({ description, error: 'true', message });
