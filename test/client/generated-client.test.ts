// A typed client generated from the committed OpenAPI document drives a live nftfarm:
// openapi-typescript writes the types, openapi-fetch sends the requests. The client program
// must pass a strict tsc, a program with deliberate mistakes must not, and the compiled
// program must get the answers it is typed for from the daemon (in its namespace).
import t from 'tap';
import { spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ROOT, startDaemon, withoutTapLoader } from '../helpers/live-daemon.js';

const FIXTURES = join(dirname(fileURLToPath(import.meta.url)), 'fixtures');
const OPENAPI_FILE = join(ROOT, 'openapi/openapi.json');
const TSC = join(ROOT, 'node_modules/typescript/bin/tsc');

/** Runs a build tool (outside the namespace: it makes no network traffic) without tap's loader. */
function tool(argv: string[], cwd = ROOT): { status: number | null; out: string } {
  const [cmd, ...args] = withoutTapLoader(argv) as [string, ...string[]];
  const r = spawnSync(cmd, args, { cwd, encoding: 'utf8', timeout: 120_000 });
  return { status: r.status, out: `${r.stdout ?? ''}${r.stderr ?? ''}${r.error ? String(r.error) : ''}` };
}

/** Strict, like the project itself; the generated .d.ts is checked too (no skipLibCheck). */
function tsconfig(file: string, emit: boolean): string {
  return JSON.stringify({
    compilerOptions: {
      strict: true,
      noUncheckedIndexedAccess: true,
      target: 'ES2022',
      module: 'NodeNext',
      moduleResolution: 'NodeNext',
      types: ['node'],
      skipLibCheck: false,
      noEmitOnError: true,
      ...(emit ? {} : { noEmit: true }),
    },
    files: [file],
  });
}

interface Step {
  step: string;
  status: number;
  body: unknown;
}

t.test('a client generated from openapi/openapi.json', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'nftfarm-client-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  // The program imports openapi-fetch; the project's node_modules serves it (and @types/node).
  symlinkSync(join(ROOT, 'node_modules'), join(dir, 'node_modules'), 'dir');
  for (const file of ['farm-lifecycle.mts', 'type-errors.mts']) copyFileSync(join(FIXTURES, file), join(dir, file));
  writeFileSync(join(dir, 'tsconfig.json'), tsconfig('farm-lifecycle.mts', true));
  writeFileSync(join(dir, 'tsconfig.errors.json'), tsconfig('type-errors.mts', false));

  const gen = tool(['npx', '--no', 'openapi-typescript', OPENAPI_FILE, '-o', join(dir, 'api.d.ts')]);
  t.equal(gen.status, 0, `openapi-typescript generates the types\n${gen.out}`);
  const types = readFileSync(join(dir, 'api.d.ts'), 'utf8');
  t.match(types, /"\/zapi\/v4\.0\/zapi\.cgi\/farms\/\{farmname\}\/backends": \{/, 'paths are typed');
  t.match(types, /Backend: \{/, 'components are typed');
  // Generators name their methods after the operationIds.
  for (const op of ['createFarm', 'addBackend', 'setBackendMaintenance', 'getSystemStatus']) t.match(types, new RegExp(`\\b${op}: \\{`), `operation ${op} is named`);

  const check = tool([process.execPath, TSC, '-p', 'tsconfig.json'], dir);
  t.equal(check.status, 0, `the client program passes strict tsc\n${check.out}`);
  t.ok(existsSync(join(dir, 'farm-lifecycle.mjs')), 'tsc emitted farm-lifecycle.mjs');

  t.test('tsc refuses every deliberate type error', async (t) => {
    const source = readFileSync(join(dir, 'type-errors.mts'), 'utf8').split('\n');
    const expected = source.flatMap((line, i) => (line.includes('// TS-ERROR:') ? [i + 1] : []));
    t.equal(expected.length, 5, 'the fixture marks five mistakes');
    const r = tool([process.execPath, TSC, '-p', 'tsconfig.errors.json'], dir);
    t.not(r.status, 0, 'tsc fails');
    const reported = [...r.out.matchAll(/^(\S+)\((\d+),\d+\): error TS\d+/gm)];
    t.same(
      [...new Set(reported.map((m) => m[1]))],
      ['type-errors.mts'],
      `errors only in the mistakes program, none in the generated types\n${r.out}`,
    );
    t.same([...new Set(reported.map((m) => Number(m[2])))].sort((a, b) => a - b), expected, `one error per marked line\n${r.out}`);
  });

  t.test('the compiled program drives a live daemon', async (t) => {
    const daemon = await startDaemon(t, { prefix: 'nfgc' });
    const run = await daemon.exec([process.execPath, join(dir, 'farm-lifecycle.mjs')], {
      env: { NFTFARM_URL: daemon.url, ZAPI_KEY: daemon.key },
    });
    t.equal(run.status, 0, `the program succeeds\n${run.stderr}`);
    const steps = run.stdout.trim().split('\n').map((line) => JSON.parse(line) as Step);
    const byStep = (name: string) => steps.filter((s) => s.step === name);
    t.same(
      steps.map((s) => s.step),
      ['create', 'add-backend', 'add-backend', 'list', 'modify', 'modify-refused', 'show', 'stop', 'delete', 'show-deleted', 'wrong-key'],
    );

    t.same(byStep('create'), [
      {
        step: 'create',
        status: 201,
        body: { farmname: 'genclient', vip: '10.250.0.100', interface: 'eth0', message: 'The farm genclient has been created successfully.' },
      },
    ]);
    const added = byStep('add-backend');
    t.match(added, [
      { status: 201, body: { id: 0, ip: '10.250.0.21', port: 8080, weight: 2, message: 'Backend added.' } },
      { status: 201, body: { id: 1, ip: '10.250.0.22', port: 8080, weight: 3, message: 'Backend added.' } },
    ]);
    for (const a of added) {
      t.ok(['down', 'critical', 'problem', 'maintenance', 'up'].includes((a.body as { farmStatus: string }).farmStatus), 'a FarmStatus');
    }
    t.same(byStep('list'), [
      { step: 'list', status: 200, body: [{ farmname: 'genclient', profile: 'l4xnat', vip: '10.250.0.100', vport: '80' }] },
    ]);
    t.same(byStep('modify'), [{ step: 'modify', status: 200, body: { message: 'Some parameters have been changed in farm genclient.' } }]);
    t.match(byStep('modify-refused'), [{ status: 400, body: { error: 'true', message: /DSR mode a backend port must be empty or equal/ } }]);
    t.same(byStep('show'), [
      {
        step: 'show',
        status: 200,
        body: {
          algorithm: 'roundrobin',
          persistence: 'ip',
          ttl: 120,
          nattype: 'nat',
          backends: ['0:10.250.0.21:8080:2', '1:10.250.0.22:8080:3'],
        },
      },
    ]);
    t.same(byStep('stop'), [{ step: 'stop', status: 200, body: { action: 'stop', status: 'down' } }]);
    t.same(byStep('delete'), [{ step: 'delete', status: 200, body: { success: 'true', message: 'The Farm genclient has been deleted.' } }]);
    t.same(byStep('show-deleted'), [{ step: 'show-deleted', status: 404, body: { message: 'Farm not found.' } }]);
    t.same(byStep('wrong-key'), [{ step: 'wrong-key', status: 401, body: { message: 'Authorization required' } }]);

    const farms = await daemon.zapi('GET', '/farms');
    t.same(farms, { status: 200, body: { description: 'List farms', params: [] } }, 'the daemon agrees: no farm left');
  });
});
