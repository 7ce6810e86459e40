// The curl scripts in examples/ against a live nftfarm (in its own namespace): each one runs
// with bash as an operator would, and its effect is checked through the API.
import t from 'tap';
import { statSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT, startDaemon, type LiveDaemon } from '../helpers/live-daemon.js';

const EXAMPLES = join(ROOT, 'examples');
const SCRIPTS = ['create-dsr-farm.sh', 'drain-backend.sh', 'read-stats.sh', 'delete-farm.sh'];

interface FarmAnswer {
  params: { nattype: string; farmguardian: string | null; vip: string; vport: string; status: string };
  backends: { id: number; ip: string; port: number | null; status: string }[];
}

/** The JSON lines a script printed (its `#` comments skipped). */
function jsonLines(stdout: string): unknown[] {
  return stdout
    .split('\n')
    .filter((line) => line.startsWith('{'))
    .map((line) => JSON.parse(line) as unknown);
}

function script(daemon: LiveDaemon, name: string, args: string[] = [], env: Record<string, string> = {}) {
  return daemon.exec(['bash', join(EXAMPLES, name), ...args], { env: { NFTFARM_URL: daemon.url, ZAPI_KEY: daemon.key, ...env } });
}

t.test('the scripts are executable bash scripts with set -eu', async (t) => {
  for (const name of SCRIPTS) {
    const st = statSync(join(EXAMPLES, name));
    t.ok(st.mode & 0o111, `${name} is executable`);
  }
});

t.test('examples/ against a live daemon', async (t) => {
  const daemon = await startDaemon(t, { prefix: 'nfex' });
  const farm = async (name: string) => daemon.zapi('GET', `/farms/${name}`);

  t.test('create-dsr-farm.sh', async (t) => {
    const r = await script(daemon, 'create-dsr-farm.sh');
    t.equal(r.status, 0, `exit 0\n${r.stdout}\n${r.stderr}`);
    const answers = jsonLines(r.stdout);
    t.equal(answers.length, 6, 'prints the answer of each of its six calls');
    t.match(answers[0], { description: 'Creating a farm', params: { farmname: 'dsrfarm', interface: 'eth0' } });

    const { status, body } = await farm('dsrfarm');
    t.equal(status, 200);
    const shown = body as FarmAnswer;
    t.match(shown.params, { nattype: 'dsr', farmguardian: 'check_tcp', vip: '10.250.0.100', vport: '80' });
    t.same(
      shown.backends.map((b) => [b.id, b.ip, b.port]),
      [
        [0, '10.250.0.21', null],
        [1, '10.250.0.22', null],
      ],
    );
    // Its last answer is the farm (statuses move on as the reconciler works: not compared).
    const last = answers[5] as FarmAnswer;
    t.match(last.params, { nattype: 'dsr', farmguardian: 'check_tcp' });
    t.same(last.backends.map((b) => b.ip), ['10.250.0.21', '10.250.0.22']);
  });

  t.test('create-dsr-farm.sh takes the farm, VIP, port and backends from the environment', async (t) => {
    const r = await script(daemon, 'create-dsr-farm.sh', ['web443'], { VIP: '10.250.0.101', VPORT: '443', BACKENDS: '10.250.0.23' });
    t.equal(r.status, 0, `exit 0\n${r.stderr}`);
    const shown = (await farm('web443')).body as FarmAnswer;
    t.match(shown.params, { nattype: 'dsr', farmguardian: 'check_tcp', vip: '10.250.0.101', vport: '443' });
    t.same(shown.backends.map((b) => b.ip), ['10.250.0.23']);
  });

  t.test('drain-backend.sh', async (t) => {
    const r = await script(daemon, 'drain-backend.sh', ['dsrfarm', '1']);
    t.equal(r.status, 0, `exit 0\n${r.stderr}`);
    const answers = jsonLines(r.stdout);
    t.match(answers[0], { params: { action: 'maintenance', mode: 'drain' } });
    const shown = (await farm('dsrfarm')).body as FarmAnswer;
    t.equal(shown.backends.find((b) => b.id === 1)?.status, 'maintenance', 'backend 1 is in maintenance');
    t.not(shown.backends.find((b) => b.id === 0)?.status, 'maintenance', 'backend 0 is not');
    const after = answers[1] as FarmAnswer;
    t.equal(after.backends.find((b) => b.id === 1)?.status, 'maintenance', 'then it shows the farm, with backend 1 in maintenance');
  });

  t.test('read-stats.sh', async (t) => {
    const all = await script(daemon, 'read-stats.sh');
    t.equal(all.status, 0, `exit 0\n${all.stderr}`);
    const [list] = jsonLines(all.stdout) as [{ description: string; farms: { farmname: string }[] }];
    t.equal(list.description, 'List all farms stats');
    t.same(list.farms.map((f) => f.farmname).sort(), ['dsrfarm', 'web443']);

    const one = await script(daemon, 'read-stats.sh', ['dsrfarm']);
    t.equal(one.status, 0, `exit 0\n${one.stderr}`);
    const [stats] = jsonLines(one.stdout) as [{ backends: { id: number; status: string }[]; total_sessions: number }];
    t.match(stats, { description: 'Get farm stats', total_sessions: Number, sessions: Array });
    t.same(stats.backends.map((b) => [b.id, b.status === 'maintenance']), [
      [0, false],
      [1, true],
    ]);
    const direct = (await daemon.zapi('GET', '/stats/farms/dsrfarm')).body as typeof stats;
    t.same(direct.backends.map((b) => b.id), [0, 1], 'the API answers the same farm');
  });

  t.test('delete-farm.sh', async (t) => {
    for (const name of ['dsrfarm', 'web443']) {
      const r = await script(daemon, 'delete-farm.sh', [name]);
      t.equal(r.status, 0, `exit 0\n${r.stderr}`);
      t.match(jsonLines(r.stdout), [{ success: 'true', message: `The Farm ${name} has been deleted.` }]);
      t.equal((await farm(name)).status, 404, `${name} is gone`);
    }
    t.same((await daemon.zapi('GET', '/farms')).body, { description: 'List farms', params: [] });
  });

  t.test('failures stop the scripts', async (t) => {
    const noKey = await daemon.exec(['bash', join(EXAMPLES, 'read-stats.sh')], { env: { NFTFARM_URL: daemon.url } });
    t.not(noKey.status, 0, 'no ZAPI_KEY: refused');
    t.match(noKey.stderr, /ZAPI_KEY/);

    const wrongKey = await script(daemon, 'read-stats.sh', [], { ZAPI_KEY: 'not-the-key' });
    t.not(wrongKey.status, 0, 'wrong key: fails');
    t.match(wrongKey.stdout, /Authorization required/, 'and shows the answer');

    const missing = await script(daemon, 'delete-farm.sh', ['nosuchfarm']);
    t.not(missing.status, 0, 'deleting an absent farm fails');
    t.match(missing.stdout, /"error":"true"/);

    const usage = await script(daemon, 'drain-backend.sh', ['dsrfarm']);
    t.equal(usage.status, 2, 'a missing argument is a usage error');
    t.match(usage.stderr, /usage: .*drain-backend\.sh FARM BACKEND_ID/);

    const halfway = await script(daemon, 'create-dsr-farm.sh', ['badfarm'], { VIP: '192.0.2.10' });
    t.not(halfway.status, 0, 'a VIP outside the connected networks: the first call fails and the script stops');
    t.match(halfway.stdout, /not in a network connected to this host/);
    t.notMatch(halfway.stdout, /# switch it to Direct Server Return/, 'nothing after the failed call ran');
  });
});
