/**
 * A first load of more farms than one chunk (reconciler.ts, loadInChunks): the farm chains of
 * every chunk after the first are written over netlink (nft/netlink-rules.ts), and the
 * dispatch of every farm comes last. Real traffic to farms of the first and of a later chunk,
 * their chains as nft lists them, the weights honoured, and a restart that adopts it all;
 * then the same for stateless_dnat farms (two chains each, one rewriting the replies).
 * Checksums are not proven here (veth passes packets with checksums left to offload, so a
 * reply with a stale TCP checksum still arrives): test/netns/nft-elements.test.ts compares the
 * expressions, checksum fixes included, with nft's.
 */
import t from 'tap';
import { CLIENT_IP, LB_IP, createLab, LAB_VIP, type Lab } from '../../lab/lab.js';
import { startLabDaemon, type LabDaemon } from '../../lab/daemon.js';
import { openDatabase } from '../../src/store/db.js';
import { Store } from '../../src/store/store.js';

const VIP = LAB_VIP;
const FARMS = 1200;
/** Port of farm i: farms 0 and 1100 are served by the backends' HTTP servers. */
const portOf = (i: number) => 20000 + i;
let lab: Lab;

t.before(async () => {
  lab = await createLab({ prefix: 'nfcold', backends: 2 });
  await lab.configureDsrBackends(VIP);
  await lab.startHttpBackends(portOf(0));
  await lab.startHttpBackends(portOf(1100));
});
t.teardown(async () => lab?.destroy());

function prepareStore(dbPath: string, nattype: 'dsr' | 'stateless_dnat') {
  const store = new Store(openDatabase(dbPath));
  store.write((g) => {
    for (let i = 0; i < FARMS; i++) {
      const farm = store.insertFarm({ name: `f${i}`, vip: VIP, vport: String(portOf(i)), protocol: 'tcp', nattype, algorithm: 'weight', persistence: '', ttl: 60, running: true }, g);
      // Farm 1100 gives b1 three times b2's weight.
      lab.backends.forEach((b, k) => store.insertBackend(farm.id, { ip: b.ip, port: null, weight: i === 1100 && k === 0 ? 3 : 1, priority: 1, maxConns: 0 }, g));
    }
  });
  store.close();
}

const applied = async (daemon: LabDaemon) => {
  const s = (await daemon.api('GET', '/system/status?farms=false')).body?.params;
  return s !== undefined && s.applied_generation === s.store_generation && s.last_error === null;
};

t.test(`${FARMS} DSR farms loaded at start: every chunk serves, as nft would have written it`, async (t) => {
  // Debug logs say how each chunk's structure was written.
  const daemon = await startLabDaemon(t, lab, { NFTFARM_LOG_LEVEL: 'debug' }, {
    beforeStart: (dbPath) => prepareStore(dbPath, 'dsr'),
  });
  t.ok(await daemon.until(() => applied(daemon), 60_000), 'every farm applied');

  await t.test('a farm of the first chunk and one of the third both serve, through both backends', async (t) => {
    for (const i of [0, 1100]) {
      const result = await lab.httpMany(`http://${VIP}:${portOf(i)}/`, 60);
      t.equal(result.ok, 60, `farm f${i}: all 60 answered ${JSON.stringify(result.errors)}`);
      t.ok((result.byBackend.b1 ?? 0) > 0 && (result.byBackend.b2 ?? 0) > 0, `farm f${i}: both backends used ${JSON.stringify(result.byBackend)}`);
    }
    const weighted = await lab.httpMany(`http://${VIP}:${portOf(1100)}/`, 200);
    const share = (weighted.byBackend.b1 ?? 0) / 200;
    t.ok(share > 0.62 && share < 0.88, `f1100: b1 (weight 3 of 4) got ${Math.round(share * 100)}% of new flows`);
  });

  await t.test("the later chunks' farm chains hold what the renderer wrote, as nft lists it", async (t) => {
    const ruleset = await daemon.nft(['list', 'table', 'netdev', 'nftfarm']);
    const chains = [...ruleset.matchAll(/chain (farm_\d+) \{\n([\s\S]*?)\n\t\}/g)];
    t.equal(chains.length, FARMS, 'a chain per farm');
    const shapes = new Set(chains.map(([, , body]) => body!.replace(/offset \d+/, 'offset N').replace(/meta mark set 0x[0-9a-f]{8} jump/, 'meta mark set M jump')));
    t.equal(shapes.size, 1, `one shape for all farms, whichever way they were written: ${[...shapes].slice(0, 3).join('\n---\n')}`);
    t.match([...shapes][0], /jump pin_dsr_tcp_eth0\n\t\tmeta mark 0x00000000 meta mark set jhash ip saddr \. ip daddr \. th sport \. th dport mod 64 seed 0x6e667466 offset N\n\t\tjump serve_dsr_tcp_eth0\n\t\tmeta mark set M jump count_drop/);
    const load = /\{[^\n]*"msg":"loaded the tables as they were planned \(pipelined\)"\}/.exec(daemon.logs());
    t.ok(load, 'the first load was pipelined (in the load writer\'s helper process)');
    const counts = JSON.parse(load?.[0] ?? '{}');
    t.equal(counts.structureViaNft, 1, 'the first chunk (the tables) through nft');
    t.ok(counts.structureViaNetlink >= 2, `the later chunks' chains over netlink (${counts.structureViaNetlink})`);
    t.notMatch(daemon.logs(), /the first load failed part way/, 'no fallback to the chunk-by-chunk load');
  });

  await t.test('a restart adopts the loaded kernel and keeps serving', async (t) => {
    const stopped = await daemon.stop('SIGTERM');
    t.same(stopped, { code: 0, signal: null });
    await daemon.start();
    t.ok(await daemon.until(() => applied(daemon), 30_000), 'converged');
    t.match(daemon.logs(), /adopted the rules the kernel holds/);
    const result = await lab.httpMany(`http://${VIP}:${portOf(1100)}/`, 40);
    t.equal(result.ok, 40, 'still served');
  });
});

t.test(`${FARMS} stateless_dnat farms loaded at start: replies rewritten by chains written over netlink`, async (t) => {
  // stateless_dnat: the backends answer from their own address, routed back through the load
  // balancer, whose reply chain puts the VIP back as the source.
  for (const b of lab.backends) await lab.execOk(b.ns, ['ip', 'route', 'replace', `${CLIENT_IP}/32`, 'via', LB_IP]);
  // A first load: the previous test's daemon left its tables in the kernel (as a stop does).
  for (const table of ['netdev nftfarm', 'inet nftfarm']) await lab.exec(lab.lb.ns, ['nft', 'delete', 'table', ...table.split(' ')]);
  t.teardown(async () => {
    for (const b of lab.backends) await lab.exec(b.ns, ['ip', 'route', 'del', `${CLIENT_IP}/32`]);
  });
  const daemon = await startLabDaemon(t, lab, { NFTFARM_LOG_LEVEL: 'debug' }, { beforeStart: (dbPath) => prepareStore(dbPath, 'stateless_dnat') });
  t.ok(await daemon.until(() => applied(daemon), 60_000), 'every farm applied');
  t.match(daemon.logs(), /"structureViaNetlink":[1-9]\d*,[^\n]*"msg":"loaded the tables as they were planned \(pipelined\)"/, 'chunks went over netlink');
  for (const i of [0, 1100]) {
    const result = await lab.httpMany(`http://${VIP}:${portOf(i)}/`, 60);
    t.equal(result.ok, 60, `farm f${i}: all 60 answered ${JSON.stringify(result.errors)}`);
    t.ok((result.byBackend.b1 ?? 0) > 0 && (result.byBackend.b2 ?? 0) > 0, `farm f${i}: both backends used ${JSON.stringify(result.byBackend)}`);
    for (const sample of result.samples) t.match(sample.client, new RegExp(`^${CLIENT_IP.replace(/\./g, '\\.')}:`), 'the backend sees the client');
  }
  const ruleset = await daemon.nft(['list', 'table', 'netdev', 'nftfarm']);
  const replies = [...ruleset.matchAll(/chain farm_\d+_replies \{\n([\s\S]*?)\n\t\}/g)].map(([, body]) => body!.trim());
  t.equal(replies.length, FARMS, 'a replies chain per farm');
  t.same([...new Set(replies)], [`ip saddr set ${VIP} accept`], 'each rewrites the source to the VIP');
});
