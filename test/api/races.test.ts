// Issue 11, finding 9: a write is one transaction that reads what it writes. The routes look
// the host's networks up (an await) before writing; whatever another request commits
// meanwhile (the farm deleted, re-created, moved to another VIP) must be seen by the write,
// never half-seen (a 500, or a 200 that changed nothing). And a store listener that throws
// never turns a committed write into an error.
import t from 'tap';
import type { ConnectedNetwork, HostView } from '../../src/model/runtime.js';
import { openDatabase } from '../../src/store/db.js';
import { Store } from '../../src/store/store.js';
import { addBackend, buildTestApp, call, createFarm, fakeHost } from '../helpers/api.js';

/** fakeHost, plus a hook run once, during the next lookup: "another request" commits then. */
function racingHost(): { host: HostView; during(fn: () => void): void } {
  let pending: (() => void) | null = null;
  return {
    host: {
      async connectedNetworks(ips: readonly string[]): Promise<(ConnectedNetwork | null)[]> {
        const answer = await fakeHost.connectedNetworks(ips);
        const fn = pending;
        pending = null;
        fn?.();
        return answer;
      },
    },
    during(fn) {
      pending = fn;
    },
  };
}

const newFarm = (name: string, vip: string, nattype: 'nat' | 'dsr' = 'nat') =>
  ({ name, vip, vport: '80', protocol: 'tcp', nattype, algorithm: 'weight', persistence: '', ttl: 60, running: true }) as const;

const backendRow = (ip: string, weight = 1) => ({ ip, port: null, weight, priority: 1, maxConns: 0 });

t.test('POST backend while the farm is deleted and re-created: the backend goes to the farm that exists', async (t) => {
  const race = racingHost();
  const { app, store } = await buildTestApp(t, { app: { host: race.host } });
  await createFarm(app, 'f1');
  await addBackend(app, 'f1', { ip: '10.250.0.20' });
  race.during(() =>
    store.write((g) => {
      store.deleteFarm(store.getFarm('f1')!.id);
      store.insertFarm(newFarm('f1', '10.250.0.10'), g);
    }),
  );
  const res = await call(app, 'POST', '/farms/f1/backends', { ip: '10.250.0.30' });
  t.equal(res.status, 201, `201 (got ${res.status} ${JSON.stringify(res.body)})`);
  const now = store.getFarm('f1')!;
  t.same(store.listBackends(now.id).map((b) => b.ip), ['10.250.0.30'], 'the new farm has the backend, with id 0');
  t.equal(res.body?.params?.id, 0, 'the id answered is the one stored');
});

t.test('PUT backend while the farm is deleted and re-created: the change lands, or nothing is claimed', async (t) => {
  const race = racingHost();
  const { app, store } = await buildTestApp(t, { app: { host: race.host } });
  await createFarm(app, 'f1');
  await addBackend(app, 'f1', { ip: '10.250.0.20' });
  race.during(() =>
    store.write((g) => {
      store.deleteFarm(store.getFarm('f1')!.id);
      const farm = store.insertFarm(newFarm('f1', '10.250.0.10'), g);
      store.insertBackend(farm.id, backendRow('10.250.0.20'), g);
    }),
  );
  const res = await call(app, 'PUT', '/farms/f1/backends/0', { weight: 5 });
  t.equal(res.status, 200);
  t.equal(store.getBackend(store.getFarm('f1')!.id, 0)?.weight, 5, 'a 200 means the stored backend changed');
});

t.test('the farm moved to another network meanwhile: the rules are checked against the farm as it is', async (t) => {
  const race = racingHost();
  const { app, store } = await buildTestApp(t, { app: { host: race.host } });
  await createFarm(app, 'f1');
  t.equal((await call(app, 'PUT', '/farms/f1', { nattype: 'dsr' })).status, 200);
  race.during(() =>
    store.write((g) => {
      store.deleteFarm(store.getFarm('f1')!.id);
      // DSR backends must be in the VIP's network: now eth1's.
      store.insertFarm(newFarm('f1', '10.9.0.100', 'dsr'), g);
    }),
  );
  const res = await call(app, 'POST', '/farms/f1/backends', { ip: '10.250.0.30' });
  t.equal(res.status, 400, `refused (got ${res.status} ${JSON.stringify(res.body)})`);
  t.match(res.body?.message, /is not in the network 10\.9\.0\.0\/24/);
  t.same(store.listBackends(store.getFarm('f1')!.id), [], 'nothing added');
});

t.test('the farm deleted meanwhile: 404, not 500', async (t) => {
  const race = racingHost();
  const { app, store } = await buildTestApp(t, { app: { host: race.host } });
  await createFarm(app, 'f1');
  await addBackend(app, 'f1', { ip: '10.250.0.20' });
  for (const [method, url, body] of [
    ['POST', '/farms/f1/backends', { ip: '10.250.0.31' }],
    ['PUT', '/farms/f1/backends/0', { weight: 3 }],
    ['PUT', '/farms/f1', { vport: '81' }],
    ['PUT', '/farms/f1/actions', { action: 'restart' }],
  ] as const) {
    race.during(() => store.write(() => store.deleteFarm(store.getFarm('f1')!.id)));
    const res = await call(app, method, url, body);
    t.equal(res.status, 404, `${method} ${url}: 404 (got ${res.status} ${JSON.stringify(res.body)})`);
    t.match(res.body?.message, /f1/);
    t.equal(store.listFarms().length, 0);
    await createFarm(app, 'f1');
    await addBackend(app, 'f1', { ip: '10.250.0.20' });
  }
});

t.test('POST /farms with copy_from while the source changes: the copy is of the source as it is', async (t) => {
  const race = racingHost();
  const { app, store } = await buildTestApp(t, { app: { host: race.host } });
  await createFarm(app, 'src');
  await addBackend(app, 'src', { ip: '10.250.0.20' });
  race.during(() => store.write((g) => store.insertBackend(store.getFarm('src')!.id, backendRow('10.250.0.21'), g)));
  const res = await call(app, 'POST', '/farms', { farmname: 'copy', profile: 'l4xnat', vip: '10.250.0.11', vport: '80', copy_from: 'src' });
  t.equal(res.status, 201);
  t.same(
    store.listBackends(store.getFarm('copy')!.id).map((b) => b.ip),
    ['10.250.0.20', '10.250.0.21'],
    'both backends copied',
  );
});

t.test('a store listener that throws: the write stands, the error is reported, the other listeners run', async (t) => {
  const reported: unknown[] = [];
  const store = new Store(openDatabase(':memory:'), (err) => reported.push(err));
  t.teardown(() => store.close());
  const seen: number[] = [];
  store.onChange(() => {
    throw new Error('listener boom');
  });
  store.onChange((change) => seen.push(change.generation));
  const farm = store.write((g) => store.insertFarm(newFarm('f1', '10.250.0.10'), g));
  t.equal(farm.name, 'f1', 'write() returns its result');
  t.ok(store.getFarm('f1'), 'committed');
  t.equal(reported.length, 1);
  t.match(String(reported[0]), /listener boom/);
  t.same(seen, [store.generation()], 'the next listener still ran');
});

t.test('through the API: a committed write answers 2xx even when a listener throws', async (t) => {
  const { app, store } = await buildTestApp(t);
  const original = console.error;
  const logged: unknown[] = [];
  console.error = (...args: unknown[]) => void logged.push(args);
  t.teardown(() => {
    console.error = original;
  });
  store.onChange(() => {
    throw new Error('listener boom');
  });
  const res = await call(app, 'POST', '/farms', { farmname: 'f1', profile: 'l4xnat', vip: '10.250.0.10', vport: '80' });
  console.error = original;
  t.equal(res.status, 201, `201 (got ${res.status} ${JSON.stringify(res.body)})`);
  t.ok(store.getFarm('f1'));
  t.ok(logged.length > 0, 'the failure was logged');
});
