/**
 * The pure parts of src/cluster: which VIPs a node announces (from the stored farms and what
 * the reconciler reports), and the parsing of BIRD's control-socket replies.
 */
import t from 'tap';
import { vipsToAnnounce } from '../../src/cluster/vips.js';
import { parseProtocols, parseRoutePrefixes } from '../../src/cluster/birdc.js';
import type { FarmRuntime } from '../../src/model/runtime.js';
import type { Backend, Farm } from '../../src/model/farm.js';

const farm = (id: number, vip: string, running = true): Farm => ({
  id, name: `f${id}`, profile: 'l4xnat', vip, vport: '80', protocol: 'tcp', nattype: 'dsr', algorithm: 'weight', persistence: '', ttl: 60, running, generation: 1,
});
const backend = (uid: number, maintenance: Backend['maintenance'] = 'none'): Backend => ({ uid, farmId: 0, id: uid, ip: `10.0.0.${uid}`, port: null, weight: 1, priority: 1, maxConns: 0, maintenance });
const runtime = (usable: Record<number, boolean>, state: FarmRuntime['state'] = 'applied', appliedGeneration: number | null = 1): FarmRuntime => ({
  generation: 1, state, appliedGeneration, error: null, interface: 'eth0', backends: new Map(Object.entries(usable).map(([uid, u]) => [Number(uid), { usable: u }])),
});

t.test('a VIP is announced while a started farm on it is in the kernel and has a backend able to take new flows', async (t) => {
  const runtimes = new Map<number, FarmRuntime | undefined>([
    [1, runtime({ 1: true, 2: false })],          // one backend usable: announced
    [2, runtime({ 3: false })],                   // critical: not announced
    [3, runtime({ 4: true })],                    // stopped farm
    [4, undefined],                               // not applied yet (a starting node)
    [5, runtime({ 6: true }, 'failed', null)],    // rules never applied (a problem)
    [6, runtime({ 7: true })],                    // its only usable backend is drained
    [7, runtime({ 8: true }, 'failed', 1)],       // a later pass failed: its rules are still in
  ]);
  const snapshot = {
    farms: [
      { farm: farm(1, '10.9.0.1'), backends: [backend(1), backend(2)], healthCheck: null },
      { farm: farm(2, '10.9.0.2'), backends: [backend(3)], healthCheck: null },
      { farm: farm(3, '10.9.0.3', false), backends: [backend(4)], healthCheck: null },
      { farm: farm(4, '10.9.0.4'), backends: [backend(5)], healthCheck: null },
      { farm: farm(5, '10.9.0.5'), backends: [backend(6)], healthCheck: null },
      { farm: farm(6, '10.9.0.6'), backends: [backend(7, 'drain')], healthCheck: null },
      { farm: farm(7, '10.9.0.10'), backends: [backend(8)], healthCheck: null },
    ],
  };
  t.same(vipsToAnnounce(snapshot, { farm: (id) => runtimes.get(id) }), ['10.9.0.1', '10.9.0.10']);
  const shared = { farms: [...snapshot.farms, { farm: farm(8, '10.9.0.2'), backends: [backend(9)], healthCheck: null }] };
  runtimes.set(8, runtime({ 9: true }));
  t.same(vipsToAnnounce(shared, { farm: (id) => runtimes.get(id) }), ['10.9.0.1', '10.9.0.2', '10.9.0.10'], 'one farm able to serve is enough for the VIP');
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
  const interfaces = [
    { name: 'lo', index: 1, mac: '00:00:00:00:00:00', up: true, addresses: [{ address: '127.0.0.1', prefixLength: 8 }] },
    { name: 'eth0', index: 2, mac: '02:00:0a:fa:00:02', up: true, addresses: [{ address: '10.250.0.2', prefixLength: 24 }] },
  ];
  const facts = { interfaces, macOf: () => '02:00:0a:fa:00:15' };
  const farms = [
    { farm: farm(1, '10.252.0.100'), backends: [{ ...backend(1), ip: '10.250.0.21' }], healthCheck: null },
    { farm: farm(2, '10.250.0.100'), backends: [{ ...backend(2), ip: '10.250.0.22' }], healthCheck: null },
    { farm: farm(3, '10.252.0.101'), backends: [], healthCheck: null },
  ];
  const routed = desiredState({ generation: 1, farms, routedVips: true }, facts);
  t.same(routed.announcements, [], 'BIRD announces: no proxy ARP entry');
  t.equal(routed.farms[0]!.iface?.name, 'eth0', 'a VIP in no connected network takes the backends\' interface');
  t.equal(routed.farms[0]!.problem, null);
  t.equal(routed.farms[1]!.iface?.name, 'eth0', 'a connected VIP keeps its own interface');
  t.match(routed.farms[2]!.problem, /no backend is on one yet/);
  const plain = desiredState({ generation: 1, farms }, facts);
  t.same(plain.announcements.map((a) => a.vip), ['10.250.0.100'], 'without BGP: proxy ARP for the connected VIP');
  t.match(plain.farms[0]!.problem, /no up interface has a network holding the VIP/);
});
