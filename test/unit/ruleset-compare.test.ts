// The kernel comparison of the fuzz test (test/helpers/ruleset-compare.ts): what must not
// matter (handles, counters, element order and expiry, dynamic sets, other tables) does not,
// and what must (a rule, its order, an element, a chain) does.
import t from 'tap';
import { diffRulesets, normalizeRuleset } from '../helpers/ruleset-compare.js';

const listing = (overrides: { handle?: number; packets?: number; elems?: unknown[]; rules?: unknown[][]; flows?: unknown[]; extraTable?: boolean } = {}) =>
  JSON.stringify({
    nftables: [
      { metainfo: { version: '1.0.6', json_schema_version: 1 } },
      { table: { family: 'netdev', name: 'nftfarm', handle: overrides.handle ?? 1 } },
      ...(overrides.extraTable ? [{ table: { family: 'inet', name: 'other', handle: 9 } }, { chain: { family: 'inet', table: 'other', name: 'x', handle: 2 } }] : []),
      { chain: { family: 'netdev', table: 'nftfarm', name: 'farm_1', handle: 5 } },
      ...(overrides.rules ?? [[{ match: { op: '==', left: 'a', right: 1 } }, { counter: { packets: overrides.packets ?? 0, bytes: 0 } }], [{ accept: null }]]).map((expr, i) => ({
        rule: { family: 'netdev', table: 'nftfarm', chain: 'farm_1', handle: 10 + i + (overrides.handle ?? 0), expr },
      })),
      { map: { family: 'netdev', table: 'nftfarm', name: 'backend_macs', handle: 3, type: 'mark', map: 'ether_addr', elem: overrides.elems ?? [[1, '02:00:0a:fa:00:15'], [2, '02:00:0a:fa:00:16']] } },
      { map: { family: 'netdev', table: 'nftfarm', name: 'flows', handle: 4, type: 'ipv4_addr', map: 'mark', flags: ['dynamic', 'timeout'], elem: overrides.flows ?? [] } },
    ],
  });

t.test('equal configurations compare equal', async (t) => {
  const base = normalizeRuleset(listing());
  t.same(diffRulesets(base, normalizeRuleset(listing({ handle: 7, packets: 99 }))), [], 'handles and counters do not matter');
  t.same(diffRulesets(base, normalizeRuleset(listing({ elems: [[2, '02:00:0a:fa:00:16'], [1, '02:00:0a:fa:00:15']] }))), [], 'element order does not matter');
  t.same(diffRulesets(base, normalizeRuleset(listing({ flows: [{ elem: { val: '10.0.0.1', expires: 5 } }] }))), [], 'dynamic sets (traffic state) do not');
  t.same(diffRulesets(base, normalizeRuleset(listing({ extraTable: true }))), [], 'other tables do not');
});

t.test('differences are found and named', async (t) => {
  const base = normalizeRuleset(listing());
  t.match(diffRulesets(base, normalizeRuleset(listing({ elems: [[1, '02:00:0a:fa:00:15']] }))).join('\n'), /backend_macs\/elem: 2 entries != 1/, 'a missing element');
  t.match(diffRulesets(base, normalizeRuleset(listing({ rules: [[{ accept: null }], [{ match: { op: '==', left: 'a', right: 1 } }, { counter: { packets: 0, bytes: 0 } }]] }))), [/farm_1\/rules/], 'rule order');
  t.match(diffRulesets(base, normalizeRuleset(listing({ rules: [[{ drop: null }]] }))), [/farm_1\/rules/], 'a rule replaced');
  t.match(diffRulesets(base, normalizeRuleset('{"nftables":[]}')), [/netdev nftfarm: .* != missing/], 'a table missing');
});
