// Transport-level behaviour of every ZAPI route: the API key, unknown routes, body parsing and
// the generic parameter checks (help, required, unknown, blank, type, enum, integer, name).
import { nattypeParam } from '../../src/api/farm-params.js';
import t from 'tap';
import { API_KEY, ZAPI, addBackend, buildTestApp, call, createFarm, zapiError } from '../helpers/api.js';

type Method = 'GET' | 'POST' | 'PUT' | 'DELETE';

/** Every ZAPI route, with a path that exists once the fixture below is set up. */
const ROUTES: [Method, string][] = [
  ['GET', '/farms'],
  ['POST', '/farms'],
  ['GET', '/farms/f1'],
  ['PUT', '/farms/f1'],
  ['DELETE', '/farms/f1'],
  ['GET', '/farms/f1/status'],
  ['PUT', '/farms/f1/actions'],
  ['GET', '/farms/f1/backends'],
  ['POST', '/farms/f1/backends'],
  ['PUT', '/farms/f1/backends/0'],
  ['DELETE', '/farms/f1/backends/0'],
  ['PUT', '/farms/f1/backends/0/maintenance'],
  ['GET', '/monitoring/fg'],
  ['POST', '/monitoring/fg'],
  ['GET', '/monitoring/fg/check_tcp'],
  ['PUT', '/monitoring/fg/check_tcp'],
  ['DELETE', '/monitoring/fg/check_tcp'],
  ['POST', '/farms/f1/fg'],
  ['DELETE', '/farms/f1/fg/check_tcp'],
  ['GET', '/stats/farms'],
  ['GET', '/stats/farms/f1'],
  ['GET', '/stats/farms/f1/backends'],
  ['GET', '/farms/f1/backend-setup?os=linux'],
  ['GET', '/system/status'],
  ['GET', '/system/audit'],
];

const UNAUTHORIZED = { message: 'Authorization required' };
const UNICAST =
  "A unicast IPv4 or IPv6 address, of the same family as the farm's other addresses. IPv4: not in 0.0.0.0/8, 127.0.0.0/8, 224.0.0.0/4 or 240.0.0.0/4, " +
  'not 255.255.255.255, nor the network or broadcast address of a connected network. IPv6: not ::, ::1, multicast (ff00::/8), ' +
  'link-local (fe80::/10) or IPv4-mapped (::ffff:0:0/96); stored and answered in the canonical form (RFC 5952).';

t.test('every route refuses a missing or wrong key with exactly {"message":"Authorization required"}', async (t) => {
  const { app, store } = await buildTestApp(t);
  await createFarm(app, 'f1');
  await addBackend(app, 'f1', { ip: '10.250.0.20' });
  const generation = store.generation();
  for (const [method, url] of ROUTES) {
    const payload = method === 'POST' || method === 'PUT' ? { action: 'stop' } : undefined;
    for (const headers of [{}, { ZAPI_KEY: 'wrong-key-000000' }, { API_KEY: 'wrong' }, { ZAPI_KEY: '' }]) {
      const res = await app.inject({ method, url: `${ZAPI}${url}`, headers, ...(payload ? { payload } : {}) });
      t.equal(res.statusCode, 401, `${method} ${url} ${JSON.stringify(headers)}`);
      t.strictSame(res.json(), UNAUTHORIZED);
    }
  }
  t.equal(store.generation(), generation, 'no refused call wrote anything');
  t.equal(store.listFarms().length, 1);
});

t.test('the key is checked before routing: an unknown route without a key is 401', async (t) => {
  const { app } = await buildTestApp(t);
  const res = await app.inject({ method: 'GET', url: `${ZAPI}/no/such/route` });
  t.equal(res.statusCode, 401);
  t.strictSame(res.json(), UNAUTHORIZED);
});

t.test('both the ZAPI_KEY and the API_KEY headers are accepted', async (t) => {
  const { app } = await buildTestApp(t);
  for (const header of ['ZAPI_KEY', 'API_KEY', 'zapi_key', 'api_key']) {
    const res = await app.inject({ method: 'GET', url: `${ZAPI}/farms`, headers: { [header]: API_KEY } });
    t.equal(res.statusCode, 200, header);
    t.strictSame(res.json(), { description: 'List farms', params: [] });
  }
  const post = await app.inject({
    method: 'POST',
    url: `${ZAPI}/farms`,
    headers: { API_KEY: API_KEY },
    payload: { farmname: 'viaapikey', profile: 'l4xnat', vip: '10.250.0.10', vport: '80' },
  });
  t.equal(post.statusCode, 201);
});

t.test('/healthz, /openapi.json and /docs work without a key', async (t) => {
  const { app } = await buildTestApp(t);
  const health = await app.inject({ method: 'GET', url: '/healthz' });
  t.equal(health.statusCode, 200);
  t.strictSame(health.json(), { status: 'ok' });
  const openapi = await app.inject({ method: 'GET', url: '/openapi.json' });
  t.equal(openapi.statusCode, 200);
  const doc = openapi.json();
  t.equal(doc.openapi, '3.0.3');
  t.ok(doc.paths[`${ZAPI}/farms`].post, 'documents POST /farms');
  t.ok(doc.paths[`${ZAPI}/farms/{farmname}/backends/{id}/maintenance`].put, 'documents the maintenance call');
  t.strictSame(doc.components.securitySchemes.ZapiKey, { type: 'apiKey', in: 'header', name: 'ZAPI_KEY' });
  const docs = await app.inject({ method: 'GET', url: '/docs' });
  t.equal(docs.statusCode, 200);
  t.match(docs.headers['content-type'], /text\/html/);
  t.match(docs.body, /swagger-ui/i);
});

t.test('unknown routes and invalid path names are 404 Request not found', async (t) => {
  const { app } = await buildTestApp(t);
  await createFarm(app, 'f1');
  await addBackend(app, 'f1', { ip: '10.250.0.20' });
  const notFound = { description: 'Request not found', error: 'true', message: 'Request not found' };
  const cases: [Method, string, unknown?][] = [
    ['GET', '/nothing'],
    ['GET', '/farms/f1/nothing'],
    ['PATCH' as Method, '/farms/f1'],
    ['POST', '/farms/f1', { vport: '81' }],
    ['GET', '/farms/a_b'],
    ['GET', '/farms/a.b/status'],
    ['PUT', '/farms/a_b', { vport: '81' }],
    ['DELETE', '/farms/a_b'],
    ['GET', '/farms/a_b/backends'],
    ['PUT', '/farms/f1/backends/abc', { weight: 2 }],
    ['PUT', '/farms/f1/backends/-1', { weight: 2 }],
    ['DELETE', '/farms/f1/backends/1x'],
    ['PUT', '/farms/f1/backends/x/maintenance', { action: 'up' }],
    ['GET', '/monitoring/fg/a.b'],
    ['DELETE', '/farms/f1/fg/a.b'],
    ['GET', '/stats/farms/a_b'],
    ['GET', '/farms/a_b/backend-setup'],
  ];
  for (const [method, url, body] of cases) {
    const res = await call(app, method, url, body);
    t.equal(res.status, 404, `${method} ${url}`);
    t.strictSame(res.body, notFound, `${method} ${url}`);
  }
  const outside = await app.inject({ method: 'GET', url: '/nothing' });
  t.equal(outside.statusCode, 404);
  t.strictSame(outside.json(), notFound);
  t.strictSame((await call(app, 'GET', '/nothing')).body, notFound);
});

t.test('bad JSON, wrong content types and the charset variant', async (t) => {
  const { app, store } = await buildTestApp(t);
  const send = (contentType: string | undefined, payload: string, url = '/farms', method: Method = 'POST') =>
    app.inject({
      method,
      url: `${ZAPI}${url}`,
      headers: { ZAPI_KEY: API_KEY, ...(contentType ? { 'content-type': contentType } : {}) },
      payload,
    });
  const farm = JSON.stringify({ farmname: 'f1', profile: 'l4xnat', vip: '10.250.0.10', vport: '80' });

  for (const bad of ['{"farmname":', '{farmname: "f1"}', "{'a':1}", 'not json']) {
    const res = await send('application/json', bad);
    t.equal(res.statusCode, 400, bad);
    t.strictSame(res.json(), zapiError('Creating a farm', 'The body does not look a valid JSON'));
  }
  for (const type of ['application/xml', 'application/x-www-form-urlencoded', 'text/plain', 'text/plain; charset=utf-8']) {
    const res = await send(type, farm);
    t.equal(res.statusCode, 415, type);
    t.strictSame(res.json(), zapiError('Creating a farm', 'Content-Type not supported'));
  }
  const noType = await send(undefined, farm);
  t.equal(noType.statusCode, 415, 'a body without a content type');
  t.equal(noType.json().message, 'Content-Type not supported');
  t.equal(store.listFarms().length, 0, 'nothing was created');

  const charset = await send('application/json; charset=utf-8', farm);
  t.equal(charset.statusCode, 201, 'application/json; charset=utf-8 is accepted');
  t.equal(store.getFarm('f1')?.vport, '80');

  const put = await send('text/plain', JSON.stringify({ vport: '81' }), '/farms/f1', 'PUT');
  t.equal(put.statusCode, 415);
  t.equal(store.getFarm('f1')?.vport, '80');
});

/** The body routes, the description of their answers and the parameters they list in help. */
const BODY_ROUTES: { method: Method; url: string; description: string; params: unknown[] }[] = [
  {
    method: 'POST',
    url: '/farms',
    description: 'Creating a farm',
    params: [
      { name: 'farmname', description: 'The farm name accepts alphabet letters, numbers or hypens (-), at most 64 characters.', options: ['non_blank', 'required'] },
      { name: 'profile', options: ['non_blank', 'required'], possible_values: ['l4xnat'] },
      { name: 'vip', description: UNICAST, options: ['non_blank', 'required'] },
      {
        name: 'vport',
        description: "A port, a comma list of ports and 'low:high' ranges, or '*' (every port, protocol 'all').",
        options: ['non_blank', 'required'],
      },
      { name: 'copy_from', description: 'The farm name accepts alphabet letters, numbers or hypens (-), at most 64 characters.', options: ['non_blank'] },
    ],
  },
  {
    method: 'PUT',
    url: '/farms/f1',
    description: "Modify L4xNAT farm 'f1'",
    params: [
      { name: 'newfarmname', description: 'The farm name accepts alphabet letters, numbers or hypens (-), at most 64 characters.', options: ['non_blank'] },
      { name: 'vip', description: UNICAST, options: ['non_blank'] },
      { name: 'vport', description: "A port, a comma list of ports and 'low:high' ranges, or '*' (every port, protocol 'all').", options: ['non_blank'] },
      { name: 'protocol', options: ['non_blank'], possible_values: ['tcp', 'udp', 'sctp', 'all'] },
      { name: 'nattype', description: nattypeParam.description, options: ['non_blank'], possible_values: ['nat', 'dnat', 'dsr', 'stateless_dnat', 'snat'] },
      {
        name: 'algorithm',
        options: ['non_blank'],
        possible_values: ['weight', 'roundrobin', 'hash_srcip', 'hash_srcip_srcport', 'symhash', 'leastconn'],
      },
      { name: 'persistence', possible_values: ['', 'srcip', 'srcport', 'srcmac', 'srcip_srcport', 'srcip_dstport', 'none', 'ip'] },
      { name: 'ttl', interval: "Expects a value between '1' and '2592000'.", options: ['non_blank'] },
    ],
  },
  {
    method: 'PUT',
    url: '/farms/f1/actions',
    description: 'Set a new action in f1',
    params: [{ name: 'action', options: ['non_blank', 'required'], possible_values: ['stop', 'start', 'restart'] }],
  },
  {
    method: 'POST',
    url: '/farms/f1/backends',
    description: 'New farm backend',
    params: [
      { name: 'ip', description: UNICAST, options: ['non_blank', 'required'] },
      { name: 'port', description: "A port 1-65535, or empty for the client's destination port." },
      { name: 'weight', interval: "Expects a value between '1' and '9'.", options: ['non_blank'] },
      { name: 'priority', interval: "Expects a value between '1' and '9'.", options: ['non_blank'] },
      { name: 'max_conns', interval: "Expects a value between '0' and '2147483647'.", options: ['non_blank'] },
    ],
  },
  {
    method: 'PUT',
    url: '/farms/f1/backends/0',
    description: 'Modify backend',
    params: [
      { name: 'ip', description: UNICAST, options: ['non_blank'] },
      { name: 'port', description: "A port 1-65535, or empty for the client's destination port." },
      { name: 'weight', interval: "Expects a value between '1' and '9'.", options: ['non_blank'] },
      { name: 'priority', interval: "Expects a value between '1' and '9'.", options: ['non_blank'] },
      { name: 'max_conns', interval: "Expects a value between '0' and '2147483647'.", options: ['non_blank'] },
    ],
  },
  {
    method: 'PUT',
    url: '/farms/f1/backends/0/maintenance',
    description: 'Set backend status',
    params: [
      { name: 'action', options: ['non_blank', 'required'], possible_values: ['up', 'maintenance'] },
      { name: 'mode', options: ['non_blank'], possible_values: ['drain', 'cut'] },
    ],
  },
  {
    method: 'POST',
    url: '/monitoring/fg',
    description: "Create a farm guardian ''",
    params: [
      { name: 'name', description: 'Letters, numbers, _ and -, at most 64 characters.', options: ['non_blank', 'required'] },
      { name: 'copy_from', description: 'Letters, numbers, _ and -, at most 64 characters.', options: ['non_blank'] },
      { name: 'description', description: 'What the check does, at most 256 characters.', options: ['non_blank'] },
      {
        name: 'command',
        description:
          'The check command, one of check_tcp, check_http, check_udp, check_ping with their options; HOST and PORT are replaced for each backend. Checks run inside nftfarm: no shell command is ever run. At most 512 characters.',
        options: ['non_blank'],
      },
      { name: 'interval', interval: "Expects a value between '1' and '86400'.", options: ['non_blank'] },
      { name: 'timeout', interval: "Expects a value between '1' and '86400'.", options: ['non_blank'] },
      { name: 'fall', interval: "Expects a value between '1' and '100'.", options: ['non_blank'] },
      { name: 'rise', interval: "Expects a value between '1' and '100'.", options: ['non_blank'] },
      { name: 'cut_conns', options: ['non_blank'], possible_values: ['true', 'false'] },
      { name: 'log', options: ['non_blank'], possible_values: ['true', 'false'] },
      { name: 'backend_alias', options: ['non_blank'], possible_values: ['true', 'false'] },
    ],
  },
  {
    method: 'PUT',
    url: '/monitoring/fg/check_tcp',
    description: "Modify farm guardian 'check_tcp'",
    params: [
      { name: 'description', description: 'What the check does, at most 256 characters.', options: ['non_blank'] },
      {
        name: 'command',
        description:
          'The check command, one of check_tcp, check_http, check_udp, check_ping with their options; HOST and PORT are replaced for each backend. Checks run inside nftfarm: no shell command is ever run. At most 512 characters.',
        options: ['non_blank'],
      },
      { name: 'interval', interval: "Expects a value between '1' and '86400'.", options: ['non_blank'] },
      { name: 'timeout', interval: "Expects a value between '1' and '86400'.", options: ['non_blank'] },
      { name: 'fall', interval: "Expects a value between '1' and '100'.", options: ['non_blank'] },
      { name: 'rise', interval: "Expects a value between '1' and '100'.", options: ['non_blank'] },
      { name: 'cut_conns', options: ['non_blank'], possible_values: ['true', 'false'] },
      { name: 'log', options: ['non_blank'], possible_values: ['true', 'false'] },
      { name: 'backend_alias', options: ['non_blank'], possible_values: ['true', 'false'] },
      { name: 'force', options: ['non_blank'], possible_values: ['true', 'false'] },
    ],
  },
  {
    method: 'POST',
    url: '/farms/f1/fg',
    description: "Add the farm guardian '' to the 'farm 'f1''",
    params: [{ name: 'name', description: 'Letters, numbers, _ and -, at most 64 characters.', options: ['non_blank', 'required'] }],
  },
];

t.test('an empty body, {} and non-object JSON get the help answer on every body route', async (t) => {
  const { app, store } = await buildTestApp(t);
  await createFarm(app, 'f1');
  await addBackend(app, 'f1', { ip: '10.250.0.20' });
  const generation = store.generation();
  for (const route of BODY_ROUTES) {
    const expected = { ...zapiError(route.description, 'No parameter has been sent. Please, try with:'), params: route.params };
    const bodies: [string, string | undefined, string][] = [
      ['empty JSON body', 'application/json', ''],
      ['no body, no content type', undefined, ''],
      ['{}', 'application/json', '{}'],
      ['[]', 'application/json', '[]'],
      ['null', 'application/json', 'null'],
    ];
    for (const [label, contentType, payload] of bodies) {
      const res = await app.inject({
        method: route.method,
        url: `${ZAPI}${route.url}`,
        headers: { ZAPI_KEY: API_KEY, ...(contentType ? { 'content-type': contentType } : {}) },
        payload,
      });
      t.equal(res.statusCode, 400, `${route.method} ${route.url}: ${label}`);
      t.strictSame(res.json(), expected, `${route.method} ${route.url}: ${label}`);
    }
  }
  t.equal(store.generation(), generation, 'nothing was written');
});

t.test('a missing farm, backend or check wins over an empty body (the check order)', async (t) => {
  const { app } = await buildTestApp(t);
  await createFarm(app, 'f1');
  const cases: [Method, string, number, string][] = [
    ['PUT', '/farms/nope', 404, 'The farmname nope does not exist.'],
    ['PUT', '/farms/nope/actions', 404, 'The farmname nope does not exist.'],
    ['POST', '/farms/nope/backends', 404, 'The farmname nope does not exist.'],
    ['PUT', '/farms/f1/backends/7', 404, 'Could not find a backend with such id.'],
    ['PUT', '/farms/f1/backends/7/maintenance', 404, 'Could not find a backend with such id.'],
    ['PUT', '/monitoring/fg/nope', 404, "The farm guardian 'nope' does not exist."],
    ['POST', '/farms/nope/fg', 404, "The farm 'nope' does not exist"],
    ['PUT', '/farms/a_b', 404, 'Request not found'],
    ['PUT', '/farms/f1/backends/x', 404, 'Request not found'],
  ];
  for (const [method, url, status, message] of cases) {
    for (const [contentType, payload] of [['application/json', ''], [undefined, ''], ['application/json', '{}']] as const) {
      const res = await app.inject({
        method,
        url: `${ZAPI}${url}`,
        headers: { ZAPI_KEY: API_KEY, ...(contentType ? { 'content-type': contentType } : {}) },
        payload,
      });
      t.equal(res.statusCode, status, `${method} ${url} ${JSON.stringify(payload)}`);
      t.equal(res.json().message, message, `${method} ${url} ${JSON.stringify(payload)}`);
    }
  }
  const taken = await call(app, 'POST', '/farms', { farmname: 'f1', foo: 1 });
  t.equal(taken.status, 400, 'a taken farm name is reported before the parameters');
  t.equal(taken.body.message, 'Error trying to create a new farm, the farm name already exists.');
});

t.test('missing required parameters: singular and plural wording', async (t) => {
  const { app } = await buildTestApp(t);
  await createFarm(app, 'f1');
  await addBackend(app, 'f1', { ip: '10.250.0.20' });
  const cases: [Method, string, unknown, string, string][] = [
    ['POST', '/farms', { farmname: 'f2' }, 'Creating a farm', "The required parameters 'profile', 'vip' and 'vport' are missing."],
    ['POST', '/farms', { farmname: 'f2', profile: 'l4xnat', vip: '10.250.0.10' }, 'Creating a farm', "The required parameter 'vport' is missing."],
    ['POST', '/farms', { copy_from: 'f1', vip: '10.250.0.10' }, 'Creating a farm', "The required parameters 'farmname', 'profile' and 'vport' are missing."],
    ['POST', '/farms', { vip: '10.250.0.10', vport: '80' }, 'Creating a farm', "The required parameters 'farmname' and 'profile' are missing."],
    ['POST', '/farms/f1/backends', { port: 80 }, 'New farm backend', "The required parameter 'ip' is missing."],
    ['PUT', '/farms/f1/actions', { foo: 'start' }, 'Set a new action in f1', "The required parameter 'action' is missing."],
    ['PUT', '/farms/f1/backends/0/maintenance', { mode: 'cut' }, 'Set backend status', "The required parameter 'action' is missing."],
    ['POST', '/monitoring/fg', { command: 'x' }, "Create a farm guardian ''", "The required parameter 'name' is missing."],
    ['POST', '/farms/f1/fg', { check: 'check_tcp' }, "Add the farm guardian '' to the 'farm 'f1''", "The required parameter 'name' is missing."],
  ];
  for (const [method, url, body, description, message] of cases) {
    const res = await call(app, method, url, body);
    t.equal(res.status, 400, `${method} ${url} ${JSON.stringify(body)}`);
    t.strictSame(res.body, zapiError(description, message));
  }
});

t.test('unknown parameters: singular and plural wording, after the required check', async (t) => {
  const { app } = await buildTestApp(t);
  await createFarm(app, 'f1');
  await addBackend(app, 'f1', { ip: '10.250.0.20' });
  const farmAccepted = "'farmname', 'profile', 'vip', 'vport', 'copy_from'";
  const modifyAccepted = "'newfarmname', 'vip', 'vport', 'protocol', 'nattype', 'algorithm', 'persistence', 'ttl'";
  const backendAccepted = "'ip', 'port', 'weight', 'priority', 'max_conns'";
  const create = { farmname: 'f2', profile: 'l4xnat', vip: '10.250.0.11', vport: '80' };
  const cases: [Method, string, unknown, string][] = [
    ['POST', '/farms', { ...create, foo: 1 }, `The parameter 'foo' is not correct for this call. Please, try with: ${farmAccepted}`],
    ['POST', '/farms', { ...create, foo: 1, bar: 2 }, `The parameters 'foo' and 'bar' are not correct for this call. Please, try with: ${farmAccepted}`],
    ['POST', '/farms', { ...create, a: 1, b: 2, c: 3 }, `The parameters 'a', 'b' and 'c' are not correct for this call. Please, try with: ${farmAccepted}`],
    ['PUT', '/farms/f1', { logs: 'true' }, `The parameter 'logs' is not correct for this call. Please, try with: ${modifyAccepted}`],
    ['PUT', '/farms/f1', { vport: '81', farmname: 'x' }, `The parameter 'farmname' is not correct for this call. Please, try with: ${modifyAccepted}`],
    ['POST', '/farms/f1/backends', { ip: '10.250.0.21', interface: 'eth0' }, `The parameter 'interface' is not correct for this call. Please, try with: ${backendAccepted}`],
    ['PUT', '/farms/f1/backends/0', { weight: 2, status: 'up' }, `The parameter 'status' is not correct for this call. Please, try with: ${backendAccepted}`],
    ['PUT', '/farms/f1/actions', { action: 'start', force: 'true' }, "The parameter 'force' is not correct for this call. Please, try with: 'action'"],
    ['PUT', '/farms/f1/backends/0/maintenance', { action: 'up', mode: 'cut' }, "The parameter 'mode' is not correct for this call. Please, try with: 'action'"],
    ['PUT', '/farms/f1/backends/0/maintenance', { action: 'maintenance', how: 'cut' }, "The parameter 'how' is not correct for this call. Please, try with: 'action', 'mode'"],
    ['POST', '/farms/f1/fg', { name: 'check_tcp', force: 'true' }, "The parameter 'force' is not correct for this call. Please, try with: 'name'"],
    [
      'PUT',
      '/monitoring/fg/check_tcp',
      { name: 'x' },
      "The parameter 'name' is not correct for this call. Please, try with: 'description', 'command', 'interval', 'timeout', 'fall', 'rise', 'cut_conns', 'log', 'backend_alias', 'force'",
    ],
  ];
  for (const [method, url, body, message] of cases) {
    const res = await call(app, method, url, body);
    t.equal(res.status, 400, `${method} ${url} ${JSON.stringify(body)}`);
    t.equal(res.body.message, message);
    t.equal(res.body.error, 'true');
  }
  const both = await call(app, 'POST', '/farms', { farmname: 'f2', foo: 1 });
  t.equal(both.body.message, "The required parameters 'profile', 'vip' and 'vport' are missing.", 'required wins over unknown');
});

t.test('blank values, arrays and objects', async (t) => {
  const { app } = await buildTestApp(t);
  await createFarm(app, 'f1');
  await addBackend(app, 'f1', { ip: '10.250.0.20' });
  const cases: [Method, string, unknown, string][] = [
    ['POST', '/farms', { farmname: '', profile: 'l4xnat', vip: '10.250.0.11', vport: '80' }, "The parameter 'farmname' can't be in blank."],
    ['POST', '/farms', { farmname: 'f2', profile: 'l4xnat', vip: null, vport: '80' }, "The parameter 'vip' can't be in blank."],
    ['POST', '/farms', { farmname: 'f2', profile: 'l4xnat', vip: '10.250.0.11', vport: [] }, "The parameter 'vport' can't be in blank."],
    ['PUT', '/farms/f1', { vport: '' }, "The parameter 'vport' can't be in blank."],
    ['PUT', '/farms/f1', { ttl: '' }, "The parameter 'ttl' can't be in blank."],
    ['POST', '/farms/f1/backends', { ip: '' }, "The parameter 'ip' can't be in blank."],
    ['PUT', '/farms/f1/backends/0', { weight: null }, "The parameter 'weight' can't be in blank."],
    ['PUT', '/farms/f1/actions', { action: '' }, "The parameter 'action' can't be in blank."],
    ['POST', '/farms/f1/fg', { name: '' }, "The parameter 'name' can't be in blank."],
    ['PUT', '/monitoring/fg/check_tcp', { interval: '' }, "The parameter 'interval' can't be in blank."],
    ['POST', '/farms', { farmname: ['f2'], profile: 'l4xnat', vip: '10.250.0.11', vport: '80' }, "The parameter 'farmname' does not expect a ARRAY as input"],
    ['POST', '/farms', { farmname: 'f2', profile: 'l4xnat', vip: '10.250.0.11', vport: { port: 80 } }, "The parameter 'vport' does not expect a HASH as input"],
    ['POST', '/farms/f1/backends', { ip: ['10.250.0.21', '10.250.0.22'] }, "The parameter 'ip' does not expect a ARRAY as input"],
    ['PUT', '/farms/f1/backends/0', { weight: { value: 2 } }, "The parameter 'weight' does not expect a HASH as input"],
    ['PUT', '/farms/f1/actions', { action: ['start'] }, "The parameter 'action' does not expect a ARRAY as input"],
  ];
  for (const [method, url, body, message] of cases) {
    const res = await call(app, method, url, body);
    t.equal(res.status, 400, `${method} ${url} ${JSON.stringify(body)}`);
    t.equal(res.body.message, message);
  }
});

t.test('bad enum values, integers, names and IPs', async (t) => {
  const { app } = await buildTestApp(t);
  await createFarm(app, 'f1');
  await addBackend(app, 'f1', { ip: '10.250.0.20' });
  const cases: [Method, string, unknown, string][] = [
    ['POST', '/farms', { farmname: 'f2', profile: 'http', vip: '10.250.0.11', vport: '80' }, "The parameter 'profile' expects one of the following values: 'l4xnat'"],
    ['PUT', '/farms/f1', { protocol: 'icmp' }, "The parameter 'protocol' expects one of the following values: 'tcp', 'udp', 'sctp', 'all'"],
    ['PUT', '/farms/f1', { nattype: 'masquerade' }, "The parameter 'nattype' expects one of the following values: 'nat', 'dnat', 'dsr', 'stateless_dnat', 'snat'"],
    [
      'PUT',
      '/farms/f1',
      { algorithm: 'random' },
      "The parameter 'algorithm' expects one of the following values: 'weight', 'roundrobin', 'hash_srcip', 'hash_srcip_srcport', 'symhash', 'leastconn'",
    ],
    [
      'PUT',
      '/farms/f1',
      { persistence: 'cookie' },
      "The parameter 'persistence' expects one of the following values: '', 'srcip', 'srcport', 'srcmac', 'srcip_srcport', 'srcip_dstport', 'none', 'ip'",
    ],
    ['PUT', '/farms/f1', { protocol: 'TCP' }, "The parameter 'protocol' expects one of the following values: 'tcp', 'udp', 'sctp', 'all'"],
    ['PUT', '/farms/f1/actions', { action: 'reload' }, "The parameter 'action' expects one of the following values: 'stop', 'start', 'restart'"],
    ['PUT', '/farms/f1/backends/0/maintenance', { action: 'down' }, "The parameter 'action' expects one of the following values: 'up', 'maintenance'"],
    ['PUT', '/farms/f1/backends/0/maintenance', { action: 'maintenance', mode: 'soft' }, "The parameter 'mode' expects one of the following values: 'drain', 'cut'"],
    ['PUT', '/monitoring/fg/check_tcp', { log: 'yes' }, "The parameter 'log' expects one of the following values: 'true', 'false'"],
    ['POST', '/farms/f1/backends', { ip: '10.250.0.21', weight: 0 }, "'weight' has to be an integer number between '1' and '9'"],
    ['POST', '/farms/f1/backends', { ip: '10.250.0.21', weight: 10 }, "'weight' has to be an integer number between '1' and '9'"],
    ['POST', '/farms/f1/backends', { ip: '10.250.0.21', weight: '10' }, "'weight' has to be an integer number between '1' and '9'"],
    ['POST', '/farms/f1/backends', { ip: '10.250.0.21', weight: 2.5 }, "'weight' has to be an integer number between '1' and '9'"],
    ['POST', '/farms/f1/backends', { ip: '10.250.0.21', weight: 'abc' }, "'weight' has to be an integer number between '1' and '9'"],
    ['POST', '/farms/f1/backends', { ip: '10.250.0.21', weight: ' 5' }, "'weight' has to be an integer number between '1' and '9'"],
    ['POST', '/farms/f1/backends', { ip: '10.250.0.21', weight: '5e0' }, "'weight' has to be an integer number between '1' and '9'"],
    ['POST', '/farms/f1/backends', { ip: '10.250.0.21', weight: true }, "'weight' has to be an integer number between '1' and '9'"],
    ['POST', '/farms/f1/backends', { ip: '10.250.0.21', priority: -1 }, "'priority' has to be an integer number between '1' and '9'"],
    ['POST', '/farms/f1/backends', { ip: '10.250.0.21', max_conns: -1 }, "'max_conns' has to be an integer number between '0' and '2147483647'"],
    ['POST', '/farms/f1/backends', { ip: '10.250.0.21', max_conns: '0,' }, "'max_conns' has to be an integer number between '0' and '2147483647'"],
    ['PUT', '/farms/f1', { ttl: 0 }, "'ttl' has to be an integer number between '1' and '2592000'"],
    ['PUT', '/monitoring/fg/check_tcp', { interval: 0 }, "'interval' has to be an integer number between '1' and '86400'"],
    ['POST', '/farms/f1/backends', { ip: '10.250.0.21', port: 0 }, "The value '0' is not valid for the parameter 'port'."],
    ['POST', '/farms/f1/backends', { ip: '10.250.0.21', port: '65536' }, "The value '65536' is not valid for the parameter 'port'."],
    ['POST', '/farms/f1/backends', { ip: '10.250.0.21', port: '080' }, "The value '080' is not valid for the parameter 'port'."],
    ['POST', '/farms/f1/backends', { ip: '10.250.0.21', port: '80:90' }, "The value '80:90' is not valid for the parameter 'port'."],
    ['POST', '/farms/f1/backends', { ip: '10.250.0.300' }, "The value '10.250.0.300' is not valid for the parameter 'ip'."],
    ['POST', '/farms/f1/backends', { ip: '010.250.0.20' }, "The value '010.250.0.20' is not valid for the parameter 'ip'."],
    [
      'POST',
      '/farms/f1/backends',
      { ip: 'fe80::1' },
      "The value 'fe80::1' is not valid for the parameter 'ip': fe80::/10 is link-local (RFC 4291): it means something only with an interface (a zone), which a VIP or backend cannot name; a backend must be a unicast address.",
    ],
    ['POST', '/farms', { farmname: 'a_b', profile: 'l4xnat', vip: '10.250.0.11', vport: '80' }, "The value 'a_b' is not valid for the parameter 'farmname'."],
    ['POST', '/farms', { farmname: 'a b', profile: 'l4xnat', vip: '10.250.0.11', vport: '80' }, "The value 'a b' is not valid for the parameter 'farmname'."],
    ['POST', '/farms', { farmname: '0', profile: 'l4xnat', vip: '10.250.0.11', vport: '80' }, "The value '0' is a reserved word of the parameter 'farmname'."],
    ['PUT', '/farms/f1', { newfarmname: 'x/y' }, "The value 'x/y' is not valid for the parameter 'newfarmname'."],
    ['PUT', '/farms/f1', { newfarmname: '0' }, "The value '0' is a reserved word of the parameter 'newfarmname'."],
    ['PUT', '/farms/f1', { vip: '10.250.0' }, "The value '10.250.0' is not valid for the parameter 'vip'."],
    ['POST', '/monitoring/fg', { name: 'a.b', command: 'x' }, "The value 'a.b' is not valid for the parameter 'name'."],
  ];
  for (const [method, url, body, message] of cases) {
    const res = await call(app, method, url, body);
    t.equal(res.status, 400, `${method} ${url} ${JSON.stringify(body)}`);
    t.equal(res.body.message, message, `${method} ${url} ${JSON.stringify(body)}`);
  }
});

t.test('values are checked in catalog order, so the first bad parameter is reported', async (t) => {
  const { app } = await buildTestApp(t);
  await createFarm(app, 'f1');
  const res = await call(app, 'POST', '/farms/f1/backends', { max_conns: -1, weight: 0, ip: 'x' });
  t.equal(res.body.message, "The value 'x' is not valid for the parameter 'ip'.");
  const res2 = await call(app, 'POST', '/farms/f1/backends', { max_conns: -1, weight: 0, ip: '10.250.0.20' });
  t.equal(res2.body.message, "'weight' has to be an integer number between '1' and '9'");
});

t.test('calls that take no body ignore a Content-Type sent without one (curl scripts send it everywhere)', async (t) => {
  const { app, store } = await buildTestApp(t);
  await createFarm(app, 'f1');
  await addBackend(app, 'f1', { ip: '10.250.0.20' });
  t.equal((await call(app, 'POST', '/farms/f1/fg', { name: 'check_tcp' })).status, 200);
  t.equal((await call(app, 'POST', '/monitoring/fg', { name: 'mine', command: 'check_tcp -H HOST -p PORT' })).status, 200);
  const json = { ZAPI_KEY: API_KEY, 'content-type': 'application/json' };
  const cases: [Method, string, string][] = [
    ['GET', '/farms/f1', 'List farm f1'],
    ['DELETE', '/farms/f1/backends/0', 'Backend removed'],
    ['DELETE', '/farms/f1/fg/check_tcp', "Success, 'check_tcp' was removed from the 'farm 'f1''"],
    ['DELETE', '/monitoring/fg/mine', 'mine has been deleted successfully.'],
    ['DELETE', '/farms/f1', 'The Farm f1 has been deleted.'],
  ];
  for (const [method, url, text] of cases) {
    const res = await app.inject({ method, url: `${ZAPI}${url}`, headers: json });
    t.equal(res.statusCode, 200, `${method} ${url}`);
    t.ok(res.json().message === text || res.json().description === text, `${method} ${url}`);
  }
  t.strictSame(store.listFarms(), []);
  const missing = await app.inject({ method: 'DELETE', url: `${ZAPI}/farms/f1`, headers: json });
  t.equal(missing.statusCode, 404);
  t.equal(missing.json().message, "The farm f1 doesn't exist, try another name.");
});
