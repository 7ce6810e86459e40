import t from 'tap';
import { farmChanges } from '../../src/reconcile/change-log.js';
import { sessionKeyText } from '../../src/dataplane/sessions.js';
import { counterSourcesFor } from '../../src/observe/counter-sources.js';
import type { DesiredFarm, DesiredState } from '../../src/reconcile/desired.js';
import { newFlowsSet } from '../../src/reconcile/counting.js';
import type { FarmRuntime } from '../../src/model/runtime.js';
import type { Farm } from '../../src/model/farm.js';

const runtime = (generation: number): FarmRuntime => ({ generation, state: 'applied', appliedGeneration: generation, error: null, interface: 'eth0', backends: new Map() });
const state = (farms: { farmId: number; name: string; generation: number }[]) => ({ generation: 9, farms, announcements: [] }) as unknown as DesiredState;

t.test('farmChanges: the farms whose generation moved, and the objects written for each', async (t) => {
  const previous = new Map([
    [1, runtime(3)],
    [2, runtime(4)],
    [12, runtime(5)],
  ]);
  const commands = [
    'add table netdev nftfarm',
    'delete element netdev nftfarm farm_1_buckets { 7 }',
    'add element netdev nftfarm farm_1_buckets { 7 : 2 }',
    'add element netdev nftfarm ipv4_vip_ports { 10.0.0.1 . tcp . 80 : jump farm_3 }',
    'add map netdev nftfarm farm_3_flows { type ipv4_addr : mark; }',
    'add chain netdev nftfarm farm_3',
    'flush chain netdev nftfarm farm_12',
    'delete chain netdev nftfarm farm_12',
    'add element ip nftfarm farm_4_addresses { 9 : 10.0.0.9 }',
  ];
  const changes = farmChanges(previous, state([
    { farmId: 1, name: 'web', generation: 6 },
    { farmId: 2, name: 'same', generation: 4 },
    { farmId: 3, name: 'new', generation: 6 },
    { farmId: 4, name: 'natted', generation: 7 },
  ]), commands, ['netdev nftfarm', 'ip nftfarm']);
  t.strictSame(changes, [
    { farmId: 1, farm: 'web', generation: 6, deleted: false, objects: ['farm_1_buckets'] },
    { farmId: 3, farm: 'new', generation: 6, deleted: false, objects: ['farm_3', 'farm_3_flows', 'ipv4_vip_ports'] },
    { farmId: 4, farm: 'natted', generation: 7, deleted: false, objects: ['farm_4_addresses'] },
    { farmId: 12, farm: null, generation: null, deleted: true, objects: ['farm_12'] },
  ]);
  t.strictSame(farmChanges(previous, state([{ farmId: 1, name: 'web', generation: 3 }, { farmId: 2, name: 'same', generation: 4 }, { farmId: 12, name: 'x', generation: 5 }]), commands.slice(0, -1), ['netdev nftfarm', 'ip nftfarm']), [], 'nothing moved');
});

t.test('sessionKeyText: keys as the kernel stores them', async (t) => {
  t.equal(sessionKeyText(Buffer.from([10, 250, 0, 10]), 'srcip'), '10.250.0.10');
  t.equal(sessionKeyText(Buffer.from([0x13, 0x88]), 'srcport'), '5000');
  t.equal(sessionKeyText(Buffer.from([2, 0, 0x0a, 0xfa, 0, 0x0a]), 'srcmac'), '02:00:0a:fa:00:0a');
  // A concatenation pads each field to 4 bytes.
  t.equal(sessionKeyText(Buffer.from([10, 0, 0, 1, 0x13, 0x88, 0, 0]), 'srcip_srcport'), '10.0.0.1 . 5000');
  t.equal(sessionKeyText(Buffer.from([10, 0, 0, 1, 0, 80, 0, 0]), 'srcip_dstport'), '10.0.0.1 . 80');
});

t.test('counterSourcesFor: dsr and stateless_dnat farms are counted in the netdev table, nat and dnat in the ip table', async (t) => {
  const farm = { id: 7, nattype: 'dsr', protocol: 'tcp', persistence: 'srcip' } as Farm;
  const netdev = {
    family: 'netdev',
    table: 'nftfarm',
    forwarded: 'backend_macs',
    newFlows: 'backend_new_flows',
    dropped: 'farm_7',
    established: { kind: 'pins', map: 'flows_tcp' },
    sessions: { map: 'farm_7_sessions', layout: 'srcip' },
  };
  t.strictSame(counterSourcesFor(farm), netdev);
  t.strictSame(counterSourcesFor({ ...farm, nattype: 'stateless_dnat' }), netdev);
  t.equal(counterSourcesFor({ ...farm, persistence: '' })?.sessions, null);
  for (const nattype of ['nat', 'dnat'] as const) {
    t.strictSame(counterSourcesFor({ ...farm, nattype }), {
      family: 'ip',
      table: 'nftfarm',
      forwarded: 'backend_forwarded',
        newFlows: 'backend_new_flows',
      dropped: 'farm_7',
      established: { kind: 'conntrack' },
      sessions: { map: 'farm_7_sessions', layout: 'srcip' },
    });
  }
});

t.test('newFlowsSet: every backend of every farm, one object while the marks stay the same', async (t) => {
  const farm = (farmId: number, uids: number[]) => ({ farmId, backends: uids.map((uid) => ({ uid })) }) as unknown as DesiredFarm;
  const memo = new Map();
  const a = newFlowsSet([farm(1, [3, 1]), farm(2, [2])], memo);
  t.strictSame([...a.elements!.keys()], ['1', '2', '3'], 'sorted marks');
  t.equal(a.name, 'backend_new_flows');
  t.strictSame(a.body, ['type mark', 'counter']);
  t.equal(newFlowsSet([farm(1, [3, 1]), farm(2, [2])], memo), a, 'same marks: the very same object (the planner skips it)');
  const b = newFlowsSet([farm(1, [3, 1]), farm(2, [2, 4])], memo);
  t.not(b, a);
  t.strictSame([...b.elements!.keys()], ['1', '2', '3', '4']);
});
