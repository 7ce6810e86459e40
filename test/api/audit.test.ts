// Issue 11, audit trail: every write request that passed the key check is kept in SQLite
// (method, route pattern, farm, a fingerprint of the key, remote address, status, time),
// accepted (2xx) and refused (4xx/5xx, marked accepted "false") alike; 401s are not (anyone
// could flood them). Bounded to the newest rows, readable through GET /system/audit.
import { createHash } from 'node:crypto';
import t from 'tap';
import { AuditLog } from '../../src/store/audit.js';
import { openDatabase } from '../../src/store/db.js';
import { API_KEY, ZAPI, buildTestApp, call, createFarm } from '../helpers/api.js';
import { isZapiErrorEnvelope } from '../helpers/raw-http.js';

const FINGERPRINT = `sha256:${createHash('sha256').update(API_KEY).digest('hex').slice(0, 16)}`;

t.test('writes are recorded, newest first; reads and 401s are not', async (t) => {
  const { app } = await buildTestApp(t);
  await createFarm(app, 'f1');
  t.equal((await call(app, 'PUT', '/farms/f1', { ttl: 0 })).status, 400);
  t.equal((await call(app, 'POST', '/farms/f1/backends', { ip: '10.250.0.20' })).status, 201);
  t.equal((await call(app, 'GET', '/farms/f1')).status, 200);
  t.equal((await app.inject({ method: 'DELETE', url: `${ZAPI}/farms/f1`, headers: { ZAPI_KEY: 'not-the-key' } })).statusCode, 401);
  t.equal((await call(app, 'DELETE', '/farms/f1')).status, 200);

  const res = await call(app, 'GET', '/system/audit');
  t.equal(res.status, 200);
  t.equal(res.body.description, 'Audit trail');
  const rows = res.body.params as Record<string, unknown>[];
  t.same(
    rows.map((r) => [r.method, r.route, r.farm, r.status, r.accepted]),
    [
      ['DELETE', `${ZAPI}/farms/:farmname`, 'f1', 200, 'true'],
      ['POST', `${ZAPI}/farms/:farmname/backends`, 'f1', 201, 'true'],
      ['PUT', `${ZAPI}/farms/:farmname`, 'f1', 400, 'false'],
      ['POST', `${ZAPI}/farms`, 'f1', 201, 'true'],
    ],
  );
  for (const r of rows) {
    t.equal(r.key_fingerprint, FINGERPRINT, 'a fingerprint of the key');
    t.equal(r.remote, '127.0.0.1');
    t.match(r.time, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
    t.type(r.id, 'number');
  }
  t.notMatch(JSON.stringify(res.body), API_KEY, 'never the key itself');
  t.equal(res.body.next_before, null, 'one page');
});

t.test('paging with limit and before, and a filter by farm', async (t) => {
  const { app } = await buildTestApp(t);
  for (const name of ['a', 'b', 'c']) await createFarm(app, name, '80', `10.250.0.${name.charCodeAt(0) - 80}`);
  for (const name of ['a', 'b', 'c']) t.equal((await call(app, 'PUT', `/farms/${name}`, { vport: '81' })).status, 200);

  const first = await call(app, 'GET', '/system/audit?limit=4');
  t.equal(first.body.params.length, 4);
  t.same(first.body.params.map((r: { farm: string }) => r.farm), ['c', 'b', 'a', 'c']);
  t.type(first.body.next_before, 'number');
  const second = await call(app, 'GET', `/system/audit?limit=4&before=${first.body.next_before}`);
  t.same(second.body.params.map((r: { farm: string }) => r.farm), ['b', 'a']);
  t.equal(second.body.next_before, null);

  const onlyB = await call(app, 'GET', '/system/audit?farm=b');
  t.same(onlyB.body.params.map((r: { method: string }) => r.method), ['PUT', 'POST']);

  for (const query of ['limit=0', 'limit=1001', 'limit=x', 'before=-1', 'farm=a_b', `farm=${'x'.repeat(65)}`, 'other=1']) {
    const bad = await call(app, 'GET', `/system/audit?${query}`);
    t.equal(bad.status, 400, query);
    t.ok(isZapiErrorEnvelope(bad.body), `${query}: envelope`);
  }
});

t.test('a refused request with a huge farm name is recorded with the name cut', async (t) => {
  const { app } = await buildTestApp(t);
  t.equal((await call(app, 'POST', '/farms', { farmname: 'x'.repeat(10_000), profile: 'l4xnat', vip: '10.250.0.10', vport: '80' })).status, 400);
  const [row] = (await call(app, 'GET', '/system/audit')).body.params;
  t.equal(row.status, 400);
  t.equal(row.farm.length, 64);
});

t.test('the log keeps the newest rows only', async (t) => {
  const db = openDatabase(':memory:');
  t.teardown(() => db.close());
  const audit = new AuditLog(db, { maxRows: 5 });
  for (let i = 0; i < 12; i++) {
    audit.record({ method: 'PUT', route: '/r', farm: `f${i}`, keyFingerprint: 'sha256:x', remote: '127.0.0.1', status: 200, at: new Date(0) });
  }
  const page = audit.list({ limit: 100 });
  t.same(page.entries.map((e) => e.farm), ['f11', 'f10', 'f9', 'f8', 'f7']);
  t.equal((db.prepare('SELECT count(*) AS n FROM audit_log').get() as { n: number }).n, 5);
});
