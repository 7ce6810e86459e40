import t from 'tap';
import type { Farm } from '../../src/model/farm.js';
import { dsrBackendPortProblem, dsrFeatureProblem, findPortClash, portConflict, startConflict } from '../../src/model/rules.js';

type FarmShape = Pick<Farm, 'name' | 'vip' | 'vport' | 'protocol' | 'nattype' | 'algorithm'>;
const farm = (over: Partial<FarmShape> = {}): FarmShape => ({
  name: 'f',
  vip: '10.250.0.10',
  vport: '80',
  protocol: 'tcp',
  nattype: 'nat',
  algorithm: 'weight',
  ...over,
});
const backend = (port: number | null, id?: number, maxConns = 0) => ({ ip: '10.250.0.20', port, maxConns, ...(id === undefined ? {} : { id }) });

t.test('dsrBackendPortProblem', async (t) => {
  const dsr = farm({ nattype: 'dsr' });
  t.equal(dsrBackendPortProblem(farm(), backend(8080)), null, 'only dsr farms care');
  t.equal(dsrBackendPortProblem(dsr, backend(null)), null, 'an empty port is always fine');
  t.equal(dsrBackendPortProblem(dsr, backend(80)), null, 'the virtual port itself');
  t.equal(dsrBackendPortProblem(farm({ nattype: 'dsr', vport: '80:80' }), backend(80)), null);
  t.equal(
    dsrBackendPortProblem(dsr, backend(8080)),
    'The backend port 8080 differs from the virtual port 80: in DSR mode a backend port must be empty or equal to the virtual port, because only MAC addresses are rewritten.',
  );
  t.equal(
    dsrBackendPortProblem(dsr, backend(8080, 3)),
    'The backend 3 port 8080 differs from the virtual port 80: in DSR mode a backend port must be empty or equal to the virtual port, because only MAC addresses are rewritten.',
  );
  t.equal(
    dsrBackendPortProblem(dsr, backend(8080, 0)),
    'The backend 0 port 8080 differs from the virtual port 80: in DSR mode a backend port must be empty or equal to the virtual port, because only MAC addresses are rewritten.',
    'id 0 is an id',
  );
  for (const vport of ['80,443', '80:90', '*']) {
    t.equal(
      dsrBackendPortProblem(farm({ nattype: 'dsr', vport }), backend(80)),
      `The backend port 80 cannot be used with the virtual port '${vport}': in DSR mode with several virtual ports a backend port must be empty, because only MAC addresses are rewritten.`,
      vport,
    );
    t.equal(dsrBackendPortProblem(farm({ nattype: 'dsr', vport }), backend(null)), null, `${vport}: empty port`);
  }
});

t.test('dsrFeatureProblem', async (t) => {
  t.equal(dsrFeatureProblem(farm({ algorithm: 'leastconn' }), [backend(null, 0, 5)]), null, 'nat farms may use both');
  t.equal(dsrFeatureProblem(farm({ nattype: 'dsr' }), [backend(null, 0), backend(null, 1)]), null);
  t.equal(dsrFeatureProblem(farm({ nattype: 'dsr', algorithm: 'leastconn' }), []), null, 'leastconn is accepted (balances by weight)');
  t.equal(
    dsrFeatureProblem(farm({ nattype: 'dsr' }), [backend(null, 0), backend(null, 4, 100)]),
    "The backend 4 sets max_conns 100, which is not available with nattype 'dsr': without connection tracking the load balancer cannot count connections. Use max_conns 0, or nattype 'nat' or 'dnat'.",
  );
  t.equal(
    dsrFeatureProblem(farm({ nattype: 'dsr' }), [backend(null, undefined, 1)]),
    "The backend sets max_conns 1, which is not available with nattype 'dsr': without connection tracking the load balancer cannot count connections. Use max_conns 0, or nattype 'nat' or 'dnat'.",
  );
});

t.test('findPortClash: same VIP, overlapping protocol and ports, another farm', async (t) => {
  const a = farm({ name: 'a' });
  t.equal(findPortClash(farm({ name: 'b' }), []), null);
  t.strictSame(findPortClash(farm({ name: 'b' }), [a]), { other: 'a', port: '80' });
  t.equal(findPortClash(a, [a]), null, 'a farm never clashes with itself');
  t.equal(findPortClash(farm({ name: 'b', vip: '10.250.0.11' }), [a]), null, 'another VIP');
  t.equal(findPortClash(farm({ name: 'b', vport: '81' }), [a]), null, 'another port');
  t.equal(findPortClash(farm({ name: 'b', protocol: 'udp' }), [a]), null, 'another protocol');
  t.equal(findPortClash(farm({ name: 'b', protocol: 'sctp' }), [a]), null);
  t.strictSame(findPortClash(farm({ name: 'b', protocol: 'all', vport: '*' }), [a]), { other: 'a', port: '*' }, "'all' overlaps tcp");
  t.strictSame(findPortClash(farm({ name: 'b', protocol: 'udp', vport: '80' }), [farm({ name: 'a', protocol: 'all', vport: '*' })]), {
    other: 'a',
    port: '80',
  });
  t.strictSame(findPortClash(farm({ name: 'b', vport: '70:90' }), [a]), { other: 'a', port: '80' });
  t.strictSame(findPortClash(farm({ name: 'b', vport: '85:100' }), [farm({ name: 'a', vport: '70:90' })]), { other: 'a', port: '85:90' });
  t.strictSame(findPortClash(farm({ name: 'b', vport: '22,443' }), [farm({ name: 'a', vport: '443' }), farm({ name: 'c', vport: '22' })]), {
    other: 'a',
    port: '443',
  }, 'the first clashing farm');
  t.equal(findPortClash(farm({ name: 'b', vport: 'garbage' }), [a]), null, 'an unparsable vport never clashes');
  // The any-port map is keyed by the VIP alone: two '*' farms on one VIP would need the same key.
  t.strictSame(findPortClash(farm({ name: 'b', protocol: 'udp', vport: '*' }), [farm({ name: 'a', protocol: 'tcp', vport: '*' })]), { other: 'a', port: '*' }, "every port: tcp '*' and udp '*' share the VIP's key");
  t.equal(findPortClash(farm({ name: 'b', protocol: 'udp', vport: '*' }), [farm({ name: 'a', protocol: 'tcp', vport: '80' })]), null, "udp '*' beside tcp 80");
  t.equal(findPortClash(farm({ name: 'b', protocol: 'udp', vport: '1:65535' }), [farm({ name: 'a', protocol: 'tcp', vport: '*' })]), null, 'a full range is dispatched by protocol');
});

t.test('portConflict and startConflict messages', async (t) => {
  const running = [farm({ name: 'a', vport: '70:90' })];
  t.equal(
    portConflict(farm({ name: 'b', vport: '80' }), running),
    "The '10.250.0.10' ip and '80' port are being used for another farm. This farm should be stopped before modifying it (the farm 'a' uses them)",
  );
  t.equal(startConflict(farm({ name: 'b', vport: '80' }), running), "There is another farm using the ip '10.250.0.10' and the port '80' (the farm 'a')");
  t.equal(portConflict(farm({ name: 'b', vport: '91' }), running), null);
  t.equal(startConflict(farm({ name: 'b', vport: '91' }), running), null);
});
