// Which addresses can be a VIP or a backend (issue 11, finding 7).
import t from 'tap';
import { notUnicastReason, subnetAddressReason } from '../../src/model/addresses.js';

t.test('non-unicast blocks, each named', async (t) => {
  const cases: [string, RegExp | null][] = [
    ['0.0.0.0', /0\.0\.0\.0\/8/],
    ['0.255.255.255', /0\.0\.0\.0\/8/],
    ['1.0.0.0', null],
    ['126.255.255.255', null],
    ['127.0.0.1', /loopback/],
    ['127.255.255.255', /loopback/],
    ['128.0.0.0', null],
    ['223.255.255.255', null],
    ['224.0.0.0', /multicast/],
    ['239.255.255.255', /multicast/],
    ['240.0.0.0', /reserved/],
    ['254.255.255.255', /reserved/],
    ['255.255.255.254', /reserved/],
    ['255.255.255.255', /limited broadcast/],
    ['169.254.1.1', null],
    ['10.0.0.1', null],
  ];
  for (const [ip, reason] of cases) {
    const why = notUnicastReason(ip);
    if (reason) t.match(why, reason, ip);
    else t.equal(why, null, ip);
  }
});

t.test('network and broadcast addresses of a connected network', async (t) => {
  t.match(subnetAddressReason('10.0.0.0', '10.0.0.0/24'), /network address of 10\.0\.0\.0\/24/);
  t.match(subnetAddressReason('10.0.0.255', '10.0.0.0/24'), /broadcast address of 10\.0\.0\.0\/24/);
  t.equal(subnetAddressReason('10.0.0.1', '10.0.0.0/24'), null);
  t.equal(subnetAddressReason('10.0.1.0', '10.0.0.0/23'), null, 'inside a /23');
  t.match(subnetAddressReason('10.0.1.255', '10.0.0.0/23'), /broadcast/);
  t.equal(subnetAddressReason('10.0.0.0', '10.0.0.0/31'), null, 'a /31 has no network or broadcast address (RFC 3021)');
  t.equal(subnetAddressReason('10.0.0.1', '10.0.0.1/32'), null);
  t.equal(subnetAddressReason('10.9.0.0', '10.0.0.0/24'), null, 'outside the network');
});

t.test('IPv6: unspecified, loopback, multicast, link-local and IPv4-mapped are refused, each named', async (t) => {
  const cases: [string, RegExp | null][] = [
    ['::', /unspecified/],
    ['::1', /loopback/],
    ['ff02::1', /multicast/],
    ['ffff::1', /multicast/],
    ['fe80::1', /link-local/],
    ['febf::1', /link-local/],
    ['fec0::1', null],
    ['::ffff:10.0.0.1', /IPv4-mapped/],
    ['::ffff:a00:1', /IPv4-mapped/],
    ['2001:db8::1', null],
    ['fd00::1', null],
    ['::2', null],
  ];
  for (const [ip, reason] of cases) {
    const why = notUnicastReason(ip);
    if (reason) t.match(why, reason, ip);
    else t.equal(why, null, ip);
  }
  t.equal(subnetAddressReason('2001:db8::', '2001:db8::/64'), null, 'IPv6 has no network or broadcast address to refuse');
});
