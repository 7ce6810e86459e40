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
  t.ok(index('add map netdev nftfarm farm_1_macs') < index('add rule netdev nftfarm farm_1 '), 'maps before rules that use them');
  t.ok(index('add chain netdev nftfarm farm_1') < index('add element netdev nftfarm ipv4_vip_ports'), 'chains before the jumps to them');
});

t.test('adding a backend to one farm touches only that farm', async (t) => {
  // 3 -> 4 backends keeps the table size (509): only elements change.
  const three = [...webBackends, backend(5, 1, 2, '10.250.0.25')];
  const before = render([
    { farm: web, backends: three },
    { farm: api, backends: apiBackends },
  ]);
  const after = render([
    { farm: { ...web, generation: 2 }, backends: [...three, backend(6, 1, 3, '10.250.0.26')] },
    { farm: api, backends: apiBackends },
  ]);
  const commands = plan(before, after);
  t.same([...farmsTouched(commands)], ['1']);
  t.notOk(commands.some((c) => c.startsWith('flush chain')), 'no chain is reloaded: only map elements change');
  t.notOk(commands.some((c) => c.includes('farm_1_flows')), 'the flow pins are not touched');
  t.ok(commands.some((c) => c.startsWith('add element netdev nftfarm farm_1_macs { 6 : 02:00:0a:fa:00:1a }')));
  const moved = commands.filter((c) => c.startsWith('add element netdev nftfarm farm_1_buckets')).join().split(' : ').length - 1;
  t.ok(moved > 80 && moved < 200, `about a quarter of the 509 buckets move to the new backend (${moved})`);
});

t.test('growing past the table size re-creates the buckets map and reloads the chain, keeping the pins', async (t) => {
  const after = render([
    { farm: web, backends: [...webBackends, backend(5, 1, 2, '10.250.0.25')] },
    { farm: api, backends: apiBackends },
  ]);
  const commands = plan(both, after);
  t.ok(commands.includes('delete map netdev nftfarm farm_1_buckets'));
  t.ok(commands.includes('flush chain netdev nftfarm farm_1'));
  t.notOk(commands.some((c) => /^(delete|flush) map netdev nftfarm farm_1_flows/.test(c)));
  t.same([...farmsTouched(commands)], ['1']);
});

t.test('a changed bucket is replaced by delete + add in the same transaction', async (t) => {
  const after = render([
    { farm: web, backends: [webBackends[0]!] },
    { farm: api, backends: apiBackends },
  ]);
  const commands = plan(both, after);
  const del = commands.findIndex((c) => c.startsWith('delete element netdev nftfarm farm_1_buckets'));
  const add = commands.findIndex((c) => c.startsWith('add element netdev nftfarm farm_1_buckets'));
  t.ok(del >= 0 && add > del, 'delete the old values first, then add the new ones');
  t.same([...farmsTouched(commands)], ['1']);
});

t.test('deleting a farm: jumps removed before its chain, chain before its maps; flows map dropped too', async (t) => {
  const after = render([{ farm: api, backends: apiBackends }]);
  const commands = plan(both, after);
  const at = (text: string) => commands.findIndex((c) => c === text || c.startsWith(text));
  t.ok(at('delete element netdev nftfarm ipv4_vip_ports') < at('delete chain netdev nftfarm farm_1'));
  t.ok(at('flush chain netdev nftfarm farm_1') < at('delete chain netdev nftfarm farm_1'));
  t.ok(at('flush chain netdev nftfarm farm_1') < at('delete map netdev nftfarm farm_1_flows'), 'rules using a map go before the map');
  t.ok(commands.includes('delete map netdev nftfarm farm_1_flows'));
  t.same([...farmsTouched(commands)], ['1']);
});

t.test('the last farm gone: the table goes', async (t) => {
  t.same(plan(both, null), ['delete table netdev nftfarm']);
  t.same(planTransaction(null, null, TABLE_FAMILY, TABLE_NAME), []);
});

t.test('changing the protocol to one with another flow key re-creates only that farm\'s flow map', async (t) => {
  const after = render([
    { farm: { ...web, protocol: 'all', vport: '*' }, backends: webBackends },
    { farm: api, backends: apiBackends },
  ]);
  const commands = plan(both, after);
  t.ok(commands.includes('delete map netdev nftfarm farm_1_flows'));
  t.ok(commands.includes('flush chain netdev nftfarm farm_1'), 'the chain that used it is reloaded first');
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
    { map: { family: 'netdev', name: 'farm_1_flows', table: 'nftfarm', type: ['ipv4_addr', 'ipv4_addr', 'inet_service', 'inet_service'], map: 'mark', size: 1048576, flags: ['timeout'], timeout: 900 } },
    { map: { family: 'netdev', name: 'farm_9_flows', table: 'nftfarm', type: ['ipv4_addr', 'ipv4_addr', 'inet_service', 'inet_service'], map: 'mark', flags: ['timeout'], timeout: 900 } },
    { chain: { family: 'netdev', table: 'nftfarm', name: 'farm_1', handle: 3 } },
    { chain: { family: 'netdev', table: 'nftfarm', name: 'farm_9', handle: 4 } },
    { rule: { family: 'netdev', table: 'nftfarm', chain: 'farm_1', handle: 5, expr: [] } },
    { rule: { family: 'netdev', table: 'nftfarm', chain: 'farm_1', handle: 6, expr: [] } },
  ],
});

t.test('reading the kernel from a terse listing: only our table, dynamic maps recognised', async (t) => {
  const kernel = kernelTableFromListing(listing, TABLE_FAMILY, TABLE_NAME)!;
  t.same([...kernel.chains.keys()], ['farm_1', 'farm_9']);
  t.equal(kernel.sets.get('farm_1_flows')?.dynamic, true);
  t.equal(kernel.sets.get('ipv4_vip_ports')?.dynamic, false);
  t.same([...kernel.chains].map(([name, c]) => [name, c.listedRules]), [['farm_1', 2], ['farm_9', 0]], 'rules counted per chain');
  t.equal(kernelTableFromListing(JSON.stringify({ nftables: [] }), TABLE_FAMILY, TABLE_NAME), null);
});

t.test('a full resync after a restart keeps the flow pins of kept farms and removes what is gone', async (t) => {
  const kernel = kernelTableFromListing(listing, TABLE_FAMILY, TABLE_NAME);
  const commands = planTransaction(kernel, render([{ farm: web, backends: webBackends }]), TABLE_FAMILY, TABLE_NAME);
  t.notOk(commands.some((c) => / farm_1_flows\b/.test(c) && !c.startsWith('add map')), 'farm_1_flows is neither flushed nor deleted');
  t.ok(commands.includes('delete map netdev nftfarm farm_9_flows'), 'the flows of a farm deleted while down go');
  t.ok(commands.includes('delete chain netdev nftfarm farm_9'));
  t.ok(commands.includes('flush chain netdev nftfarm farm_1'), 'kept chains are reloaded (their content is unknown)');
  t.ok(commands.includes('delete map netdev nftfarm ipv4_vip_ports'), 'static maps are rebuilt from the store');
  t.notOk(commands.some((c) => c.includes('inet filter')), 'other tables are never touched');
});
