/**
 * Issue 11, "must show": a crash test. 8 writers create farms, add and re-weight backends
 * against the real daemon in a lab namespace; mid-load the daemon is killed with SIGKILL and
 * started again on the same database. Every acknowledged write (a 2xx received) is there,
 * each with its audit entry; SQLite's integrity check passes; the time to /healthz and to
 * convergence (applied generation == store generation) is printed.
 */
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import Database from 'better-sqlite3';
import t from 'tap';
import { createLab } from '../../lab/lab.js';
import { API_KEY, startLabDaemon } from '../../lab/daemon.js';
import { withoutTapLoader } from '../helpers/live-daemon.js';

const WRITERS = path.join(path.dirname(fileURLToPath(import.meta.url)), 'fixtures', 'crash-writers.mjs');
const LOAD_MS = 6_000;

interface Attempt {
  ack: boolean;
  status: number;
  op: 'create' | 'backend' | 'weight';
  farm: string;
  ip?: string;
  weight?: number;
  id?: number | null;
}

t.test('kill -9 under 8 concurrent writers: no acknowledged write lost', async (t) => {
  const lab = await createLab({ prefix: 'nfcr', backends: 2 });
  t.teardown(() => lab.destroy());
  const daemon = await startLabDaemon(t, lab, { NFTFARM_LOG_LEVEL: 'warn' });

  // The writers run past the kill, so calls are in flight when it lands.
  const writers = lab.exec(lab.lb.ns, withoutTapLoader([process.execPath, WRITERS, '127.0.0.1:4444', API_KEY, '8', String(LOAD_MS + 2_000)]), { timeoutMs: 60_000 });
  await new Promise((r) => setTimeout(r, LOAD_MS));
  await daemon.stop('SIGKILL');
  const run = await writers;
  t.equal(run.code, 0, `the writers ran: ${run.stderr.slice(-1000)}`);
  const attempts = run.stdout.trim().split('\n').map((l) => JSON.parse(l) as Attempt);
  const acked = attempts.filter((a) => a.ack);
  const refused = attempts.filter((a) => a.status >= 300);
  t.comment(`${attempts.length} calls: ${acked.length} acknowledged, ${attempts.filter((a) => a.status === 0).length} without an answer, ${refused.length} refused`);
  t.ok(acked.length >= 50, 'a real load');
  t.same(refused.slice(0, 5), [], 'no call was refused while the daemon ran');

  await t.test('the database after the kill: integrity, every acknowledged write', async (t) => {
    const db = new Database(daemon.dbPath);
    t.teardown(() => db.close());
    t.equal(db.pragma('integrity_check', { simple: true }), 'ok', 'PRAGMA integrity_check');
    t.equal(db.pragma('foreign_key_check').length, 0, 'PRAGMA foreign_key_check');
    const farmIds = new Map((db.prepare('SELECT id, name FROM farms').all() as { id: number; name: string }[]).map((f) => [f.name, f.id]));
    const backend = db.prepare('SELECT ip, weight FROM backends WHERE farm_id = ? AND id = ?');
    const audited = db.prepare("SELECT count(*) AS n FROM audit_log WHERE farm = ? AND method = ? AND status BETWEEN 200 AND 299");
    const missing: string[] = [];
    for (const a of acked) {
      const farmId = farmIds.get(a.farm);
      if (farmId === undefined) {
        missing.push(`farm ${a.farm}`);
        continue;
      }
      if (a.op === 'backend' || a.op === 'weight') {
        const row = backend.get(farmId, a.id) as { ip: string; weight: number } | undefined;
        if (!row) missing.push(`backend ${a.farm}/${a.id}`);
        else if (a.op === 'backend' && row.ip !== a.ip) missing.push(`backend ${a.farm}/${a.id} has ip ${row.ip}, not ${a.ip}`);
      }
    }
    t.same(missing, [], `all ${acked.length} acknowledged writes are stored`);
    // Each writer's calls on a backend are sequential: its weight is the last acknowledged one,
    // or that of a later call that got no answer (committed, then the kill).
    const wrong: string[] = [];
    const byBackend = new Map<string, Attempt[]>();
    for (const a of attempts) if (a.id !== undefined && a.id !== null) byBackend.set(`${a.farm}/${a.id}`, [...(byBackend.get(`${a.farm}/${a.id}`) ?? []), a]);
    for (const [k, calls] of byBackend) {
      const lastAck = calls.filter((c) => c.ack).at(-1);
      if (!lastAck) continue;
      const after = calls.slice(calls.indexOf(lastAck) + 1).filter((c) => c.status === 0);
      const [farm, id] = k.split('/') as [string, string];
      const row = backend.get(farmIds.get(farm), Number(id)) as { weight: number } | undefined;
      const allowed = [lastAck.weight, ...after.map((c) => c.weight)];
      if (row && !allowed.includes(row.weight)) wrong.push(`${k}: weight ${row.weight}, acknowledged ${lastAck.weight}`);
    }
    t.same(wrong, [], 'every backend has its last acknowledged weight');
    const unaudited = acked.filter((a) => (audited.get(a.farm, a.op === 'create' ? 'POST' : a.op === 'backend' ? 'POST' : 'PUT') as { n: number }).n === 0);
    t.same(unaudited.slice(0, 5), [], 'every acknowledged write has its audit entry');
  });

  await t.test('restart on the same database: /healthz and convergence', async (t) => {
    const started = Date.now();
    await daemon.start();
    const healthzMs = Date.now() - started;
    let storeGeneration = 0;
    const converged = await daemon.until(async () => {
      const s = await daemon.api('GET', '/system/status');
      storeGeneration = s.body?.params?.store_generation ?? 0;
      return s.status === 200 && s.body.params.applied_generation === s.body.params.store_generation;
    }, 40_000);
    const convergedMs = Date.now() - started;
    t.ok(converged, 'the kernel converged');
    const farms = (await daemon.api('GET', '/farms')).body.params.length;
    t.comment(`restart after kill -9 with ${farms} farms (store generation ${storeGeneration}): /healthz after ${healthzMs} ms, converged after ${convergedMs} ms`);
    t.ok(farms >= new Set(acked.filter((a) => a.op === 'create').map((a) => a.farm)).size, 'the API lists every acknowledged farm');
  });
});
