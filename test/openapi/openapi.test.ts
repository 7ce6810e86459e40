// The committed OpenAPI document: in step with the code, valid OpenAPI 3 for a maintained
// validator, complete enough for generated clients, and the same one the app serves.
import t from 'tap';
import { readFileSync } from 'node:fs';
import { Validator } from '@seriousme/openapi-schema-validator';
import { buildApp } from '../../src/app.js';
import { noDataplane } from '../../src/model/runtime.js';
import { openDatabase } from '../../src/store/db.js';
import { Store } from '../../src/store/store.js';
import { OPENAPI_FILE, renderOpenapi } from '../../src/tools/write-openapi.js';

interface Operation {
  operationId?: string;
  parameters?: { in: string }[];
  requestBody?: { content?: Record<string, { schema?: unknown }> };
  responses: Record<string, { content?: Record<string, { schema?: unknown }> }>;
}
interface Document {
  openapi: string;
  paths: Record<string, Record<string, Operation>>;
  components: { schemas: Record<string, unknown>; securitySchemes: Record<string, unknown> };
  security: unknown[];
}

const committedText = readFileSync(OPENAPI_FILE, 'utf8');
const committed = JSON.parse(committedText) as Document;
const METHODS = ['get', 'put', 'post', 'delete', 'patch', 'head', 'options'];

function operations(doc: Document): { name: string; op: Operation }[] {
  return Object.entries(doc.paths).flatMap(([path, item]) =>
    Object.entries(item)
      .filter(([method]) => METHODS.includes(method))
      .map(([method, op]) => ({ name: `${method.toUpperCase()} ${path}`, op })),
  );
}

const schemaOf = (part: { content?: Record<string, { schema?: unknown }> } | undefined, type = 'application/json') => part?.content?.[type]?.schema;
const refTo = (name: string) => ({ $ref: `#/components/schemas/${name}` });

t.test('openapi/openapi.json is what the app generates', async (t) => {
  const generated = await renderOpenapi();
  t.ok(generated === committedText, 'openapi/openapi.json is out of date: run `npm run openapi` and commit the result');
  // On drift, show where.
  if (generated !== committedText) t.same(JSON.parse(generated), committed);
});

t.test('the document is valid OpenAPI 3 (@seriousme/openapi-schema-validator)', async (t) => {
  const validator = new Validator();
  const result = await validator.validate(JSON.parse(committedText) as Record<string, unknown>);
  t.same(result.errors ?? [], [], 'no validation errors');
  t.ok(result.valid, 'valid');
  t.match(validator.version, /^3\.0/, 'an OpenAPI 3.0 document');
  // Every $ref resolves.
  t.doesNotThrow(() => validator.resolveRefs(), 'all $refs resolve');
});

t.test('OpenAPI 3.0 schema keywords only', async (t) => {
  const bad: string[] = [];
  const walk = (node: unknown, where: string): void => {
    if (Array.isArray(node)) return node.forEach((n, i) => walk(n, `${where}/${i}`));
    if (node === null || typeof node !== 'object') return;
    const obj = node as Record<string, unknown>;
    if (obj.type === 'null' || Array.isArray(obj.type)) bad.push(`${where}: type ${JSON.stringify(obj.type)} (use nullable: true)`);
    for (const kw of ['$id', '$schema', 'const', 'examples', 'prefixItems', '$defs']) {
      if (kw in obj && !where.endsWith('/properties')) bad.push(`${where}: ${kw} is not OpenAPI 3.0`);
    }
    for (const [k, v] of Object.entries(obj)) walk(v, `${where}/${k}`);
  };
  walk(committed.paths, '#/paths');
  walk(committed.components.schemas, '#/components/schemas');
  t.same(bad, []);
});

t.test('every operation is described completely', async (t) => {
  const ops = operations(committed);
  t.ok(ops.length >= 20, `${ops.length} operations`);
  for (const { name, op } of ops) {
    const success = op.responses['200'] ?? op.responses['201'];
    const successSchema = schemaOf(success) ?? schemaOf(success, 'text/plain');
    t.ok(successSchema, `${name}: a 200/201 response schema`);
    t.same(schemaOf(op.responses['401']), refTo('Unauthorized'), `${name}: 401 Unauthorized`);
    t.same(schemaOf(op.responses.default), refTo('ZapiError'), `${name}: every other refusal is a ZapiError`);
    t.match(op.operationId, /^[a-z][A-Za-z]+$/, `${name}: an operationId`);
    if (op.requestBody) {
      t.ok(schemaOf(op.requestBody), `${name}: a JSON requestBody schema`);
      for (const code of ['400', '413', '415']) t.same(schemaOf(op.responses[code]), refTo('ZapiError'), `${name}: ${code} ZapiError`);
    }
    if (op.parameters?.some((p) => p.in === 'path')) t.same(schemaOf(op.responses['414']), refTo('ZapiError'), `${name}: 414 for a long path parameter`);
  }
  const ids = ops.map(({ op }) => op.operationId);
  t.equal(new Set(ids).size, ids.length, 'operationIds are unique');
  t.equal(committed.paths['/zapi/v4.0/zapi.cgi/farms/{farmname}/backends']?.post?.operationId, 'addBackend', 'names that say what the call does');
  const withBody = ops.filter(({ op }) => op.requestBody).map(({ name }) => name);
  for (const route of [
    'POST /zapi/v4.0/zapi.cgi/farms',
    'PUT /zapi/v4.0/zapi.cgi/farms/{farmname}',
    'PUT /zapi/v4.0/zapi.cgi/farms/{farmname}/actions',
    'POST /zapi/v4.0/zapi.cgi/farms/{farmname}/backends',
    'PUT /zapi/v4.0/zapi.cgi/farms/{farmname}/backends/{id}',
    'PUT /zapi/v4.0/zapi.cgi/farms/{farmname}/backends/{id}/maintenance',
    'POST /zapi/v4.0/zapi.cgi/farms/{farmname}/fg',
  ]) {
    t.ok(withBody.includes(route), `${route} has a request body`);
  }
  t.ok(committed.paths['/zapi/v4.0/zapi.cgi/farms']?.post?.responses['201'], 'creating a farm answers 201');
});

t.test('components name the ZAPI objects and the key', async (t) => {
  for (const name of ['ZapiError', 'Unauthorized', 'FarmSummary', 'FarmDetail', 'FarmStatus', 'Backend', 'BackendStatus', 'HealthCheck', 'FarmStats', 'BackendStats']) {
    t.ok(committed.components.schemas[name], `component ${name}`);
  }
  t.same(committed.components.securitySchemes.ZapiKey, { type: 'apiKey', in: 'header', name: 'ZAPI_KEY' });
  t.same(committed.security, [{ ZapiKey: [] }]);
  t.same((committed as unknown as { info: { license: unknown } }).info.license, { name: 'MIT', url: 'https://opensource.org/licenses/MIT' });
});

t.test('GET /openapi.json serves the committed document', async (t) => {
  const store = new Store(openDatabase(':memory:'));
  const app = await buildApp({ store, apiKey: 'openapi-test-key', host: { connectedNetworks: async (ips) => ips.map(() => null) }, dataplane: noDataplane });
  t.teardown(async () => {
    await app.close();
    store.close();
  });
  const res = await app.inject({ method: 'GET', url: '/openapi.json' });
  t.equal(res.statusCode, 200);
  t.match(res.headers['content-type'], /^application\/json/);
  t.same(res.json(), committed);
});
