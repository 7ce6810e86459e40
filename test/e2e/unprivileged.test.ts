/**
 * Issue 11, finding 6 (least privilege): the real daemon runs as a non-root uid holding only
 * CAP_NET_ADMIN and CAP_NET_RAW (ambient, bounding set reduced to them, no new privileges:
 * what nftfarm.service gives it), inside the lab's load-balancer namespace, and serves a DSR
 * farm with real traffic: nft, conntrack and ping inherit the capabilities, the net sysctls
 * are written, and its files are the owner's only. Before, it refused to start ("cannot write
 * /proc/sys/net/ipv4/conf/*").
 */
import fs from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { createLab, LAB_VIP, type Lab } from '../../lab/lab.js';
import { createDsrFarm, farmReady, startLabDaemon, type LabDaemon } from '../../lab/daemon.js';

const UID = 64990;
const CAPS = 'net_admin,net_raw';
const CAP_MASK = (1n << 12n) | (1n << 13n);

let lab: Lab;

t.before(async () => {
  lab = await createLab({ prefix: 'nfunp', backends: 2 });
  await lab.configureDsrBackends(LAB_VIP);
  await lab.startHttpBackends(80);
});
t.teardown(async () => lab?.destroy());

const statusOf = (pid: number) => fs.readFileSync(`/proc/${pid}/status`, 'utf8');
const capField = (status: string, name: string) => BigInt(`0x${new RegExp(`^${name}:\\s*([0-9a-f]+)`, 'm').exec(status)?.[1] ?? '0'}`);

t.test('a DSR farm served by nftfarm running as uid 64990 with CAP_NET_ADMIN and CAP_NET_RAW only', async (t) => {
  let daemon: LabDaemon;
  try {
    daemon = await startLabDaemon(t, lab, {}, {
      // The state directory belongs to the service user, as systemd's StateDirectory= does.
      beforeStart: (dbPath) => fs.chownSync(path.dirname(dbPath), UID, UID),
      wrap: (argv) => [
        'setpriv',
        `--reuid=${UID}`,
        `--regid=${UID}`,
        '--clear-groups',
        `--inh-caps=-all,+${CAPS.replace(',', ',+')}`,
        `--ambient-caps=-all,+${CAPS.replace(',', ',+')}`,
        `--bounding-set=-all,+${CAPS.replace(',', ',+')}`,
        '--no-new-privs',
        '--',
        ...argv,
      ],
    });
  } catch (err) {
    t.fail(`the daemon did not start as uid ${UID}: ${(err as Error).message.slice(0, 2000)}`);
    return;
  }

  await t.test('the process is unprivileged', async (t) => {
    const status = statusOf(daemon.pid()!);
    t.match(status, new RegExp(`^Uid:\\s+${UID}\\s+${UID}\\s+${UID}\\s+${UID}$`, 'm'), `uid ${UID}`);
    t.equal(capField(status, 'CapEff'), CAP_MASK, 'effective: net_admin and net_raw only');
    t.equal(capField(status, 'CapAmb'), CAP_MASK, 'ambient: the same, for nft, conntrack and ping');
    t.equal(capField(status, 'CapBnd'), CAP_MASK, 'bounding set: nothing more can ever be gained');
    t.match(status, /^NoNewPrivs:\s+1$/m);
  });

  await createDsrFarm(daemon, lab, 'web', LAB_VIP, '80');
  if (!t.ok(await daemon.until(() => farmReady(daemon, 'web'), 15_000), 'the farm is applied and up')) t.comment(daemon.logs().slice(-6000));

  await t.test('traffic flows through the DSR farm', async (t) => {
    const result = await lab.httpMany(`http://${LAB_VIP}/`, 40);
    t.equal(result.ok, 40, `all 40 answered: ${JSON.stringify(result.errors)}`);
    t.ok((result.byBackend.b1 ?? 0) > 3 && (result.byBackend.b2 ?? 0) > 3, `both backends used: ${JSON.stringify(result.byBackend)}`);
    t.equal((await lab.exec(lab.lb.ns, ['sysctl', '-n', 'net.ipv4.conf.eth0.forwarding'])).stdout.trim(), '1', 'the daemon wrote the net sysctl');
  });

  await t.test('check_ping works (ping inherits CAP_NET_RAW)', async (t) => {
    const created = await daemon.api('POST', '/monitoring/fg', { name: 'ping1', command: 'check_ping -H HOST -p 1 -c 500,50%', interval: 1, timeout: 1, log: 'true' });
    t.equal(created.status, 200, JSON.stringify(created.body));
    t.equal((await daemon.api('POST', '/farms/web/fg', { name: 'ping1' })).status, 200);
    const pinged = await daemon.until(async () => /"check":"ping1","ok":true/.test(daemon.logs()), 10_000);
    t.ok(pinged, 'a ping check passed');
    t.notMatch(daemon.logs(), /"check":"ping1","ok":false/, 'and none failed');
  });

  await t.test('its files are its own: 0700 directory, 0600 database, -wal, -shm', async (t) => {
    const dir = path.dirname(daemon.dbPath);
    t.equal(fs.statSync(dir).mode & 0o777, 0o700);
    for (const f of ['nftfarm.db', 'nftfarm.db-wal', 'nftfarm.db-shm']) {
      const st = fs.statSync(path.join(dir, f));
      t.equal(st.mode & 0o777, 0o600, `${f} is 0600`);
      t.equal(st.uid, UID, `${f} belongs to uid ${UID}`);
    }
  });

  await t.test('a graceful stop', async (t) => {
    await daemon.stop('SIGTERM');
    t.match(daemon.logs(), '"msg":"stopped"');
  });
});
