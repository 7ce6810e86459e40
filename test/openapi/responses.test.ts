// Real answers match the OpenAPI document: every call of a scenario that touches every
// operation is validated against the response schema the document gives for its status.
// The app serializes with JSON.stringify (src/app.ts), so nothing else holds answers to the
// documented shape: this test does.
import fs from 'node:fs';
import t from 'tap';
import Ajv from 'ajv';
import { OPENAPI_FILE } from '../../src/tools/write-openapi.js';
import { addBackend, buildTestApp, call, createFarm, ZAPI } from '../helpers/api.js';

interface Operation {
  responses: Record<string, { content?: Record<string, { schema?: unknown }> }>;
}
const doc = JSON.parse(fs.readFileSync(OPENAPI_FILE, 'utf8')) as { paths: Record<string, Record<string, Operation>>; components: unknown };

// OpenAPI 3.0 schemas: `nullable` is understood, its other keywords (example, format...) ignored.
const ajv = new Ajv({ strict: false, allErrors: true, validateFormats: false });
ajv.addSchema({ $id: 'openapi', components: doc.components } as never);
const pointer = (s: string) => s.replace(/~/g, '~0').replace(/\//g, '~1');

/** The documented schema of this answer, with the path template that matched. */
function documented(method: string, url: string, status: number): { template: string; schema: unknown } | null {
  const path = url.split('?')[0]!;
  for (const [template, ops] of Object.entries(doc.paths)) {
    const re = new RegExp(`^${template.replace(/\{[^}]+\}/g, '[^/]+')}$`);
    if (!re.test(`${ZAPI}${path}`)) continue;
    const op = ops[method.toLowerCase()];
    if (!op) continue;
    const response = op.responses[String(status)] ?? op.responses.default;
    const schema = response?.content?.['application/json']?.schema;
    return schema === undefined ? null : { template, schema };
  }
  return null;
}

/** Rewrites local references so the schema resolves against the whole document. */
const rebased = (schema: unknown): unknown =>
  JSON.parse(JSON.stringify(schema), (k, v) => (k === '$ref' && typeof v === 'string' && v.startsWith('#/') ? `openapi${v}` : v));

t.test('every answer of a scenario across the API matches the documented response schema', async (t) => {
  const { app } = await buildTestApp(t);
  const seen = new Set<string>();
  const check = async (method: 'GET' | 'POST' | 'PUT' | 'DELETE', url: string, body?: unknown) => {
    const res = await call(app, method, url, body);
    const doc = documented(method, url, res.status);
    if (!t.ok(doc, `${method} ${url} ${res.status} is documented`)) return res;
    seen.add(`${method} ${doc!.template}`);
    const validate = ajv.compile(rebased(doc!.schema) as object);
    if (!validate(res.body)) t.fail(`${method} ${url} ${res.status}: ${ajv.errorsText(validate.errors)}: ${JSON.stringify(res.body).slice(0, 400)}`);
    else t.pass(`${method} ${url} ${res.status} matches`);
    return res;
  };

  await createFarm(app, 'web');
  await addBackend(app, 'web', { ip: '10.250.0.20' });
  await addBackend(app, 'web', { ip: '10.250.0.21', weight: 3 });
  await check('POST', '/farms', { farmname: 'second', vip: '10.250.0.11', vport: '8080' });
  await check('POST', '/farms', { farmname: 'second', vip: '10.250.0.11', vport: '8080' });
  await check('GET', '/farms');
  await check('GET', '/farms/web');
  await check('GET', '/farms/nope');
  await check('PUT', '/farms/web', { algorithm: 'roundrobin' });
  await check('PUT', '/farms/web', { algorithm: 'bogus' });
  await check('GET', '/farms/web/status');
  await check('DELETE', '/farms/web/sessions');
  await check('PUT', '/farms/web/actions', { action: 'stop' });
  await check('PUT', '/farms/web/actions', { action: 'start' });
  await check('GET', '/farms/web/backends');
  await check('POST', '/farms/web/backends', { ip: '10.250.0.22' });
  await check('PUT', '/farms/web/backends/0', { weight: 5 });
  await check('DELETE', '/farms/web/backends/0/sessions');
  await check('PUT', '/farms/web/backends/0/maintenance', { action: 'maintenance', mode: 'drain' });
  await check('PUT', '/farms/web/backends/0/maintenance', { action: 'up' });
  await check('DELETE', '/farms/web/backends/2');
  await check('POST', '/monitoring/fg', { name: 'tcp-check', copy_from: 'check_tcp' });
  await check('GET', '/monitoring/fg');
  await check('GET', '/monitoring/fg/tcp-check');
  await check('PUT', '/monitoring/fg/tcp-check', { interval: 5 });
  await check('POST', '/farms/web/fg', { name: 'tcp-check' });
  await check('DELETE', '/farms/web/fg/tcp-check');
  await check('GET', '/stats/farms');
  await check('GET', '/stats/farms/web');
  await check('GET', '/stats/farms/web/backends');
  await check('GET', '/system/status');
  await check('GET', '/system/status?farms=false');
  await check('GET', '/system/audit?limit=5');
  await check('GET', '/system/bgp');
  const exported = await check('GET', '/system/config');
  await check('PUT', '/system/config?dry_run=true', exported.body.params);
  await check('PUT', '/system/bgp', { hold_time: 'x' });
  await check('DELETE', '/monitoring/fg/tcp-check');
  await check('DELETE', '/farms/second');
  await check('DELETE', '/farms/web');
  // The schemas have teeth: a wrong shape is refused.
  const farmSchema = documented('GET', '/farms/web', 200)!.schema;
  t.notOk(ajv.validate(rebased(farmSchema) as object, { description: 1, params: [] }), 'a malformed farm answer fails the schema');
  t.ok(seen.size >= 30, `${seen.size} operations and statuses checked`);
});
