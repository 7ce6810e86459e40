import t from 'tap';
import {
  findConnectedInterface,
  formatIPv4,
  inSubnet,
  parseIPv4,
  prefixMask,
} from '../../src/dataplane/netlink/ipv4.js';
import type { HostInterface } from '../../src/dataplane/netlink/host-network.js';

t.test('parseIPv4 accepts strict dotted quads', async (t) => {
  t.equal(parseIPv4('0.0.0.0'), 0);
  t.equal(parseIPv4('255.255.255.255'), 0xffffffff);
  t.equal(parseIPv4('10.250.0.1'), 0x0afa0001);
  t.equal(parseIPv4('192.168.1.100'), 0xc0a80164);
  t.equal(parseIPv4('1.0.0.0'), 0x01000000);
});

t.test('parseIPv4 rejects everything else', async (t) => {
  for (const s of [
    '', '1.2.3', '1.2.3.4.5', '256.0.0.1', '1.2.3.256', '999.1.1.1',
    '010.1.1.1', '1.2.3.04', '00.1.1.1', // leading zeros: octal to inet_aton, ambiguous
    ' 1.2.3.4', '1.2.3.4 ', '1.2.3.4\n', '+1.2.3.4', '-1.2.3.4', '1..3.4', '1.2.3.',
    '0x1.2.3.4', '1e2.1.1.1', '16909060', '::1', '1.2.3.4/32', 'a.b.c.d', '١.٢.٣.٤',
  ]) {
    t.equal(parseIPv4(s), null, JSON.stringify(s));
  }
});

t.test('formatIPv4 round-trips and rejects out-of-range values', async (t) => {
  for (const s of ['0.0.0.0', '255.255.255.255', '10.250.0.1', '128.0.0.1', '1.2.3.4']) {
    const n = parseIPv4(s);
    t.not(n, null);
    t.equal(formatIPv4(n as number), s);
  }
  t.equal(formatIPv4(0x7f000001), '127.0.0.1');
  t.throws(() => formatIPv4(-1), RangeError);
  t.throws(() => formatIPv4(2 ** 32), RangeError);
  t.throws(() => formatIPv4(1.5), RangeError);
  t.throws(() => formatIPv4(Number.NaN), RangeError);
});

t.test('prefixMask', async (t) => {
  t.equal(prefixMask(0), 0);
  t.equal(prefixMask(1), 0x80000000);
  t.equal(prefixMask(24), 0xffffff00);
  t.equal(prefixMask(32), 0xffffffff);
});

t.test('inSubnet', async (t) => {
  t.ok(inSubnet('10.250.0.7', '10.250.0.0', 24));
  t.ok(inSubnet('10.250.0.7', '10.250.0.1', 24), 'host bits of the network are ignored');
  t.notOk(inSubnet('10.250.1.7', '10.250.0.0', 24));
  t.ok(inSubnet('10.250.1.7', '10.250.0.0', 16));
  t.ok(inSubnet('203.0.113.9', '0.0.0.0', 0), '/0 contains everything');
  t.ok(inSubnet('255.255.255.255', '0.0.0.0', 0));
  t.ok(inSubnet('10.0.0.1', '10.0.0.1', 32));
  t.notOk(inSubnet('10.0.0.2', '10.0.0.1', 32));
  t.ok(inSubnet('200.0.0.1', '128.0.0.0', 1), 'top bit set survives the 32-bit mask');
  t.notOk(inSubnet('127.0.0.1', '128.0.0.0', 1));
  t.ok(inSubnet('10.0.0.1', '10.0.0.0', 31));
  t.notOk(inSubnet('10.0.0.2', '10.0.0.0', 31));
  t.notOk(inSubnet('bogus', '10.0.0.0', 8), 'invalid ip');
  t.notOk(inSubnet('10.0.0.1', 'bogus', 8), 'invalid network');
  t.notOk(inSubnet('10.0.0.1', '10.0.0.0', 33), 'prefix too long');
  t.notOk(inSubnet('10.0.0.1', '10.0.0.0', -1), 'negative prefix');
  t.notOk(inSubnet('10.0.0.1', '10.0.0.0', 8.5), 'fractional prefix');
});

const iface = (
  name: string,
  index: number,
  addresses: [string, number][],
  up = true,
): HostInterface => ({
  name,
  index,
  mac: `02:00:00:00:00:${index.toString(16).padStart(2, '0')}`,
  up,
  addresses: addresses.map(([address, prefixLength]) => ({ address, prefixLength })),
});

t.test('findConnectedInterface', async (t) => {
  const lo = iface('lo', 1, [['127.0.0.1', 8], ['10.250.0.100', 32]]);
  const eth0 = iface('eth0', 2, [['10.250.0.1', 24]]);
  const eth1 = iface('eth1', 3, [['10.0.0.1', 8], ['10.1.0.1', 16]]);
  const down = iface('eth2', 4, [['192.168.7.1', 24]], false);
  const all = [lo, eth0, eth1, down];

  const hit = findConnectedInterface(all, '10.250.0.7');
  t.equal(hit?.iface.name, 'eth0');
  t.same(hit?.address, { address: '10.250.0.1', prefixLength: 24 });

  t.equal(findConnectedInterface(all, '10.1.2.3')?.address.prefixLength, 16, 'longest prefix wins');
  t.equal(findConnectedInterface(all, '10.2.0.1')?.address.prefixLength, 8);
  t.equal(findConnectedInterface(all, '10.250.0.1')?.iface.name, 'eth0', 'own address matches');
  t.equal(findConnectedInterface(all, '127.0.0.1'), null, 'loopback is never chosen');
  t.equal(findConnectedInterface(all, '10.250.0.100')?.iface.name, 'eth0',
    'a VIP on lo still resolves to the connected NIC');
  t.equal(findConnectedInterface(all, '192.168.7.5'), null, 'down interfaces are skipped');
  t.equal(findConnectedInterface(all, '172.16.0.1'), null, 'no connected network');
  t.equal(findConnectedInterface(all, 'not-an-ip'), null);
  t.equal(findConnectedInterface([], '10.0.0.1'), null);

  const slash32 = iface('eth3', 5, [['198.51.100.7', 32]]);
  t.equal(findConnectedInterface([slash32], '198.51.100.7')?.iface.name, 'eth3', '/32 own address');

  // Same prefix on two interfaces: the one owning the address wins, else the lower ifindex.
  const a = iface('a', 7, [['10.9.0.1', 24]]);
  const b = iface('b', 6, [['10.9.0.2', 24]]);
  t.equal(findConnectedInterface([a, b], '10.9.0.1')?.iface.name, 'a');
  t.equal(findConnectedInterface([a, b], '10.9.0.2')?.iface.name, 'b');
  t.equal(findConnectedInterface([a, b], '10.9.0.9')?.iface.name, 'b');
  t.equal(findConnectedInterface([b, a], '10.9.0.9')?.iface.name, 'b', 'order of the list does not matter');
});
