// farmMetricsBytes writes the farm series straight into a buffer: it must give exactly the
// UTF-8 of farmMetricsText (the exposition format, line by line) for any farms and counters.
import t from 'tap';
import { farmMetricsBytes } from '../../src/metrics/farm-metrics.js';
import { farmMetricsText } from '../helpers/farm-metrics-text.js';
import { setKey, type CounterSample, type FarmDescriptor } from '../../src/observe/farm-counters.js';
import { BACKEND_MACS_MAP, FARM_DROPS_SET, FORWARDED_SET, NAT_TABLE_FAMILY, NAT_TABLE_NAME, NEW_FLOWS_SET, TABLE_FAMILY, TABLE_NAME } from '../../src/reconcile/names.js';

const farm = (id: number, name: string, nattype: FarmDescriptor['nattype'], backends: FarmDescriptor['backends']): FarmDescriptor => ({
  id,
  slot: id,
  name,
  nattype,
  protocol: 'udp',
  persistence: id === 3 ? 'srcip' : '',
  backends,
});

t.test('farmMetricsBytes: the bytes of farmMetricsText', async (t) => {
  const farms = [
    farm(1, 'web', 'dsr', [
      { uid: 10, id: 0, ip: '10.0.0.1', up: true },
      { uid: 11, id: 1, ip: 'fd00::1', up: false },
    ]),
    farm(2, 'not-in-kernel', 'dsr', [{ uid: 20, id: 0, ip: '10.0.0.2', up: true }]),
    farm(3, 'nat "q" \\ é\n', 'nat', [{ uid: 30, id: 7, ip: '10.0.0.3', up: true }]),
    farm(4, 'empty', 'dnat', []),
  ];
  const big = 2 ** 53 + 2;
  const sample: CounterSample = {
    sets: new Map([
      [setKey(TABLE_FAMILY, TABLE_NAME, BACKEND_MACS_MAP), new Map([[10, { packets: 123456789, bytes: big }], [11, { packets: 0, bytes: 0 }]])],
      [setKey(TABLE_FAMILY, TABLE_NAME, NEW_FLOWS_SET), new Map([[10, { packets: 9, bytes: 0 }]])],
      [setKey(TABLE_FAMILY, TABLE_NAME, FARM_DROPS_SET), new Map([[1, { packets: 5, bytes: 300 }]])],
      [setKey(NAT_TABLE_FAMILY, NAT_TABLE_NAME, FORWARDED_SET), new Map([[30, { packets: 1, bytes: 60 }]])],
      [setKey(NAT_TABLE_FAMILY, NAT_TABLE_NAME, FARM_DROPS_SET), new Map([[3, { packets: 0, bytes: 0 }], [4, { packets: 2, bytes: 120 }]])],
    ]),
    pins: new Map([[10, 3]]),
    connections: new Map([[30, 1e21]]),
    sessions: new Map(),
  };
  const text = farmMetricsText(farms, sample);
  t.match(text, /nftfarm_backend_bytes_total\{farm="web",backend="0",ip="10.0.0.1"\} 9007199254740994\n/);
  t.match(text, /nftfarm_farm_dropped_packets_total\{farm="nat \\"q\\" \\\\ é\\n"\} 0\n/, 'label values escaped');
  t.equal(farmMetricsBytes(farms, sample).toString(), text);
  t.ok(farmMetricsBytes(farms, sample).equals(Buffer.from(text)), 'byte for byte');
  t.equal(farmMetricsBytes([], sample).toString(), farmMetricsText([], sample), 'no farm: the families alone');
});
