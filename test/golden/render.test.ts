/**
 * Golden tests of the pure renderer: desired state -> nft text. Every golden file must also
 * be accepted by the kernel's parser (`nft -c -f`). UPDATE_GOLDEN=1 rewrites the files.
 */
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import t from 'tap';
import { desiredState, isRendered, type DesiredState } from '../../src/reconcile/desired.js';
import { renderFarm } from '../../src/reconcile/farm-render.js';
import { assembleTables, type AssembledTables } from '../../src/reconcile/assemble.js';
import { renderTableText } from '../../src/dataplane/nft/objects.js';
import { backend, facts, farm, snapshot } from '../helpers/fixtures.js';
import { nftNamespace } from '../helpers/netns.js';
import type { Snapshot } from '../../src/store/store.js';
import type { HostFacts } from '../../src/reconcile/desired.js';

const dir = path.dirname(fileURLToPath(import.meta.url));

interface Case {
  name: string;
  snapshot: Snapshot;
  facts?: HostFacts;
}

const cases: Case[] = [
  {
    name: 'single-dsr-farm',
    snapshot: snapshot([
      {
        farm: farm(1, { name: 'web' }),
        backends: [backend(1, 1, 0, '10.250.0.21', { port: 80 }), backend(2, 1, 1, '10.250.0.22')],
      },
    ]),
  },
  {
    name: 'many-farms',
    snapshot: snapshot(
      [
        {
          // Port list and range, source-IP persistence, source-IP hashing, weights.
          farm: farm(3, { name: 'shop', vport: '80,443,8000:8100', algorithm: 'hash_srcip', persistence: 'srcip', ttl: 120 }),
          backends: [
            backend(10, 3, 0, '10.250.0.21', { weight: 3 }),
            backend(11, 3, 1, '10.250.0.22'),
            // Standby: a lower priority value is up.
            backend(12, 3, 2, '10.250.0.23', { priority: 2 }),
            // Draining: keeps its pinned flows (in the macs map), gets no new ones.
            backend(13, 3, 3, '10.250.0.24', { maintenance: 'drain' }),
            // Cut: nothing at all.
            backend(14, 3, 4, '10.250.0.25', { maintenance: 'cut' }),
            // No MAC address known yet.
            backend(15, 3, 5, '10.250.0.77'),
          ],
        },
        {
          farm: farm(4, { name: 'dns', vip: '10.250.0.101', vport: '53', protocol: 'udp', algorithm: 'roundrobin', persistence: 'srcip_srcport' }),
          backends: [backend(20, 4, 0, '10.250.0.21', { weight: 2 }), backend(21, 4, 1, '10.250.0.22')],
        },
        {
          farm: farm(5, { name: 'any', vip: '10.250.0.102', vport: '*', protocol: 'all', algorithm: 'hash_srcip_srcport' }),
          backends: [backend(30, 5, 0, '10.250.0.21')],
        },
        // The VIP is the load balancer's own address: no proxy ARP, no guard.
        { farm: farm(6, { name: 'local', vip: '10.250.0.2', vport: '8443' }), backends: [backend(40, 6, 0, '10.250.0.22')] },
        // Stopped: no rules. A nat farm: accepted here, served by the ip table.
        { farm: farm(7, { name: 'stopped', vip: '10.250.0.103', running: false }), backends: [backend(50, 7, 0, '10.250.0.21')] },
        { farm: farm(8, { name: 'snat', vip: '10.250.0.104', nattype: 'nat' }), backends: [backend(60, 8, 0, '10.250.0.21')] },
        // Running, no backend: dispatched and counted, then dropped.
        { farm: farm(9, { name: 'empty', vip: '10.250.0.105', vport: '25', persistence: 'srcmac' }) },
      ],
      7,
    ),
  },
  {
    name: 'every-mode',
    snapshot: snapshot(
      [
        {
          // Source NAT, a backend on another port, persistence by source MAC, one drained.
          farm: farm(1, { name: 'snat', nattype: 'nat', persistence: 'srcmac', ttl: 300 }),
          backends: [
            backend(1, 1, 0, '10.250.0.21', { port: 8080, weight: 2 }),
            backend(2, 1, 1, '10.250.0.22'),
            backend(3, 1, 2, '10.250.0.23', { maintenance: 'drain' }),
            backend(4, 1, 3, '10.250.0.24', { maintenance: 'cut' }),
          ],
        },
        {
          // Destination NAT, leastconn: the least loaded backends take new flows in turn.
          farm: farm(2, { name: 'dnat', nattype: 'dnat', vip: '10.250.0.101', vport: '443,8000:8100', algorithm: 'leastconn' }),
          backends: [backend(5, 2, 0, '10.250.0.21'), backend(6, 2, 1, '10.250.0.22'), backend(7, 2, 2, '10.250.0.23', { weight: 2, maxConns: 10 })],
        },
        {
          // Stateless DNAT with a backend port: requests rewritten, replies restored.
          farm: farm(3, { name: 'stateless', nattype: 'stateless_dnat', vip: '10.250.0.102', vport: '53', protocol: 'udp', persistence: 'srcip' }),
          backends: [backend(8, 3, 0, '10.250.0.21', { port: 5353 }), backend(9, 3, 1, '10.250.0.22')],
        },
        {
          farm: farm(4, { name: 'stateless-all', nattype: 'stateless_dnat', vip: '10.250.0.103', vport: '*', protocol: 'all' }),
          backends: [backend(10, 4, 0, '10.250.0.31')],
        },
        { farm: farm(5, { name: 'dsr', vip: '10.250.0.104', algorithm: 'leastconn' }), backends: [backend(11, 5, 0, '10.250.0.21')] },
        {
          // SCTP (rendered and loaded; this kernel has no SCTP for traffic), a backend port.
          farm: farm(6, { name: 'diameter', nattype: 'dnat', vip: '10.250.0.105', vport: '3868', protocol: 'sctp', persistence: 'srcip_dstport' }),
          backends: [backend(12, 6, 0, '10.250.0.21', { port: 3869 }), backend(13, 6, 1, '10.250.0.22')],
        },
      ],
      6,
    ),
    facts: facts({ connections: new Map([[5, 3], [6, 1], [7, 2]]) }),
  },
  {
    // IPv6 VIPs (issue 13) beside an IPv4 one on the same interface: the same shapes on ip6.
    name: 'ipv6-farms',
    snapshot: snapshot(
      [
        {
          farm: farm(1, { name: 'web6', vip: 'fd00:250::100', vport: '80,443,8000:8100', persistence: 'srcip' }),
          backends: [backend(1, 1, 0, 'fd00:250::21', { port: 80 }), backend(2, 1, 1, 'fd00:250::22', { weight: 2 }), backend(3, 1, 2, 'fd00:250::23', { maintenance: 'drain' })],
        },
        {
          farm: farm(2, { name: 'dns6', vip: 'fd00:250::101', vport: '53', protocol: 'udp', nattype: 'stateless_dnat', algorithm: 'hash_srcip_srcport', persistence: 'srcport' }),
          backends: [backend(4, 2, 0, 'fd00:250::21', { port: 5353 }), backend(5, 2, 1, 'fd00:250::22')],
        },
        {
          farm: farm(3, { name: 'any6', vip: 'fd00:250::102', vport: '*', protocol: 'all', algorithm: 'hash_srcip' }),
          backends: [backend(6, 3, 0, 'fd00:250::21')],
        },
        { farm: farm(4, { name: 'web4', vip: '10.250.0.100', vport: '80' }), backends: [backend(7, 4, 0, '10.250.0.21')] },
        // A second IPv6 farm on a VIP already guarded: the guard is shared.
        { farm: farm(5, { name: 'web6b', vip: 'fd00:250::100', vport: '8443', protocol: 'udp' }), backends: [backend(8, 5, 0, 'fd00:250::22')] },
        // The conntrack modes on IPv6: the inet table's ip6 paths.
        {
          farm: farm(6, { name: 'nat6', vip: 'fd00:250::103', vport: '80', nattype: 'nat', persistence: 'srcip' }),
          backends: [backend(9, 6, 0, 'fd00:250::21', { port: 8080 }), backend(10, 6, 1, 'fd00:250::22')],
        },
        { farm: farm(7, { name: 'dnat6', vip: 'fd00:250::104', vport: '*', protocol: 'all', nattype: 'dnat' }), backends: [backend(11, 7, 0, 'fd00:250::23')] },
      ],
      7,
    ),
  },
];

/** Both tables, whole, as the renderer makes them from the desired state. */
const renderTables = (state: DesiredState): AssembledTables => assembleTables(state.farms.filter(isRendered).map(renderFarm));

const tablesText = (r: AssembledTables): string =>
  [r.netdev, r.ip].filter((x) => x !== null).map((x) => renderTableText(x)).join('\n');

const golden = (name: string) => path.join(dir, `${name}.nft`);

t.test('rendered tables match the golden files', async (t) => {
  for (const c of cases) {
    const tables = renderTables(desiredState(c.snapshot, c.facts ?? facts()));
    t.ok(tables.netdev, `${c.name} renders a table`);
    const text = tablesText(tables);
    if (process.env.UPDATE_GOLDEN === '1') fs.writeFileSync(golden(c.name), text);
    t.equal(text, fs.readFileSync(golden(c.name), 'utf8'), `${c.name}.nft is what the renderer produces (UPDATE_GOLDEN=1 to refresh)`);
  }
});

t.test('no running supported farm means no table at all', async (t) => {
  const state = desiredState(
    snapshot([{ farm: farm(1, { running: false }) }, { farm: farm(2, { nattype: 'dnat', vip: '192.0.2.103' }) }]),
    facts(),
  );
  t.same(renderTables(state), { netdev: null, ip: null });
  t.same(state.announcements, []);
  t.match(state.farms[1]!.problem, /no up interface has a network holding the VIP 192.0.2.103/);
});

t.test('the same configuration renders the same text whatever the store order (ECMP nodes agree)', async (t) => {
  const a = cases[1]!.snapshot;
  const shuffled: Snapshot = {
    generation: a.generation,
    farms: [...a.farms].reverse().map((f) => ({ ...f, backends: [...f.backends].reverse() })),
  };
  t.equal(tablesText(renderTables(desiredState(shuffled, facts()))), tablesText(renderTables(desiredState(a, facts()))));
});

t.test('the kernel parser accepts every golden file (nft -c -f)', async (t) => {
  const ns = nftNamespace(t, 'nfgold');
  for (const c of cases) {
    const result = ns.nft(['-c', '-f', golden(c.name)]);
    t.equal(result.status, 0, `${c.name}.nft: ${result.stderr}`);
  }
  // The check is real: a broken file is refused.
  const broken = ns.nft(['-c', '-f', '-'], 'table netdev nftfarm {\n\tchain c {\n\t\tmeta mark set ip saddr map @missing\n\t}\n}\n');
  t.not(broken.status, 0, 'nft -c refuses a reference to a missing map');
});

t.test('golden files load into the kernel and list back with the same objects', async (t) => {
  const ns = nftNamespace(t, 'nfgoldload');
  for (const c of cases) {
    const loaded = ns.nft(['-f', golden(c.name)]);
    t.equal(loaded.status, 0, `${c.name}.nft loads: ${loaded.stderr}`);
    const tables = renderTables(desiredState(c.snapshot, c.facts ?? facts()));
    for (const table of [tables.netdev, tables.ip]) {
      if (!table) continue;
      const listing = ns.nft(['-t', 'list', 'table', table.family, table.name]).stdout;
      for (const chain of table.chains) t.match(listing, `chain ${chain.name} {`, `${c.name}: chain ${table.family} ${chain.name} is in the kernel`);
      for (const set of table.sets) t.match(listing, `${set.kind} ${set.name} {`, `${c.name}: ${set.kind} ${table.family} ${set.name} is in the kernel`);
      ns.nft(['delete', 'table', table.family, table.name]);
    }
  }
});
