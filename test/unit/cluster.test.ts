/**
 * The pure parts of src/cluster: which VIPs a node announces (from the stored farms and what
 * the reconciler reports), and the parsing of BIRD's control-socket replies.
 */
import t from 'tap';
import { farmServesVip, sortVips } from '../../src/cluster/vips.js';
import { desiredFarm, localAddressesOf } from '../../src/reconcile/desired.js';
import { parseProtocols, parseRoutePrefixes } from '../../src/cluster/birdc.js';
import { backend, facts, farm, interfaces } from '../helpers/fixtures.js';
import type { Backend, Farm } from '../../src/model/farm.js';

const derive = (f: Farm, backends: Backend[], hostFacts = facts()) =>
  desiredFarm({ farm: f, backends, healthCheck: null }, hostFacts, localAddressesOf(interfaces));

t.test('a farm serves its VIP while it has rules and a backend able to take new flows', async (t) => {
  t.ok(farmServesVip(derive(farm(1), [backend(1, 1, 0, '10.250.0.21'), backend(2, 1, 1, '10.250.0.22', { maintenance: 'cut' })])), 'one backend able: served');
  t.notOk(farmServesVip(derive(farm(2), [])), 'no backend: critical, not served');
  t.notOk(farmServesVip(derive(farm(3, { running: false }), [backend(3, 3, 0, '10.250.0.21')])), 'stopped');
  t.notOk(farmServesVip(derive(farm(4, { vip: '192.0.2.4' }), [backend(4, 4, 0, '10.250.0.21')])), 'no rules (a problem: VIP in no connected network)');
  t.notOk(farmServesVip(derive(farm(5), [backend(5, 5, 0, '10.250.0.21', { maintenance: 'drain' })])), 'its only backend drained');
  t.notOk(farmServesVip(derive(farm(6), [backend(6, 6, 0, '10.250.0.99')], facts({ macOf: () => null }))), 'DSR backend without a MAC yet (a starting node)');
  t.ok(farmServesVip(derive(farm(7, { nattype: 'nat' }), [backend(7, 7, 0, '192.0.2.7')])), 'nat needs no MAC');
  t.strictSame(sortVips(['10.9.0.10', '10.9.0.2', '10.9.0.1']), ['10.9.0.1', '10.9.0.2', '10.9.0.10'], 'numeric order');
});

t.test("BIRD's replies: protocols and route prefixes", async (t) => {
  const protocols = parseProtocols([
    { code: 2002, text: 'Name       Proto      Table      State  Since         Info' },
    { code: 1002, text: 'device1    Device     ---        up     1796384485    ' },
    { code: 1002, text: 'peer_10_250_0_1 BGP        ---        up     1796384490    Established   ' },
    { code: 1002, text: 'peer_10_250_0_9 BGP        ---        start  1796384485    Active        Socket: Connection refused' },
    { code: 0, text: '' },
  ]);
  t.match(protocols[1], { name: 'peer_10_250_0_1', proto: 'BGP', state: 'up', since: 1796384490, info: 'Established' });
  t.match(protocols[2], { state: 'start', info: 'Active Socket: Connection refused' });
  t.same(
    parseRoutePrefixes([
      { code: 1007, text: 'Table master4:' },
      { code: 1007, text: '10.252.0.101/32      blackhole [nftfarm_vips 11:41:32.070] * (200)' },
      { code: 1007, text: '10.252.0.100/32      blackhole [nftfarm_vips 11:41:32.070] * (200)' },
    ]),
    ['10.252.0.100/32', '10.252.0.101/32'],
  );
});

t.test('desired state with BGP (snapshot.routedVips): no proxy ARP, and a routed VIP takes its backends\' interface', async (t) => {
  const { desiredState } = await import('../../src/reconcile/desired.js');
  const hostFacts = facts({ macOf: () => '02:00:0a:fa:00:15' });
  const farms = [
    { farm: farm(1, { vip: '10.252.0.100' }), backends: [backend(1, 1, 0, '10.250.0.21')], healthCheck: null },
    { farm: farm(2, { vip: '10.250.0.100' }), backends: [backend(2, 2, 0, '10.250.0.22')], healthCheck: null },
    { farm: farm(3, { vip: '10.252.0.101' }), backends: [], healthCheck: null },
  ];
  const routed = desiredState({ generation: 1, farms, routedVips: true }, hostFacts);
  t.same(routed.announcements, [], 'BIRD announces: no proxy ARP entry');
  t.equal(routed.farms[0]!.iface?.name, 'eth0', 'a VIP in no connected network takes the backends\' interface');
  t.equal(routed.farms[0]!.problem, null);
  t.equal(routed.farms[1]!.iface?.name, 'eth0', 'a connected VIP keeps its own interface');
  t.match(routed.farms[2]!.problem, /no backend is on one yet/);
  const plain = desiredState({ generation: 1, farms }, hostFacts);
  t.same(plain.announcements.map((a) => a.vip), ['10.250.0.100'], 'without BGP: proxy ARP for the connected VIP');
  t.match(plain.farms[0]!.problem, /no up interface has a network holding the VIP/);
});
