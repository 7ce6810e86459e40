/**
 * `nftfarm config export` and `nftfarm config apply FILE [--dry-run]`. When an nftfarm daemon
 * serves the database (its serve file beside the database names a live process), they go
 * through its API (GET/PUT /system/config), so the running reconciler sees the change at
 * once; otherwise they open the database directly (the next `serve` applies it).
 */
import fs from 'node:fs';
import path from 'node:path';
import type { Config } from '../config.js';
import { openDatabase } from '../store/db.js';
import { Store } from '../store/store.js';
import { apiKeyPath } from '../api/api-key.js';
import { documentText, exportDocument, type ConfigDocument } from './document.js';
import { hostProblems, parseDocument } from './validate.js';
import { applyDocument, ApplyRefused, planDocument, type Plan } from './apply.js';

/** Written by `serve` beside the database while it runs. */
export const serveFilePath = (dbPath: string): string => path.join(path.dirname(dbPath), 'nftfarm.serve.json');

export function writeServeFile(dbPath: string, listen: string): () => void {
  const file = serveFilePath(dbPath);
  fs.writeFileSync(file, JSON.stringify({ pid: process.pid, listen, db: dbPath }));
  return () => fs.rmSync(file, { force: true });
}

interface Daemon {
  url: string;
  key: string;
}

/** The daemon serving this database, if one runs. */
function liveDaemon(config: Config): Daemon | null {
  let info: { pid: number; listen: string; db: string };
  try {
    info = JSON.parse(fs.readFileSync(serveFilePath(config.dbPath), 'utf8'));
  } catch {
    return null;
  }
  let cmdline = '';
  try {
    cmdline = fs.readFileSync(`/proc/${info.pid}/cmdline`, 'utf8');
  } catch {
    return null; // gone (killed): the file is stale
  }
  if (!cmdline.includes('nftfarm') || info.db !== config.dbPath) return null;
  const [host, port] = [info.listen.slice(0, info.listen.lastIndexOf(':')), info.listen.slice(info.listen.lastIndexOf(':') + 1)];
  const reachable = host === '0.0.0.0' ? '127.0.0.1' : host === '::' ? '[::1]' : host.includes(':') && !host.startsWith('[') ? `[${host}]` : host;
  const key = config.apiKey ?? fs.readFileSync(apiKeyPath(config.dbPath), 'utf8').trim();
  return { url: `http://${reachable}:${port}/zapi/v4.0/zapi.cgi/system/config`, key };
}

async function call(daemon: Daemon, method: 'GET' | 'PUT', query = '', body?: unknown): Promise<{ status: number; body: any }> {
  const res = await fetch(`${daemon.url}${query}`, {
    method,
    headers: { ZAPI_KEY: daemon.key, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  return { status: res.status, body: await res.json() };
}

export async function exportCommand(config: Config): Promise<number> {
  const daemon = liveDaemon(config);
  if (daemon) {
    const r = await call(daemon, 'GET');
    if (r.status !== 200) return fail(r.body?.message ?? `HTTP ${r.status}`);
    process.stdout.write(documentText(r.body.params as ConfigDocument));
    return 0;
  }
  if (!fs.existsSync(config.dbPath)) return fail(`no database at ${config.dbPath} (pass --db)`);
  const store = new Store(openDatabase(config.dbPath));
  try {
    process.stdout.write(documentText(exportDocument(store)));
  } finally {
    store.close();
  }
  return 0;
}

export async function applyCommand(config: Config, file: string, dryRun: boolean): Promise<number> {
  let input: unknown;
  try {
    input = JSON.parse(file === '-' ? fs.readFileSync(0, 'utf8') : fs.readFileSync(file, 'utf8'));
  } catch (err) {
    return fail(`cannot read ${file}: ${err instanceof Error ? err.message : String(err)}`);
  }
  const daemon = liveDaemon(config);
  if (daemon) {
    const r = await call(daemon, 'PUT', dryRun ? '?dry_run=true' : '', input);
    if (r.status !== 200) return problems(r.body?.problems ?? [r.body?.message ?? `HTTP ${r.status}`]);
    return report(r.body.params.plan as Plan, r.body.message, r.body.params.digest, 'the running daemon');
  }
  const parsed = parseDocument(input);
  if (!parsed.doc) return problems(parsed.problems);
  const { openHostNetwork } = await import('../dataplane/netlink/host-network.js');
  const { netlinkHostView } = await import('../dataplane/host-view.js');
  const net = openHostNetwork();
  let issues: string[];
  try {
    issues = await hostProblems(parsed.doc, (ips) => netlinkHostView(net).connectedNetworks(ips));
  } finally {
    net.close();
  }
  if (issues.length > 0) return problems(issues);
  const store = new Store(openDatabase(config.dbPath));
  try {
    let plan: Plan;
    if (dryRun) {
      const planned = planDocument(store, parsed.doc);
      if (planned.problems.length > 0) return problems(planned.problems);
      plan = planned.plan;
    } else plan = applyDocument(store, parsed.doc);
    const { configDigest } = await import('./document.js');
    return report(plan, dryRun ? 'Dry run: nothing was changed.' : 'Applied.', configDigest(store), config.dbPath);
  } catch (err) {
    if (err instanceof ApplyRefused) return problems(err.problems);
    throw err;
  } finally {
    store.close();
  }
}

function report(plan: Plan, message: string, digest: string, where: string): number {
  process.stdout.write(`${JSON.stringify({ message, via: where, digest, plan }, null, 2)}\n`);
  return 0;
}

function problems(list: string[]): number {
  process.stderr.write(`nftfarm: the configuration was refused, nothing was changed:\n${list.map((p) => `  - ${p}\n`).join('')}`);
  return 1;
}

function fail(message: string): number {
  process.stderr.write(`nftfarm: ${message}\n`);
  return 1;
}
