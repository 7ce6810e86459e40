// The SQLite store on real files: durability across restarts, migrations, the generation
// counter, all-or-nothing writes and the connection settings.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import t from 'tap';
import Database from 'better-sqlite3';
import { migrate, openDatabase, readMigrations, SchemaTooNewError } from '../../src/store/db.js';
import { Store, StoreLimitError } from '../../src/store/store.js';
import { addBackend, buildTestApp, call, createFarm } from '../helpers/api.js';

interface Teardown {
  teardown(fn: () => unknown): void;
}

function tempDir(t: Teardown): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'nftfarm-store-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  return dir;
}

function thrown(fn: () => unknown): Error | undefined {
  try {
    fn();
  } catch (err) {
    return err as Error;
  }
  return undefined;
}

function openStore(t: Teardown, file: string): Store {
  const store = new Store(openDatabase(file));
  t.teardown(() => {
    if (store.db.open) store.close();
  });
  return store;
}

t.test('a restart keeps every farm, backend, check and link', async (t) => {
  const dir = tempDir(t);
  const first = await buildTestApp(t, { dir });
  const { app } = first;
  await createFarm(app, 'web');
  await addBackend(app, 'web', { ip: '10.250.0.20', port: 8080, weight: 3, priority: 2, max_conns: 9 });
  await addBackend(app, 'web', { ip: '10.250.0.21' });
  t.equal((await call(app, 'PUT', '/farms/web/backends/1/maintenance', { action: 'maintenance', mode: 'cut' })).status, 200);
  t.equal((await call(app, 'PUT', '/farms/web', { algorithm: 'hash_srcip', persistence: 'ip', ttl: 200, protocol: 'udp' })).status, 200);
  await createFarm(app, 'dsr', '443', '10.250.0.11');
  t.equal((await call(app, 'PUT', '/farms/dsr', { nattype: 'dsr' })).status, 200);
  await addBackend(app, 'dsr', { ip: '10.250.0.30' });
  t.equal((await call(app, 'PUT', '/farms/dsr/actions', { action: 'stop' })).status, 200);
  t.equal((await call(app, 'POST', '/monitoring/fg', { name: 'mine', command: 'check_tcp -H HOST -p PORT', interval: 20 })).status, 200);
  t.equal((await call(app, 'POST', '/farms/web/fg', { name: 'mine' })).status, 200);
  t.equal((await call(app, 'POST', '/farms/dsr/fg', { name: 'check_ping' })).status, 200);
  t.equal((await call(app, 'PUT', '/monitoring/fg/check_tcp', { interval: 60 })).status, 200);

  const urls = ['/farms', '/farms/web', '/farms/dsr', '/farms/web/backends', '/monitoring/fg', '/stats/farms', '/system/status'];
  const before = await Promise.all(urls.map(async (url) => (await call(app, 'GET', url)).body));
  const generation = first.store.generation();
  await first.close();

  const second = await buildTestApp(t, { dir });
  const after = await Promise.all(urls.map(async (url) => (await call(second.app, 'GET', url)).body));
  for (const [i, url] of urls.entries()) t.strictSame(after[i], before[i], url);
  t.equal(second.store.generation(), generation, 'the generation survives too');
  t.equal(after[1].backends.length, 2);
  t.equal(after[2].params.status, 'down');
  t.equal(after[2].params.farmguardian, 'check_ping');

  t.equal(await addBackend(second.app, 'web', { ip: '10.250.0.22' }), 2, 'ids continue after a restart');
});

t.test('opening a database twice migrates nothing the second time', async (t) => {
  const dir = tempDir(t);
  const file = path.join(dir, 'sub', 'dir', 'nftfarm.db');
  const migrations = readMigrations();
  t.strictSame(
    migrations.map((m) => [m.version, m.name]),
    [
      [1, 'init'],
      [2, 'dataplane-bookkeeping'],
      [3, 'health-check-hysteresis'],
      [4, 'farm-slots'],
      [5, 'bgp'],
      [6, 'audit-log'],
      [7, 'applied-state'],
    ],
  );

  const fresh = new Database(':memory:');
  t.strictSame(migrate(fresh, migrations), [1, 2, 3, 4, 5, 6, 7], 'a new database gets every migration');
  t.strictSame(migrate(fresh, migrations), [], 'and none the second time');
  t.equal(fresh.pragma('user_version', { simple: true }), 7);
  fresh.close();

  const db1 = openDatabase(file);
  t.ok(fs.existsSync(file), 'the directory is created');
  t.equal(db1.pragma('user_version', { simple: true }), migrations.length);
  const tables = () => db1.prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name").pluck().all();
  const tableList = tables();
  t.ok(tableList.includes('farms') && tableList.includes('known_neighbors'));
  const templates = db1.prepare('SELECT count(*) FROM health_checks').pluck().get();
  t.equal(templates, 4);
  db1.close();

  const db2 = openDatabase(file);
  t.equal(db2.pragma('user_version', { simple: true }), migrations.length);
  t.strictSame(migrate(db2, migrations), [], 'nothing to apply');
  t.equal(db2.prepare('SELECT count(*) FROM health_checks').pluck().get(), 4, 'the templates were not inserted twice');
  db2.close();

  const partial = new Database(path.join(dir, 'partial.db'));
  t.strictSame(migrate(partial, migrations.slice(0, 1)), [1]);
  t.strictSame(migrate(partial, migrations), [2, 3, 4, 5, 6, 7], 'only the missing migrations run');
  t.equal(partial.pragma('user_version', { simple: true }), 7);
  partial.close();
});

t.test('a database newer than this nftfarm is refused and left alone', async (t) => {
  const dir = tempDir(t);
  const file = path.join(dir, 'nftfarm.db');
  openDatabase(file).close();
  const raw = new Database(file);
  raw.pragma('user_version = 8');
  raw.close();

  const error = thrown(() => openDatabase(file));
  t.ok(error instanceof SchemaTooNewError, 'a SchemaTooNewError');
  t.equal(
    error?.message,
    'the database schema is version 8, newer than this nftfarm supports (7); upgrade nftfarm or point --db at another database',
  );
  const check = new Database(file);
  t.equal(check.pragma('user_version', { simple: true }), 8, 'the version was not touched');
  check.close();

  const tooNew = new Database(':memory:');
  tooNew.pragma('user_version = 8');
  t.ok(thrown(() => migrate(tooNew, readMigrations())) instanceof SchemaTooNewError);
  t.equal(tooNew.prepare("SELECT count(*) FROM sqlite_master WHERE name = 'farms'").pluck().get(), 0, 'no migration ran');
  tooNew.close();
});

t.test('readMigrations refuses badly named or out-of-sequence files', async (t) => {
  const dir = tempDir(t);
  fs.writeFileSync(path.join(dir, '001-a.sql'), 'CREATE TABLE a (x);');
  fs.writeFileSync(path.join(dir, '003-c.sql'), 'CREATE TABLE c (x);');
  t.throws(() => readMigrations(dir), { message: "migration '003-c.sql' is out of sequence: expected version 2" });
  fs.rmSync(path.join(dir, '003-c.sql'));
  fs.writeFileSync(path.join(dir, '002_B.sql'), '');
  t.throws(() => readMigrations(dir), { message: "migration file '002_B.sql' is not named NNN-name.sql" });
});

t.test('WAL, foreign keys and synchronous=FULL are set', async (t) => {
  const dir = tempDir(t);
  const db = openDatabase(path.join(dir, 'nftfarm.db'));
  t.teardown(() => db.close());
  t.equal(db.pragma('journal_mode', { simple: true }), 'wal');
  t.equal(db.pragma('foreign_keys', { simple: true }), 1);
  t.equal(db.pragma('synchronous', { simple: true }), 2, 'FULL');
  t.equal(db.pragma('busy_timeout', { simple: true }), 5000);
});

t.test('every API write bumps the generation exactly once', async (t) => {
  const { app, store } = await buildTestApp(t);
  const changes: number[] = [];
  const farmsChanged: number[][] = [];
  store.onChange((c) => {
    changes.push(c.generation);
    farmsChanged.push([...c.farmIds]);
  });
  const writes: ['POST' | 'PUT' | 'DELETE', string, unknown?][] = [
    ['POST', '/farms', { farmname: 'f1', profile: 'l4xnat', vip: '10.250.0.10', vport: '80' }],
    ['PUT', '/farms/f1', { ttl: 30 }],
    ['POST', '/farms/f1/backends', { ip: '10.250.0.20' }],
    ['PUT', '/farms/f1/backends/0', { weight: 2 }],
    ['PUT', '/farms/f1/backends/0/maintenance', { action: 'maintenance' }],
    ['PUT', '/farms/f1/backends/0/maintenance', { action: 'up' }],
    ['PUT', '/farms/f1/actions', { action: 'stop' }],
    ['PUT', '/farms/f1/actions', { action: 'start' }],
    ['PUT', '/farms/f1/actions', { action: 'restart' }],
    ['POST', '/monitoring/fg', { name: 'mine', command: 'check_tcp -H HOST -p PORT' }],
    ['PUT', '/monitoring/fg/mine', { interval: 20 }],
    ['POST', '/farms/f1/fg', { name: 'mine' }],
    ['DELETE', '/farms/f1/fg/mine'],
    ['DELETE', '/monitoring/fg/mine'],
    ['POST', '/farms', { farmname: 'f2', profile: 'l4xnat', vip: '10.250.0.11', vport: '80', copy_from: 'f1' }],
    ['DELETE', '/farms/f1/backends/0'],
    ['DELETE', '/farms/f1'],
  ];
  t.equal(store.generation(), 0);
  for (const [i, [method, url, body]] of writes.entries()) {
    const before = store.generation();
    const res = await call(app, method, url, body);
    t.ok(res.status === 200 || res.status === 201, `${method} ${url}: ${res.status}`);
    t.equal(store.generation(), before + 1, `${method} ${url} bumps the generation once`);
    t.equal(changes[i], before + 1, 'the listener hears the new generation');
  }
  t.equal(changes.length, writes.length, 'one notification per write');
  // Each notification names the farms the write changed (the reconciler re-derives only those).
  t.strictSame(farmsChanged[0], [1], 'POST /farms: the new farm');
  t.strictSame(farmsChanged[3], [1], 'a backend change: its farm');
  t.strictSame(farmsChanged[9], [], 'a new check changes no farm');
  t.strictSame(farmsChanged[10], [], 'nor does a change of a check no farm uses');
  t.strictSame(farmsChanged[11], [1], 'linking it changes the farm');
  t.strictSame(farmsChanged[14], [2], 'a copy: the new farm');
  t.strictSame(farmsChanged[16], [1], 'a deleted farm');

  const f2 = store.getFarm('f2')!;
  t.equal(f2.generation, 15, 'a farm records the generation of its last change');
  t.equal((await call(app, 'PUT', '/farms/f2/backends/0', { weight: 4 })).status, 200);
  t.equal(store.getFarm('f2')!.generation, store.generation(), 'a backend change marks its farm');

  const reads = ['/farms', '/farms/f2', '/farms/f2/status', '/farms/f2/backends', '/monitoring/fg', '/monitoring/fg/check_tcp', '/stats/farms', '/stats/farms/f2', '/system/status'];
  const generation = store.generation();
  for (const url of reads) t.equal((await call(app, 'GET', url)).status, 200, url);
  t.equal(store.generation(), generation, 'reads write nothing');
});

t.test('a refused write changes nothing, not even the generation', async (t) => {
  const { app, store } = await buildTestApp(t);
  await createFarm(app, 'f1');
  await addBackend(app, 'f1', { ip: '10.250.0.20', port: 8080 });
  await createFarm(app, 'f2', '81');
  t.equal((await call(app, 'POST', '/farms/f1/fg', { name: 'check_tcp' })).status, 200);
  const notified: number[] = [];
  store.onChange((g) => notified.push(g));

  const refused: ['POST' | 'PUT' | 'DELETE', string, unknown, number][] = [
    // refused while checking the body
    ['POST', '/farms', { farmname: 'f3' }, 400],
    ['PUT', '/farms/f1', { ttl: 0 }, 400],
    ['PUT', '/farms/f1', { algorithm: 'prio' }, 410],
    // refused inside the write transaction, after the generation was bumped
    ['POST', '/farms', { farmname: 'f3', profile: 'l4xnat', vip: '10.250.0.10', vport: '80' }, 400],
    ['PUT', '/farms/f2', { vport: '80' }, 400],
    ['PUT', '/farms/f2', { newfarmname: 'f1' }, 400],
    ['PUT', '/farms/f1', { nattype: 'dsr' }, 400],
    ['POST', '/farms/f1/backends', { ip: '10.250.0.20', port: 8080 }, 400],
    ['PUT', '/farms/f1/actions', { action: 'stop' }, 200],
    ['PUT', '/farms/f2', { vport: '80' }, 200],
    ['PUT', '/farms/f1/actions', { action: 'start' }, 400],
    ['POST', '/farms/f1/fg', { name: 'check_http' }, 400],
    ['DELETE', '/farms/f2/fg/check_tcp', undefined, 400],
    ['DELETE', '/monitoring/fg/check_tcp', undefined, 400],
    ['DELETE', '/monitoring/fg/check_http', undefined, 400],
    ['PUT', '/monitoring/fg/check_tcp', { command: 'x', force: 'true' }, 400],
    ['POST', '/monitoring/fg', { name: 'x', copy_from: 'nope' }, 400],
    ['POST', '/monitoring/fg', { name: 'x', command: 'y', interval: 1, timeout: 2 }, 400],
  ];
  for (const [method, url, body, status] of refused) {
    const before = store.snapshot();
    const notes = notified.length;
    const res = await call(app, method, url, body);
    t.equal(res.status, status, `${method} ${url} ${JSON.stringify(body)}: ${res.body?.message ?? ''}`);
    if (status >= 400) {
      t.strictSame(store.snapshot(), before, `${method} ${url}: nothing changed`);
      t.equal(notified.length, notes, 'nobody was told of a change');
    } else {
      t.equal(store.generation(), before.generation + 1, `${method} ${url} is a real write`);
    }
  }
  t.strictSame(
    store.listHealthChecks().map((c) => c.name),
    ['check_http', 'check_ping', 'check_tcp', 'check_udp'],
  );
});

t.test('Store.write: one transaction, rolled back on error', async (t) => {
  const dir = tempDir(t);
  const store = openStore(t, path.join(dir, 'nftfarm.db'));
  const seen: number[] = [];
  store.onChange((c) => seen.push(c.generation));
  const farm = store.write((g) =>
    store.insertFarm({ name: 'f1', vip: '10.250.0.10', vport: '80', protocol: 'tcp', nattype: 'nat', algorithm: 'weight', persistence: '', ttl: 60, running: true }, g),
  );
  t.equal(farm.generation, 1);
  t.strictSame(seen, [1]);

  t.throws(() =>
    store.write((g) => {
      store.insertBackend(farm.id, { ip: '10.250.0.20', port: null, weight: 1, priority: 1, maxConns: 0 }, g);
      throw new Error('refused');
    }),
  );
  t.equal(store.generation(), 1);
  t.strictSame(store.listBackends(farm.id), [], 'the insert was rolled back');
  t.equal(store.getFarm('f1')?.generation, 1, 'and so was the farm touch');
  t.strictSame(seen, [1], 'no notification for a rolled back write');

  t.throws(
    () => store.write((g) => store.insertBackend(farm.id, { ip: '10.250.0.20', port: null, weight: 10, priority: 1, maxConns: 0 }, g)),
    /CHECK constraint failed/,
    'the schema refuses what the API would have refused',
  );
  t.throws(() => store.write(() => store.write(() => 1)), { message: 'nested Store.write' });
  t.equal(store.generation(), 1);

  const b = store.write((g) => store.insertBackend(farm.id, { ip: '10.250.0.20', port: null, weight: 1, priority: 1, maxConns: 0 }, g));
  t.equal(b.id, 0);
  t.equal(store.generation(), 2);
  t.throws(() => store.write((g) => store.linkHealthCheck(farm.id, 'no-such-check', g)), /FOREIGN KEY constraint failed/, 'foreign keys are enforced');
  store.write((g) => store.linkHealthCheck(farm.id, 'check_tcp', g));
  t.throws(() => store.write(() => store.deleteHealthCheck('check_tcp')), /FOREIGN KEY constraint failed/, 'a linked check cannot go');
  store.write(() => store.deleteFarm(farm.id));
  t.equal(store.db.prepare('SELECT count(*) FROM backends').pluck().get(), 0, 'backends go with their farm');
  t.equal(store.db.prepare('SELECT count(*) FROM farm_health_checks').pluck().get(), 0, 'and so do links');
  t.strictSame(seen, [1, 2, 3, 4]);
});

t.test('a listener that throws does not undo or fail a committed write', async (t) => {
  const dir = tempDir(t);
  const reported: unknown[] = [];
  const store = new Store(openDatabase(path.join(dir, 'nftfarm.db')), (err) => reported.push(err));
  t.teardown(() => store.close());
  const heard: number[] = [];
  store.onChange(() => {
    throw new Error('listener bug');
  });
  store.onChange((c) => heard.push(c.generation));
  const farm = store.write((g) =>
    store.insertFarm({ name: 'f1', vip: '10.250.0.10', vport: '80', protocol: 'tcp', nattype: 'nat', algorithm: 'weight', persistence: '', ttl: 60, running: true }, g),
  );
  t.equal(farm.name, 'f1', 'the writer gets its result');
  t.equal(store.getFarm('f1')?.id, farm.id, 'the write stands');
  t.strictSame(heard, [1], 'the other listeners still hear it');
  t.match(reported, [{ message: 'listener bug' }], 'the failure is reported');
});

t.test('farm slots: lowest free first, reused after a deletion, a clear error at the limit', async (t) => {
  const dir = tempDir(t);
  const store = openStore(t, path.join(dir, 'nftfarm.db'));
  const add = (name: string) =>
    store.write((g) => store.insertFarm({ name, vip: '10.250.0.10', vport: '80', protocol: 'tcp', nattype: 'dsr', algorithm: 'weight', persistence: '', ttl: 60, running: true }, g));
  const [a, b, c] = ['a', 'b', 'c'].map(add);
  t.strictSame([a!.slot, b!.slot, c!.slot], [1, 2, 3]);
  store.write(() => store.deleteFarm(b!.id));
  store.write(() => store.deleteFarm(a!.id));
  t.equal(add('d').slot, 1, 'the lowest free slot');
  t.equal(add('e').slot, 2);
  t.equal(add('f').slot, 4, 'then the next after the highest');
  t.ok(add('g').id > c!.id, 'ids are never reused, slots are');
  store.maxFarmSlot = 5;
  t.throws(() => add('h'), StoreLimitError, 'past the limit: a clear error');
  t.equal(store.getFarm('h'), undefined, 'nothing stored');
});

t.test('bookkeeping writes do not bump the generation', async (t) => {
  const dir = tempDir(t);
  const file = path.join(dir, 'nftfarm.db');
  const store = openStore(t, file);
  store.saveKernelSetting('net.ipv4.conf.eth0.forwarding', '0');
  store.saveKernelSetting('net.ipv4.conf.eth0.forwarding', '1');
  store.rememberNeighbor('eth0', '10.250.0.20', '02:00:00:00:00:01');
  store.rememberNeighbor('eth0', '10.250.0.20', '02:00:00:00:00:02');
  t.equal(store.generation(), 0);
  store.close();
  const reopened = openStore(t, file);
  t.strictSame([...reopened.savedKernelSettings()], [['net.ipv4.conf.eth0.forwarding', '0']], 'the first saved value is kept');
  t.strictSame(reopened.knownNeighbors(), [{ interface: 'eth0', ip: '10.250.0.20', mac: '02:00:00:00:00:02' }]);
  reopened.forgetKernelSetting('net.ipv4.conf.eth0.forwarding');
  t.equal(reopened.savedKernelSettings().size, 0);
});
