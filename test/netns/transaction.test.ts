/**
 * The transaction planner against the real kernel: applying the planned differences step by
 * step must leave exactly what loading each target from scratch leaves, flow pins must
 * survive a full resync, and a rejected transaction must change nothing.
 */
import t from 'tap';
import { knownKernelTable, kernelTableFromListing, planTransaction, renderTableText, type TableDecl } from '../../src/dataplane/nft/ruleset.js';
import { desiredState } from '../../src/reconcile/desired.js';
import { renderTable } from '../../src/reconcile/render.js';
import { TABLE_FAMILY, TABLE_NAME } from '../../src/reconcile/names.js';
import { backend, facts, farm, snapshot } from '../helpers/fixtures.js';
import { nftNamespace, type NftNamespace } from '../helpers/netns.js';
import type { Backend, Farm } from '../../src/model/farm.js';

const render = (entries: { farm: Farm; backends?: Backend[] }[]) => renderTable(desiredState(snapshot(entries), facts()));

const web = farm(1, { name: 'web' });
const dns = farm(2, { name: 'dns', vip: '10.250.0.101', vport: '53', protocol: 'udp' });
const b = (uid: number, farmId: number, id: number, last: number, fields: Partial<Backend> = {}) => backend(uid, farmId, id, `10.250.0.${last}`, fields);

/** A sequence of configurations, each a plausible operator change from the one before. */
const steps: { label: string; table: TableDecl | null }[] = [
  { label: 'one farm, two backends', table: render([{ farm: web, backends: [b(1, 1, 0, 21), b(2, 1, 1, 22)] }]) },
  { label: 'second farm added', table: render([{ farm: web, backends: [b(1, 1, 0, 21), b(2, 1, 1, 22)] }, { farm: dns, backends: [b(3, 2, 0, 23)] }]) },
  { label: 'backend drained', table: render([{ farm: web, backends: [b(1, 1, 0, 21), b(2, 1, 1, 22, { maintenance: 'drain' })] }, { farm: dns, backends: [b(3, 2, 0, 23)] }]) },
  { label: 'third backend (table grows)', table: render([{ farm: web, backends: [b(1, 1, 0, 21), b(2, 1, 1, 22), b(4, 1, 2, 24)] }, { farm: dns, backends: [b(3, 2, 0, 23)] }]) },
  { label: 'persistence on, port list', table: render([{ farm: { ...web, persistence: 'srcip', vport: '80,443,8000:8100' }, backends: [b(1, 1, 0, 21), b(2, 1, 1, 22), b(4, 1, 2, 24)] }, { farm: dns, backends: [b(3, 2, 0, 23)] }]) },
  { label: 'ttl changed, backend removed', table: render([{ farm: { ...web, persistence: 'srcip', ttl: 300, vport: '80,443,8000:8100' }, backends: [b(1, 1, 0, 21), b(4, 1, 2, 24)] }, { farm: dns, backends: [b(3, 2, 0, 23)] }]) },
  { label: 'protocol all', table: render([{ farm: { ...web, protocol: 'all', vport: '*' }, backends: [b(1, 1, 0, 21)] }, { farm: dns, backends: [b(3, 2, 0, 23)] }]) },
  { label: 'first farm deleted', table: render([{ farm: dns, backends: [b(3, 2, 0, 23)] }]) },
  { label: 'no farm', table: null },
];

function apply(ns: NftNamespace, commands: string[]): void {
  if (commands.length === 0) return;
  const r = ns.nft(['-f', '-'], `${commands.join('\n')}\n`);
  if (r.status !== 0) throw new Error(`nft rejected the transaction: ${r.stderr}\n${commands.join('\n')}`);
}

/** The table's objects as nft lists them, sorted: re-created objects list in creation order. */
const list = (ns: NftNamespace): string => {
  const text = ns.nft(['list', 'table', TABLE_FAMILY, TABLE_NAME]).stdout;
  const body = text.replace(/^table [^\n]*\n/, '').replace(/\n}\n$/, '');
  const sortElements = (block: string) =>
    block.replace(/elements = \{([^}]*)\}/, (_m, items: string) => `elements = { ${items.split(',').map((i) => i.trim()).sort().join(', ')} }`);
  return body.split('\n\n').map((block) => sortElements(block.trim())).sort().join('\n\n');
};

t.test('incremental transactions leave what a fresh load leaves', async (t) => {
  const live = nftNamespace(t, 'nftxa');
  const fresh = nftNamespace(t, 'nftxb');
  let applied: TableDecl | null = null;
  for (const step of steps) {
    const commands = planTransaction(applied ? knownKernelTable(applied) : null, step.table, TABLE_FAMILY, TABLE_NAME);
    apply(live, commands);
    applied = step.table;
    fresh.nft(['delete', 'table', TABLE_FAMILY, TABLE_NAME]);
    if (step.table) {
      const r = fresh.nft(['-f', '-'], renderTableText(step.table));
      t.equal(r.status, 0, `${step.label}: the fresh load works ${r.stderr}`);
    }
    t.equal(list(live), list(fresh), `${step.label}: the kernel holds the same table either way`);
  }
  t.equal(live.nft(['list', 'tables']).stdout, '', 'with no farm, nftfarm leaves no table');
});

t.test('a full resync (after a restart) keeps the flow pins and sessions of kept farms', async (t) => {
  const ns = nftNamespace(t, 'nftxc');
  const before = steps[4]!.table!;
  apply(ns, planTransaction(null, before, TABLE_FAMILY, TABLE_NAME));
  // Pins as the packet path would have made them.
  apply(ns, [
    'add element netdev nftfarm flows_tcp { 10.250.0.10 . 10.250.0.100 . 40000 . 80 : 1 }',
    'add element netdev nftfarm farm_1_sessions { 10.250.0.10 : 1 }',
    'add element netdev nftfarm flows_udp { 10.250.0.10 . 10.250.0.101 . 5353 . 53 : 3 }',
  ]);
  const listing = ns.nft(['-t', '-j', 'list', 'ruleset']).stdout;
  const kernel = kernelTableFromListing(listing, TABLE_FAMILY, TABLE_NAME);
  t.ok(kernel, 'the listing shows the table');
  // The restarted daemon wants the same web farm, and dns was deleted meanwhile.
  const target = render([{ farm: { ...web, persistence: 'srcip', vport: '80,443,8000:8100' }, backends: [b(1, 1, 0, 21), b(2, 1, 1, 22), b(4, 1, 2, 24)] }]);
  apply(ns, planTransaction(kernel, target, TABLE_FAMILY, TABLE_NAME));
  t.match(ns.nft(['list', 'map', 'netdev', 'nftfarm', 'flows_tcp']).stdout, '10.250.0.10 . 10.250.0.100 . 40000 . 80', 'the flow pin survived');
  t.match(ns.nft(['list', 'map', 'netdev', 'nftfarm', 'farm_1_sessions']).stdout, '10.250.0.10 ', 'the session survived');
  // A deleted farm's pins age out of the shared flow map; their backend is in no map any more.
  t.notMatch(ns.nft(['list', 'map', 'netdev', 'nftfarm', 'backend_macs']).stdout, /\b3 : /, 'the deleted farm\'s backend gets nothing');
  // Apart from dynamic content, the kernel now holds exactly the target.
  const fresh = nftNamespace(t, 'nftxd');
  fresh.nft(['-f', '-'], renderTableText(target!));
  const strip = (text: string) => text.replace(/\n\t\telements = \{[^}]*\}/g, '');
  t.equal(strip(list(ns)).replace(/expires [^ ]+ /g, ''), strip(list(fresh)));
});

t.test('a rejected transaction changes nothing', async (t) => {
  const ns = nftNamespace(t, 'nftxe');
  apply(ns, planTransaction(null, steps[1]!.table, TABLE_FAMILY, TABLE_NAME));
  const before = list(ns);
  const commands = planTransaction(knownKernelTable(steps[1]!.table!), steps[3]!.table, TABLE_FAMILY, TABLE_NAME);
  t.ok(commands.length > 3, 'a real change is planned');
  const r = ns.nft(['-f', '-'], `${commands.join('\n')}\nadd rule netdev nftfarm farm_1 meta mark set ip saddr map @no_such_map\n`);
  t.not(r.status, 0, 'nft refuses the transaction');
  t.match(r.stderr, /No such file or directory/);
  t.equal(list(ns), before, 'the kernel still holds the previous ruleset, untouched');
});
