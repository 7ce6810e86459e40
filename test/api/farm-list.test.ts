// The farm list kept between the reads of every farm (/metrics, /stats/farms): a write re-reads
// only the farms it names, a replaced runtime re-describes its farm, a generation the change
// feed did not announce reloads everything, and the list always equals one built afresh.
import t from 'tap';
import { FarmListCache } from '../../src/api/farm-list.js';
import { noDataplane, type DataplaneView, type FarmRuntime } from '../../src/model/runtime.js';
import { farmStatsSchema } from '../../src/api/schemas.js';
import { addBackend, buildTestApp, call, createFarm } from '../helpers/api.js';

t.test('the list follows writes, runtimes and writes the feed missed', async (t) => {
  const runtimes = new Map<number, FarmRuntime>();
  const dataplane: DataplaneView = { ...noDataplane, farm: (id) => runtimes.get(id) };
  const { app, store } = await buildTestApp(t, { app: { dataplane } });
  const cache = new FarmListCache(store, dataplane);
  t.teardown(() => cache.close());
  const fresh = () => {
    const other = new FarmListCache(store, dataplane);
    const farms = other.current().farms;
    other.close();
    return farms;
  };

  await createFarm(app, 'web', '80');
  await createFarm(app, 'api', '81');
  const first = cache.current();
  t.same(first.farms.map((f) => f.name), ['api', 'web'], "the store's order, by name");
  t.equal(cache.current(), first, 'nothing changed: the same list, the same version');

  await addBackend(app, 'web', { ip: '10.250.0.21' });
  const second = cache.current();
  t.not(second.version, first.version, 'a write changes the version');
  t.same(second.farms, fresh(), 'equal to a list built afresh');
  t.equal(second.farms[0], first.farms[0], 'a farm the write did not name is not described again');
  t.equal(second.farms[1]!.backends.length, 1, "the written farm's new backend is listed");

  const web = store.listFarms().find((f) => f.name === 'web')!;
  const backend = store.listBackends(web.id)[0]!;
  runtimes.set(web.id, {
    generation: web.generation,
    state: 'applied',
    appliedGeneration: web.generation,
    error: null,
    interface: null,
    backends: new Map([[backend.uid, { usable: false, reason: 'health check failed' }]]),
  });
  const third = cache.current();
  t.not(third.version, second.version, 'a replaced runtime changes the version');
  t.equal(third.farms[1]!.backends[0]!.up, false, 'and the backend it declares down is listed down');
  t.same(third.farms, fresh());

  await createFarm(app, 'aaa', '82');
  t.same(cache.current().farms.map((f) => f.name), ['aaa', 'api', 'web'], 'a new farm takes its place by name');
  t.equal((await call(app, 'DELETE', '/farms/api')).status, 200);
  t.same(cache.current().farms.map((f) => f.name), ['aaa', 'web'], 'a deleted farm leaves the list');

  // A write around the change feed: the generation moves without an announcement.
  store.db.prepare("UPDATE farms SET vport = '8080' WHERE name = 'web'").run();
  store.db.prepare('UPDATE store_generation SET value = value + 1 WHERE id = 1').run();
  const after = cache.current();
  t.equal(after.farms.find((f) => f.name === 'web')!.vport, '8080', 'an unannounced generation reloads the whole list');
  t.same(after.farms, fresh());
});

t.test('GET /stats/farms: the body is the JSON the response schema gives, keys in its order', async (t) => {
  const { app } = await buildTestApp(t);
  await createFarm(app, 'web', '80');
  await createFarm(app, 'Z-1', '81');
  const res = await app.inject({ method: 'GET', url: '/zapi/v4.0/zapi.cgi/stats/farms', headers: { zapi_key: 'test-key-123456' } });
  t.equal(res.statusCode, 200);
  t.match(res.headers['content-type'], /^application\/json/);
  const body = JSON.parse(res.body);
  t.equal(res.body, JSON.stringify(body), 'plain JSON, nothing more');
  t.same(Object.keys(body), ['description', 'farms']);
  t.same(Object.keys(body.farms[0]), Object.keys(farmStatsSchema.properties), 'the schema order');
  t.same(body.farms.map((f: { farmname: string }) => f.farmname), ['Z-1', 'web']);
});
