import t from 'tap';
import { sessionKeyText } from '../../src/dataplane/sessions.js';
import { counterSourcesFor } from '../../src/observe/counter-sources.js';
import type { Farm } from '../../src/model/farm.js';

t.test('sessionKeyText: keys as the kernel stores them', async (t) => {
  t.equal(sessionKeyText(Buffer.from([10, 250, 0, 10]), 'srcip'), '10.250.0.10');
  t.equal(sessionKeyText(Buffer.from([0x13, 0x88]), 'srcport'), '5000');
  t.equal(sessionKeyText(Buffer.from([2, 0, 0x0a, 0xfa, 0, 0x0a]), 'srcmac'), '02:00:0a:fa:00:0a');
  // A concatenation pads each field to 4 bytes.
  t.equal(sessionKeyText(Buffer.from([10, 0, 0, 1, 0x13, 0x88, 0, 0]), 'srcip_srcport'), '10.0.0.1 . 5000');
  t.equal(sessionKeyText(Buffer.from([10, 0, 0, 1, 0, 80, 0, 0]), 'srcip_dstport'), '10.0.0.1 . 80');
});

t.test('counterSourcesFor: dsr and stateless_dnat farms are counted in the netdev table, nat and dnat in the ip table', async (t) => {
  const farm = { id: 70, slot: 7, nattype: 'dsr', protocol: 'tcp', persistence: 'srcip' } as Farm;
  const netdev = {
    family: 'netdev',
    table: 'nftfarm',
    forwarded: 'backend_macs',
    newFlows: 'backend_new_flows',
    dropped: { set: 'farm_drops', slot: 7 },
    established: { kind: 'pins', map: 'flows_tcp' },
    sessions: { map: 'farm_7_sessions', layout: 'srcip' },
  };
  t.strictSame(counterSourcesFor(farm), netdev);
  t.strictSame(counterSourcesFor({ ...farm, nattype: 'stateless_dnat' }), netdev);
  t.equal(counterSourcesFor({ ...farm, persistence: '' })?.sessions, null);
  for (const nattype of ['nat', 'dnat'] as const) {
    t.strictSame(counterSourcesFor({ ...farm, nattype }), {
      family: 'inet',
      table: 'nftfarm',
      forwarded: 'backend_forwarded',
        newFlows: 'backend_new_flows',
      dropped: { set: 'farm_drops', slot: 7 },
      established: { kind: 'conntrack' },
      sessions: { map: 'farm_7_sessions', layout: 'srcip' },
    });
  }
});
