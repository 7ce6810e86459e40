// `nftfarm config export` and `nftfarm config apply`: through the daemon's API while one serves
// the database, on the database directly when none does; a refused document changes nothing.
import t from 'tap';
import fs from 'node:fs';
import { join } from 'node:path';
import { ROOT, startDaemon } from '../helpers/live-daemon.js';

const BIN = join(ROOT, 'bin', 'nftfarm');

t.test('config export/apply through a running daemon, then on the database directly', async (t) => {
  const daemon = await startDaemon(t, { prefix: 'nfcfg' });
  const cli = (args: string[], input?: string) => daemon.exec([process.execPath, BIN, 'config', ...args, '--db', daemon.dbPath], { env: { NFTFARM_API_KEY: daemon.key }, input });
  const doc = (farms: unknown[]) => ({ format: 'nftfarm-config/1', farms, health_checks: [], bgp: {} });
  const web = { farmname: 'web', vip: '10.250.0.100', vport: '80', nattype: 'dsr', backends: [{ ip: '10.250.0.21' }, { ip: '10.250.0.22', weight: 2 }] };

  const file = join(daemon.dbPath, '..', 'doc.json');
  fs.writeFileSync(file, JSON.stringify(doc([web])));
  const dry = await cli(['apply', file, '--dry-run']);
  t.equal(dry.status, 0, dry.stderr);
  t.match(JSON.parse(dry.stdout), { via: 'the running daemon', plan: { create: [{ kind: 'farm', name: 'web' }] } });
  t.equal((await daemon.zapi('GET', '/farms/web')).status, 404, 'a dry run changes nothing');

  const applied = await cli(['apply', file]);
  t.equal(applied.status, 0, applied.stderr);
  const status = (await daemon.zapi('GET', '/system/status')).body as { params: { config_digest: string } };
  t.equal(JSON.parse(applied.stdout).digest, status.params.config_digest, 'the daemon applied it');
  const exported = await cli(['export']);
  t.equal(exported.status, 0, exported.stderr);
  t.equal(exported.stdout, `${JSON.stringify((await daemon.zapi('GET', '/system/config')).body && ((await daemon.zapi('GET', '/system/config')).body as { params: unknown }).params, null, 2)}\n`, 'export prints GET /system/config\'s document');

  fs.writeFileSync(file, JSON.stringify(doc([{ ...web, vport: '80-81', backends: [{ ip: 'nope' }] }])));
  const refused = await cli(['apply', file]);
  t.equal(refused.status, 1);
  t.match(refused.stderr, /refused, nothing was changed:\n {2}- .*'vport'.*\n {2}- .*'ip' must be an IPv4 or IPv6 address/);

  await daemon.stop();
  fs.writeFileSync(file, JSON.stringify(doc([{ ...web, backends: [{ ip: '10.250.0.21' }] }])));
  const direct = await cli(['apply', file]);
  t.equal(direct.status, 0, direct.stderr);
  t.match(JSON.parse(direct.stdout), { via: daemon.dbPath, plan: { delete: [{ kind: 'backend', name: 'web 10.250.0.22' }] } });
  const offline = await cli(['export']);
  t.match(JSON.parse(offline.stdout), { farms: [{ farmname: 'web', backends: [{ ip: '10.250.0.21' }] }] }, 'export reads the database directly');
  fs.writeFileSync(file, JSON.stringify(doc([{ ...web, vip: '192.0.2.1' }])));
  const offNet = await cli(['apply', file]);
  t.equal(offNet.status, 1, 'the VIP is checked against the host\'s networks without a daemon too');
  t.match(offNet.stderr, /not in a network connected to this host/);
  const usage = await daemon.exec([process.execPath, BIN, 'config', 'apply']);
  t.equal(usage.status, 2);
  t.match(usage.stderr, /config apply needs a FILE/);
});
