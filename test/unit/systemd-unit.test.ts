// deploy/nftfarm.service gives the daemon what test/e2e/unprivileged.test.ts proves enough
// (a non-root user, CAP_NET_ADMIN and CAP_NET_RAW ambient and bounding, no new privileges),
// keeps what would break it unset, and systemd's own parser accepts it.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { ROOT } from '../helpers/live-daemon.js';

const UNIT = path.join(ROOT, 'deploy/nftfarm.service');

/** key -> values of the [Service] section (a key may repeat). */
function serviceSection(text: string): Map<string, string[]> {
  const out = new Map<string, string[]>();
  let section = '';
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) continue;
    if (line.startsWith('[')) section = line;
    else if (section === '[Service]') {
      const eq = line.indexOf('=');
      const key = line.slice(0, eq);
      out.set(key, [...(out.get(key) ?? []), line.slice(eq + 1)]);
    }
  }
  return out;
}

t.test('the service runs unprivileged with CAP_NET_ADMIN and CAP_NET_RAW only', async (t) => {
  const s = serviceSection(fs.readFileSync(UNIT, 'utf8'));
  const one = (key: string) => s.get(key)?.join(' ');
  const caps = (key: string) => new Set(one(key)?.split(/\s+/));
  t.equal(one('User'), 'nftfarm');
  t.equal(one('Group'), 'nftfarm');
  t.same(caps('AmbientCapabilities'), new Set(['CAP_NET_ADMIN', 'CAP_NET_RAW']), 'ambient: nft, conntrack and ping inherit them');
  t.same(caps('CapabilityBoundingSet'), new Set(['CAP_NET_ADMIN', 'CAP_NET_RAW']), 'nothing more, ever');
  t.equal(one('NoNewPrivileges'), 'yes');
  t.equal(one('ProtectSystem'), 'strict');
  t.equal(one('StateDirectory'), 'nftfarm');
  t.equal(one('StateDirectoryMode'), '0700');
  t.equal(one('UMask'), '0077');
  t.match(one('Environment'), /NFTFARM_DB=\/var\/lib\/nftfarm\/nftfarm\.db/, 'the database in the state directory');
  t.match(one('ExecStart'), /\/opt\/nftfarm\/bin\/nftfarm serve$/);
  for (const key of ['ProtectKernelTunables', 'MemoryDenyWriteExecute', 'PrivateNetwork', 'PrivateUsers', 'ProcSubset']) {
    t.notOk(s.has(key), `${key} is not set: it would break nftfarm`);
  }
});

t.test('systemd-analyze verify accepts the unit', { skip: spawnSync('systemd-analyze', ['--version']).status !== 0 && 'no systemd-analyze here' }, async (t) => {
  const r = spawnSync('systemd-analyze', ['verify', '--man=no', UNIT], { encoding: 'utf8' });
  t.equal(r.status, 0, r.stderr);
  t.equal(r.stderr.trim(), '', 'no unknown key or bad value');
});
