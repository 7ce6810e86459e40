/**
 * The planner (pure): every farm rendered anew for each step (never the same objects twice, so
 * a broken comparison cannot hide behind identity), and every expected command checked for
 * presence before its order.
 */
import t from 'tap';
import { desiredState, type DesiredFarm, type HostFacts } from '../../src/reconcile/desired.js';
import { AppliedState, planChanges } from '../../src/reconcile/plan.js';
import { transactionText } from '../../src/dataplane/nft/transaction.js';
import { consistentTable } from '../../src/reconcile/selection.js';
import { backend, facts, farm, interfaces, snapshot } from '../helpers/fixtures.js';
import type { Backend, Farm } from '../../src/model/farm.js';

type Entry = { farm: Farm; backends?: Backend[] };

/** Each farm's desired state, derived from scratch (the planner renders its objects). */
function render(entries: Entry[], hostFacts: HostFacts = facts()): Map<number, DesiredFarm | null> {
  const state = desiredState(snapshot(entries), hostFacts);
  return new Map(state.farms.map((f) => [f.farmId, f]));
}

/** A state holding `entries` as applied. */
function appliedWith(entries: Entry[]): AppliedState {
  const state = new AppliedState();
  planChanges(state, render(entries)).commit();
  return state;
}

/** The transaction's commands, one per line. */
const commands = (state: AppliedState, changes: Map<number, DesiredFarm | null>): string[] => {
  const text = transactionText(planChanges(state, changes).operations);
  return text === '' ? [] : text.trimEnd().split('\n');
};

/** Asserts every prefix is present, then that they come in this order. */
function inOrder(t: Tap.Test, lines: string[], prefixes: string[], what: string): void {
  const at = prefixes.map((p) => lines.findIndex((l) => l.startsWith(p)));
  prefixes.forEach((p, i) => t.ok(at[i]! >= 0, `${what}: "${p}" is there`));
  for (let i = 1; i < at.length; i++) t.ok(at[i - 1]! < at[i]!, `${what}: "${prefixes[i - 1]}" before "${prefixes[i]}"`);
}

const web = farm(1, { name: 'web' });
const api = farm(2, { name: 'api', vip: '10.250.0.101' });
const webBackends = [backend(1, 1, 0, '10.250.0.21'), backend(2, 1, 1, '10.250.0.22')];
const apiBackends = [backend(3, 2, 0, '10.250.0.23'), backend(4, 2, 1, '10.250.0.24')];
const two: Entry[] = [
  { farm: web, backends: webBackends },
  { farm: api, backends: apiBackends },
];

t.test('nothing changed (rendered anew): no transaction', async (t) => {
  t.same(commands(appliedWith(two), render(two)), []);
});

t.test('a fresh kernel gets everything, objects before their users', async (t) => {
  const lines = commands(new AppliedState(), render(two));
  t.equal(lines[0], 'add table netdev nftfarm');
  inOrder(t, lines, ['add map netdev nftfarm backend_macs', 'add chain netdev nftfarm farm_1', 'add rule netdev nftfarm farm_1 ', 'add element netdev nftfarm ipv4_vip_ports'], 'order');
  inOrder(t, lines, ['add chain netdev nftfarm serve_dsr_tcp_eth0', 'add rule netdev nftfarm farm_2 jump serve_dsr_tcp_eth0'], 'stage before its users');
  const selection = lines.filter((l) => l.startsWith('add element netdev nftfarm selection {')).join(' ');
  t.match(selection, /\{ 2147487744 : \d+, /, "farm 1's region (slot 1: 0x80001000)");
  t.match(selection, / 2147491840 : \d+, /, "farm 2's region (slot 2: 0x80002000)");
  t.equal(selection.split(' : ').length - 1, 128, 'two regions of 64 buckets');
  t.notOk(lines.some((l) => l.includes('table inet')), 'no ip table without a nat farm');
});

t.test('a weight change writes only the buckets that move, in that farm region', async (t) => {
  const state = appliedWith(two);
  const heavier = [webBackends[0]!, { ...webBackends[1]!, weight: 3 }];
  const lines = commands(state, render([{ farm: { ...web, generation: 2 }, backends: heavier }, { farm: api, backends: apiBackends }]));
  const identity = (b: Backend) => ({ identity: `${b.ip}:${b.port ?? ''}`, weight: b.weight, mark: b.uid });
  const before = consistentTable(webBackends.map(identity), 64);
  const after = consistentTable(heavier.map(identity), 64);
  const moved = before.filter((m, i) => m !== after[i]).length;
  t.ok(moved > 0 && moved < 64, `${moved} buckets move`);
  const keys = (verb: string) =>
    lines.filter((l) => l.startsWith(`${verb} element netdev nftfarm selection`)).flatMap((l) => l.replace(/^.*\{ | \}$/g, '').split(', ').map((e) => Number(e.split(' : ')[0])));
  t.equal(keys('delete').length, moved, 'one delete per moved bucket');
  t.equal(keys('add').length, moved, 'one add per moved bucket');
  t.ok(keys('add').every((k) => k >= 0x80001000 && k < 0x80002000), "all in farm 1's region");
  t.strictSame(
    lines.filter((l) => !l.includes(' selection ')),
    [],
    'nothing else: no chain, no other map',
  );
});

t.test('adding a backend: its MAC, its counter and its buckets; the other farm is untouched', async (t) => {
  const state = appliedWith(two);
  const plan = planChanges(state, render([{ farm: { ...web, generation: 2 }, backends: [...webBackends, backend(5, 1, 2, '10.250.0.25')] }, { farm: api, backends: apiBackends }]));
  const lines = transactionText(plan.operations).trimEnd().split('\n');
  t.ok(lines.includes('add element netdev nftfarm backend_macs { 5 : 02:00:0a:fa:00:19 }'), 'its MAC');
  t.ok(lines.includes('add element netdev nftfarm backend_new_flows { 5 }'), 'its new-flow counter');
  t.ok(lines.some((l) => l.startsWith('add element netdev nftfarm selection') && l.includes(': 5')), 'buckets of its own');
  t.notOk(lines.some((l) => /chain|rule|farm_1/.test(l)), 'no chain is rewritten, farm 1 is untouched');
  t.strictSame(plan.touched.get(1), ['backend_macs', 'backend_new_flows', 'selection'], 'the log names what changed for the farm');
  t.notOk(plan.touched.has(2));
});

t.test('a MAC change replaces that element only', async (t) => {
  const state = appliedWith(two);
  const moved = facts({ macOf: (_i, ip) => (ip === '10.250.0.22' ? '02:00:00:00:00:99' : `02:00:0a:fa:00:${Number(ip.split('.')[3]).toString(16)}`) });
  const lines = commands(state, render(two, moved));
  t.strictSame(lines, ['delete element netdev nftfarm backend_macs { 2 }', 'add element netdev nftfarm backend_macs { 2 : 02:00:00:00:00:99 }']);
});

t.test('a farm deleted: its chain, dispatch, region and counters go; shared stages stay while used', async (t) => {
  const state = appliedWith(two);
  const lines = commands(state, new Map([[2, null]]));
  inOrder(t, lines, ['delete element netdev nftfarm ipv4_vip_ports { 10.250.0.101 . tcp . 80 }', 'flush chain netdev nftfarm farm_2', 'delete chain netdev nftfarm farm_2'], 'farm 2 goes');
  t.ok(lines.some((l) => l.startsWith('delete element netdev nftfarm selection { 2147491840')), 'its region');
  t.ok(lines.includes('delete element netdev nftfarm farm_drops { 2 }'), 'its drop counter');
  t.notOk(lines.some((l) => /serve_|pin_|farm_1\b/.test(l)), 'stages and farm 1 stay');
  const last = commands(state, new Map([[1, null], [2, null]]));
  t.strictSame(last, ['delete table netdev nftfarm'], 'the last farm takes the table with it');
});

t.test('a slot reused in the same pass: the chain is rewritten, the elements follow', async (t) => {
  const state = appliedWith([{ farm: web, backends: webBackends }]);
  const other = farm(7, { name: 'other', slot: 1, vip: '10.250.0.107', vport: '443' });
  const lines = commands(state, new Map([...render([{ farm: other, backends: webBackends }]), [1, null]]));
  t.ok(lines.includes('delete element netdev nftfarm ipv4_vip_ports { 10.250.0.100 . tcp . 80 }'));
  t.ok(lines.includes('add element netdev nftfarm ipv4_vip_ports { 10.250.0.107 . tcp . 443 : jump farm_1 }'));
  t.notOk(lines.some((l) => l.startsWith('delete chain')), 'farm_1 is kept and rewritten');
});

t.test('persistence: a ttl change updates the session map in place; a key change re-creates it', async (t) => {
  const sticky = { ...web, persistence: 'srcip' as const, ttl: 60 };
  const state = appliedWith([{ farm: sticky, backends: webBackends }]);
  const ttl = commands(state, render([{ farm: { ...sticky, ttl: 120 }, backends: webBackends }]));
  t.strictSame(ttl, ['add map netdev nftfarm farm_1_sessions { type ipv4_addr : mark; size 4194304; flags dynamic,timeout; timeout 120s; }'], 'the sessions survive');
  const key = commands(state, render([{ farm: { ...sticky, persistence: 'srcport' }, backends: webBackends }]));
  inOrder(t, key, ['flush chain netdev nftfarm farm_1', 'delete map netdev nftfarm farm_1_sessions', 'add map netdev nftfarm farm_1_sessions { type inet_service', 'add rule netdev nftfarm farm_1 '], 'new key');
});

t.test('the ip table comes with the first nat farm and goes with the last', async (t) => {
  const state = appliedWith(two);
  const natted = { ...api, nattype: 'nat' as const, generation: 2 };
  const plan = planChanges(state, render([{ farm: web, backends: webBackends }, { farm: natted, backends: apiBackends }]));
  const lines = transactionText(plan.operations).trimEnd().split('\n');
  inOrder(t, lines, ['add table inet nftfarm', 'add chain inet nftfarm prerouting', 'add chain inet nftfarm farm_2', 'add element inet nftfarm ipv4_vip_ports { 10.250.0.101 . tcp . 80 : jump farm_2 }'], 'ip table');
  t.ok(lines.includes('delete chain netdev nftfarm farm_2'), 'its netdev chain goes');
  t.ok(lines.includes('add element netdev nftfarm ipv4_vip_ports { 10.250.0.101 . tcp . 80 : accept }'), 'netdev lets it through');
  plan.commit();
  const back = commands(state, render([{ farm: web, backends: webBackends }, { farm: { ...api, generation: 3 }, backends: apiBackends }]));
  t.ok(back.includes('delete table inet nftfarm'), 'the last nat farm takes the ip table with it');
  t.notOk(back.some((l) => l.includes(' inet nftfarm') && !l.startsWith('delete table')), 'nothing else is written into a table being deleted');
});

t.test("an interface's new MAC rewrites its send stage, nothing per farm", async (t) => {
  const state = appliedWith(two);
  const renamed = interfaces.map((i) => (i.name === 'eth0' ? { ...i, mac: '02:00:0a:fa:00:99' } : i));
  const lines = commands(state, render(two, facts({ interfaces: renamed })));
  t.ok(lines.includes('flush chain netdev nftfarm serve_dsr_tcp_eth0'));
  t.ok(lines.some((l) => l.startsWith('add rule netdev nftfarm serve_dsr_tcp_eth0 ether saddr set 02:00:0a:fa:00:99')));
  t.notOk(lines.some((l) => /farm_\d/.test(l) || l.includes('element')), 'no farm object');
});
