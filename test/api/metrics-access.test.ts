// Issue 11, finding 6: /metrics needs the key whenever the API listens beyond loopback (the
// config test covers the 'auto' default), and scrapes are limited: one runs at a time, those
// that arrive meanwhile share its answer, and beyond 8 waiting the next ones get 503.
import t from 'tap';
import type { CounterReader } from '../../src/observe/farm-counters.js';
import { noCounters } from '../../src/observe/farm-counters.js';
import { API_KEY, buildTestApp, createFarm } from '../helpers/api.js';
import { isUnauthorizedBody, isZapiErrorEnvelope } from '../helpers/raw-http.js';

/** A counter reader whose reads take `ms` and are counted. */
function slowCounters(ms: number): CounterReader & { reads: number } {
  const reader = {
    reads: 0,
    read: noCounters.read,
    readMany: noCounters.readMany,
    connections: noCounters.connections,
    close: () => {},
    // A scrape reads the farm series once, through the observer.
    async metricsText(...args: Parameters<CounterReader['metricsText']>) {
      reader.reads++;
      await new Promise((r) => setTimeout(r, ms));
      return noCounters.metricsText(...args);
    },
  };
  return reader;
}

t.test('metricsAccess key: the ZAPI key, or the 401 body', async (t) => {
  const { app } = await buildTestApp(t, { app: { metricsAccess: 'key' } });
  const anonymous = await app.inject({ method: 'GET', url: '/metrics' });
  t.equal(anonymous.statusCode, 401);
  t.ok(isUnauthorizedBody(anonymous.json()));
  const keyed = await app.inject({ method: 'GET', url: '/metrics', headers: { ZAPI_KEY: API_KEY } });
  t.equal(keyed.statusCode, 200);
  t.match(keyed.body, /nftfarm_desired_generation/);
});

t.test('concurrent scrapes: one runs, the others share its answer, the ninth waiting one gets 503', async (t) => {
  const counters = slowCounters(400);
  const { app } = await buildTestApp(t, { app: { counters, metricsAccess: 'open' } });
  await createFarm(app, 'f1');
  const scrape = () => app.inject({ method: 'GET', url: '/metrics' });

  const three = await Promise.all([scrape(), scrape(), scrape()]);
  t.same(three.map((r) => r.statusCode), [200, 200, 200]);
  t.equal(counters.reads, 1, 'three concurrent scrapes read the counters once');
  t.equal(three[1]?.body, three[0]?.body, 'and got the same answer');

  const burst = await Promise.all(Array.from({ length: 12 }, scrape));
  const statuses = burst.map((r) => r.statusCode);
  t.equal(statuses.filter((s) => s === 200).length, 9, `one scrape and 8 waiting get 200: ${statuses}`);
  t.equal(statuses.filter((s) => s === 503).length, 3, 'the rest 503');
  for (const r of burst.filter((r) => r.statusCode === 503)) {
    t.ok(isZapiErrorEnvelope(r.json()), 'in the envelope');
    t.match(r.json().message, /Another scrape/);
  }
  t.equal(counters.reads, 2, 'one more read for the burst');
  t.equal((await scrape()).statusCode, 200, 'and afterwards scrapes run again');
});
