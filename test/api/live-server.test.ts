// The important flows through a real listening server and fetch: real HTTP parsing, headers
// with underscores, content types and status codes on the wire.
import t from 'tap';
import { API_KEY, listenTestApp } from '../helpers/api.js';

async function request(url: string, method: string, body?: unknown, headers: Record<string, string> = { ZAPI_KEY: API_KEY }) {
  const res = await fetch(url, {
    method,
    headers: { ...headers, ...(body === undefined ? {} : { 'Content-Type': 'application/json' }) },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  const text = await res.text();
  return { status: res.status, contentType: res.headers.get('content-type'), text, body: text ? JSON.parse(text) : undefined };
}

t.test('create a farm, add two backends, list, modify, stop and delete over HTTP', async (t) => {
  const { url, store } = await listenTestApp(t);

  const create = await request(`${url}/farms`, 'POST', { farmname: 'live', profile: 'l4xnat', vip: '10.250.0.10', vport: '80' });
  t.equal(create.status, 201);
  t.match(create.contentType, /^application\/json/);
  t.strictSame(create.body, {
    description: 'Creating a farm',
    params: { farmname: 'live', profile: 'l4xnat', vip: '10.250.0.10', vport: '80', interface: 'eth0' },
    message: 'The farm live has been created successfully.',
  });

  const b0 = await request(`${url}/farms/live/backends`, 'POST', { ip: '10.250.0.20', port: '80', weight: '2' });
  t.equal(b0.status, 201);
  t.strictSame(b0.body.params, { id: 0, ip: '10.250.0.20', port: 80, weight: 2, priority: 1, max_conns: 0, status: 'up' });
  const b1 = await request(`${url}/farms/live/backends`, 'POST', { ip: '10.250.0.21' });
  t.equal(b1.status, 201);
  t.equal(b1.body.params.id, 1);

  const list = await request(`${url}/farms/live/backends`, 'GET');
  t.equal(list.status, 200);
  t.strictSame(
    list.body.params.map((b: { id: number; ip: string }) => [b.id, b.ip]),
    [
      [0, '10.250.0.20'],
      [1, '10.250.0.21'],
    ],
  );
  const farms = await request(`${url}/farms`, 'GET');
  t.strictSame(farms.body, { description: 'List farms', params: [{ farmname: 'live', profile: 'l4xnat', status: 'up', vip: '10.250.0.10', vport: '80' }] });

  const modify = await request(`${url}/farms/live`, 'PUT', { algorithm: 'roundrobin', persistence: 'ip', ttl: '90' });
  t.equal(modify.status, 200);
  t.equal(modify.body.message, 'Some parameters have been changed in farm live.');
  const shown = await request(`${url}/farms/live`, 'GET');
  t.match(shown.body.params, { algorithm: 'roundrobin', persistence: 'ip', ttl: 90, status: 'up' });
  t.equal(shown.body.backends.length, 2);

  const backend = await request(`${url}/farms/live/backends/1`, 'PUT', { weight: 5 });
  t.equal(backend.status, 200);
  t.equal(backend.body.message, 'Backend modified.');

  const stop = await request(`${url}/farms/live/actions`, 'PUT', { action: 'stop' });
  t.equal(stop.status, 200);
  t.strictSame(stop.body.params, { action: 'stop', status: 'down' });
  t.equal((await request(`${url}/farms/live/status`, 'GET')).body.params.status, 'down');

  const del = await request(`${url}/farms/live`, 'DELETE');
  t.equal(del.status, 200);
  t.strictSame(del.body, { description: 'Delete farm live', message: 'The Farm live has been deleted.', success: 'true' });
  t.equal((await request(`${url}/farms/live`, 'GET')).status, 404);
  t.strictSame(store.listFarms(), []);
});

t.test('errors on the wire: keys, bad JSON, content types, unknown routes', async (t) => {
  const { url, app } = await listenTestApp(t);
  const noKey = await request(`${url}/farms`, 'GET', undefined, {});
  t.equal(noKey.status, 401);
  t.equal(noKey.text, '{"message":"Authorization required"}');
  t.equal((await request(`${url}/farms`, 'GET', undefined, { ZAPI_KEY: 'not-the-key' })).status, 401);
  t.equal((await request(`${url}/farms`, 'GET', undefined, { API_KEY: API_KEY })).status, 200, 'API_KEY header');

  const badJson = await fetch(`${url}/farms`, { method: 'POST', headers: { ZAPI_KEY: API_KEY, 'Content-Type': 'application/json' }, body: '{"farmname":' });
  t.equal(badJson.status, 400);
  t.strictSame(await badJson.json(), { description: 'Creating a farm', error: 'true', message: 'The body does not look a valid JSON' });

  const farm = JSON.stringify({ farmname: 'f1', profile: 'l4xnat', vip: '10.250.0.10', vport: '80' });
  const form = await fetch(`${url}/farms`, { method: 'POST', headers: { ZAPI_KEY: API_KEY, 'Content-Type': 'application/x-www-form-urlencoded' }, body: farm });
  t.equal(form.status, 415);
  t.equal((await form.json()).message, 'Content-Type not supported');
  const charset = await fetch(`${url}/farms`, { method: 'POST', headers: { ZAPI_KEY: API_KEY, 'Content-Type': 'application/json; charset=utf-8' }, body: farm });
  t.equal(charset.status, 201);

  const empty = await fetch(`${url}/farms/f1/actions`, { method: 'PUT', headers: { ZAPI_KEY: API_KEY, 'Content-Type': 'application/json' } });
  t.equal(empty.status, 400);
  t.equal((await empty.json()).message, 'No parameter has been sent. Please, try with:');

  const unknown = await request(`${url}/farms/a_b`, 'GET');
  t.equal(unknown.status, 404);
  t.strictSame(unknown.body, { description: 'Request not found', error: 'true', message: 'Request not found' });

  const health = await fetch(`${app.listeningOrigin}/healthz`);
  t.equal(health.status, 200);
});
