import t from 'tap';
import { knownKernelTable, kernelTableFromListing, planTransaction } from '../../src/dataplane/nft/ruleset.js';
import { desiredState } from '../../src/reconcile/desired.js';
import { renderTable } from '../../src/reconcile/render.js';
import { TABLE_FAMILY, TABLE_NAME } from '../../src/reconcile/names.js';
import { backend, facts, farm, snapshot } from '../helpers/fixtures.js';
import type { Backend, Farm } from '../../src/model/farm.js';

const render = (entries: { farm: Farm; backends?: Backend[] }[]) => renderTable(desiredState(snapshot(entries), facts()));
const plan = (from: ReturnType<typeof render>, to: ReturnType<typeof render>) =>
  planTransaction(from ? knownKernelTable(from) : null, to, TABLE_FAMILY, TABLE_NAME);

const web = farm(1, { name: 'web' });
const api = farm(2, { name: 'api', vip: '10.250.0.101' });
const webBackends = [backend(1, 1, 0, '10.250.0.21'), backend(2, 1, 1, '10.250.0.22')];
const apiBackends = [backend(3, 2, 0, '10.250.0.23'), backend(4, 2, 1, '10.250.0.24')];
const both = render([
  { farm: web, backends: webBackends },
  { farm: api, backends: apiBackends },
]);

/** The farm objects a command touches (farm_N...), for "only what changed" checks. */
const farmsTouched = (commands: string[]): Set<string> =>
  new Set(commands.flatMap((c) => [...c.matchAll(/\bfarm_(\d+)/g)].map((m) => m[1] as string)));

t.test('nothing changed: no transaction', async (t) => {
  t.same(plan(both, both), []);
});

t.test('a fresh kernel gets the whole table in one transaction, objects before their users', async (t) => {
  const commands = plan(null, both);
  t.equal(commands[0], 'add table netdev nftfarm');
  const index = (prefix: string) => commands.findIndex((c) => c.startsWith(prefix));
  t.ok(index('add map netdev nftfarm backend_macs') < index('add rule netdev nftfarm farm_1 '), 'maps before rules that use them');
  t.ok(index('add chain netdev nftfarm farm_1') < index('add element netdev nftfarm ipv4_vip_ports'), 'chains before the jumps to them');
});

const sharedTables = (commands: string[]): string[] => [...new Set(commands.flatMap((c) => [...c.matchAll(/\bhrw_[0-9a-f]+/g)].map((m) => m[0])))];

t.test('adding a backend to one farm: its chain moves to the table of its new shape, the other farm is untouched', async (t) => {
  const three = [...webBackends, backend(5, 1, 2, '10.250.0.25')];
  const before = render([
    { farm: web, backends: three },
    { farm: api, backends: apiBackends },
  ])!;
  const after = render([
    { farm: { ...web, generation: 2 }, backends: [...three, backend(6, 1, 3, '10.250.0.26')] },
    { farm: api, backends: apiBackends },
  ])!;
  const commands = plan(before, after);
  t.same([...farmsTouched(commands)], ['1']);
  t.notOk(commands.some((c) => /flows_/.test(c) && !c.startsWith('add rule')), 'the flow pins are not touched');
  t.ok(commands.includes('flush chain netdev nftfarm farm_1'), 'the chain now names the new table');
  // Slot marks: 0x40000000 + farm id x 1024 + slot.
  t.ok(commands.some((c) => c.startsWith('add element netdev nftfarm backend_slots { 1073742851 : 6 }')), 'farm 1 slot 3 is the new backend');
  t.ok(commands.some((c) => c.startsWith('add element netdev nftfarm backend_macs { 6 : 02:00:0a:fa:00:1a }')));
  const tableOf = (decl: typeof before, farmId: number) =>
    decl.sets.find((s) => s.name === decl.chains.find((c) => c.name === `farm_${farmId}`)!.rules.join(' ').match(/hrw_[0-9a-f]+/)![0])!;
  const oldTable = tableOf(before, 1);
  const newTable = tableOf(after, 1);
  t.ok(commands.includes(`delete map netdev nftfarm ${oldTable.name}`), 'the 3-slot table no farm uses any more goes');
  t.notOk(commands.includes(`delete map netdev nftfarm ${tableOf(before, 2).name}`), "the other farm's table stays");
  let moved = 0;
  for (const [bucket, slot] of oldTable.elements!) {
    if (newTable.elements!.get(bucket) === slot) continue;
    moved++;
    t.equal(newTable.elements!.get(bucket), '1073741827', 'a moved bucket went to the new slot');
  }
  const share = moved / oldTable.elements!.size;
  t.ok(share > 0.23 && share < 0.27, `a quarter of the buckets move to the new backend (${moved})`);
});

t.test('farms of the same shape share one table: a farm joining a shape loads no table', async (t) => {
  const apiThree = [...apiBackends, backend(7, 2, 2, '10.250.0.27')];
  const before = render([
    { farm: web, backends: webBackends },
    { farm: api, backends: apiThree },
  ]);
  const after = render([
    { farm: web, backends: [...webBackends, backend(5, 1, 2, '10.250.0.25')] },
    { farm: api, backends: apiThree },
  ]);
  t.equal(after!.sets.filter((s) => s.name.startsWith('hrw_')).length, 1, 'one table for two farms of 3 equal backends');
  const commands = plan(before, after);
  t.notOk(commands.some((c) => /^add (map|element) netdev nftfarm hrw_/.test(c)), 'no table is loaded');
  t.equal(sharedTables(commands.filter((c) => c.startsWith('delete map'))).length, 1, 'the 2-slot table no farm uses any more goes');
  t.same([...farmsTouched(commands)], ['1']);
});

t.test('a slot taken by another backend is replaced by delete + add in the same transaction', async (t) => {
  // Backend 0 deleted and a new one added: it gets id 0 again (the lowest free), a new mark.
  const after = render([
    { farm: web, backends: [backend(8, 1, 0, '10.250.0.28'), webBackends[1]!] },
    { farm: api, backends: apiBackends },
  ]);
  const commands = plan(both, after);
  const del = commands.findIndex((c) => c === 'delete element netdev nftfarm backend_slots { 1073742848 }');
  const add = commands.findIndex((c) => c.startsWith('add element netdev nftfarm backend_slots { 1073742848 : 8 }'));
  t.ok(del >= 0 && add > del, 'delete the old value first, then add the new one');
  t.notOk(commands.some((c) => c.includes('hrw_')), 'the shape is the same: the shared table is not touched');
  t.same([...farmsTouched(commands)], [], 'only table-wide elements change: no chain is reloaded');
});

t.test('deleting a farm: jumps removed before its chain, chain before its maps, its elements gone from the table-wide maps', async (t) => {
  const after = render([{ farm: { ...api, persistence: 'srcip' }, backends: apiBackends }]);
  const before = render([
    { farm: { ...web, persistence: 'srcip' }, backends: webBackends },
    { farm: { ...api, persistence: 'srcip' }, backends: apiBackends },
  ]);
  const commands = plan(before, after);
  const at = (text: string) => commands.findIndex((c) => c === text || c.startsWith(text));
  t.ok(at('delete element netdev nftfarm ipv4_vip_ports') < at('delete chain netdev nftfarm farm_1'));
  t.ok(at('flush chain netdev nftfarm farm_1') < at('delete chain netdev nftfarm farm_1'));
  t.ok(at('flush chain netdev nftfarm farm_1') < at('delete map netdev nftfarm farm_1_sessions'), 'rules using a map go before the map');
  t.ok(commands.includes('delete map netdev nftfarm farm_1_sessions'));
  t.ok(commands.some((c) => c.startsWith('delete element netdev nftfarm backend_macs { 1, 2 }')), "its backends leave the macs map");
  t.notOk(commands.some((c) => /^(delete|flush) map netdev nftfarm flows_/.test(c)), 'the shared flow maps stay');
  t.same([...farmsTouched(commands)], ['1']);
});

t.test('the last farm gone: the table goes', async (t) => {
  t.same(plan(both, null), ['delete table netdev nftfarm']);
  t.same(planTransaction(null, null, TABLE_FAMILY, TABLE_NAME), []);
});

t.test('changing the protocol moves the farm to the flow map of its protocol; no map is re-created', async (t) => {
  const after = render([
    { farm: { ...web, protocol: 'all', vport: '*' }, backends: webBackends },
    { farm: api, backends: apiBackends },
  ]);
  const commands = plan(both, after);
  t.ok(commands.includes('flush chain netdev nftfarm farm_1'), 'the chain is reloaded');
  t.ok(commands.includes('add rule netdev nftfarm farm_1 jump pin_any'), 'it pins by addresses now');
  t.ok(commands.some((c) => c.startsWith('add rule netdev nftfarm pin_any meta mark set ip saddr . ip daddr map @flows_any')));
  t.notOk(commands.some((c) => c.startsWith('delete map')), 'no map goes');
  t.notOk(commands.some((c) => c.includes('farm_2')));
});

t.test('a changed persistence ttl updates the sessions map in place (add with the new timeout)', async (t) => {
  const before = render([{ farm: { ...web, persistence: 'srcip', ttl: 60 }, backends: webBackends }]);
  const after = render([{ farm: { ...web, persistence: 'srcip', ttl: 300 }, backends: webBackends }]);
  const commands = plan(before, after);
  t.ok(commands.some((c) => c.startsWith('add map netdev nftfarm farm_1_sessions {') && c.includes('timeout 300s')));
  t.notOk(commands.some((c) => c.startsWith('delete map')), 'sessions are kept');
});

const listing = JSON.stringify({
  nftables: [
    { metainfo: { version: '1.0.6' } },
    { table: { family: 'inet', name: 'filter', handle: 1 } },
    { chain: { family: 'inet', table: 'filter', name: 'input', handle: 1 } },
    { table: { family: 'netdev', name: 'nftfarm', handle: 2 } },
    { map: { family: 'netdev', name: 'ipv4_vip_ports', table: 'nftfarm', type: ['ipv4_addr', 'inet_proto', 'inet_service'], map: 'verdict', flags: ['interval'] } },
    { map: { family: 'netdev', name: 'flows_tcp', table: 'nftfarm', type: ['ipv4_addr', 'ipv4_addr', 'inet_service', 'inet_service'], map: 'mark', size: 4194304, flags: ['timeout'], timeout: 900 } },
    { map: { family: 'netdev', name: 'farm_9_sessions', table: 'nftfarm', type: ['ipv4_addr'], map: 'mark', flags: ['timeout'], timeout: 60 } },
    { chain: { family: 'netdev', table: 'nftfarm', name: 'farm_1', handle: 3 } },
    { chain: { family: 'netdev', table: 'nftfarm', name: 'farm_9', handle: 4 } },
    { rule: { family: 'netdev', table: 'nftfarm', chain: 'farm_1', handle: 5, expr: [] } },
    { rule: { family: 'netdev', table: 'nftfarm', chain: 'farm_1', handle: 6, expr: [] } },
  ],
});

t.test('reading the kernel from a terse listing: only our table, dynamic maps recognised', async (t) => {
  const kernel = kernelTableFromListing(listing, TABLE_FAMILY, TABLE_NAME)!;
  t.same([...kernel.chains.keys()], ['farm_1', 'farm_9']);
  t.equal(kernel.sets.get('flows_tcp')?.dynamic, true);
  t.equal(kernel.sets.get('ipv4_vip_ports')?.dynamic, false);
  t.same([...kernel.chains].map(([name, c]) => [name, c.listedRules]), [['farm_1', 2], ['farm_9', 0]], 'rules counted per chain');
  t.equal(kernelTableFromListing(JSON.stringify({ nftables: [] }), TABLE_FAMILY, TABLE_NAME), null);
});

t.test('a full resync after a restart keeps the flow pins of kept farms and removes what is gone', async (t) => {
  const kernel = kernelTableFromListing(listing, TABLE_FAMILY, TABLE_NAME);
  const commands = planTransaction(kernel, render([{ farm: web, backends: webBackends }]), TABLE_FAMILY, TABLE_NAME);
  t.notOk(commands.some((c) => / flows_tcp\b/.test(c) && !c.startsWith('add map') && !c.startsWith('add rule')), 'flows_tcp is neither flushed nor deleted');
  t.ok(commands.includes('delete map netdev nftfarm farm_9_sessions'), 'the sessions of a farm deleted while down go');
  t.ok(commands.includes('delete chain netdev nftfarm farm_9'));
  t.ok(commands.includes('flush chain netdev nftfarm farm_1'), 'kept chains are reloaded (their content is unknown)');
  t.ok(commands.includes('delete map netdev nftfarm ipv4_vip_ports'), 'static maps are rebuilt from the store');
  t.notOk(commands.some((c) => c.includes('inet filter')), 'other tables are never touched');
});
