// IPv6 text, numbers and subnets (src/model/ip.ts).
import t from 'tap';
import { bufferToIpv6, canonicalIpv6, inSubnet6, ipFamily, ipv6Network, ipv6ToBuffer } from '../../src/model/ip.js';

t.test('canonical text (RFC 5952)', async (t) => {
  const cases: [string, string | null][] = [
    ['2001:0DB8:0000:0000:0000:0000:0000:0001', '2001:db8::1'],
    ['2001:db8:0:0:1:0:0:1', '2001:db8::1:0:0:1'],
    ['2001:db8:0:1:1:1:1:1', '2001:db8:0:1:1:1:1:1'],
    ['1:0:0:2:0:0:0:3', '1:0:0:2::3'],
    ['::', '::'],
    ['0::0', '::'],
    ['2001:db8::', '2001:db8::'],
    ['::ffff:1.2.3.4', '::ffff:102:304'],
    ['fe80::1%eth0', null],
    ['10.0.0.1', null],
    ['nonsense', null],
  ];
  for (const [text, canonical] of cases) t.equal(canonicalIpv6(text), canonical, text);
  t.equal(ipFamily('10.0.0.1'), 4);
  t.equal(ipFamily('2001:db8::1'), 6);
  t.equal(ipFamily('fe80::1%eth0'), null, 'a zone is not an address here');
});

t.test('bytes and subnets', async (t) => {
  t.equal(bufferToIpv6(ipv6ToBuffer('2001:db8::a:1')), '2001:db8::a:1');
  t.equal(ipv6ToBuffer('::1').toString('hex'), '00000000000000000000000000000001');
  t.ok(inSubnet6('2001:db8::5', '2001:db8::1', 64));
  t.notOk(inSubnet6('2001:db9::5', '2001:db8::1', 64));
  t.ok(inSubnet6('2001:db8::5', '::', 0));
  t.notOk(inSubnet6('10.0.0.1', '2001:db8::', 64));
  t.equal(ipv6Network('2001:db8:1:2:3:4:5:6', 48), '2001:db8:1::/48');
});
