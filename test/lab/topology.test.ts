import t from 'tap';
import {
  backendIp,
  backendMac,
  checkPrefix,
  CLIENT_MAC,
  isLabNamespace,
  LB_MAC,
  macForIp,
  namespaceName,
  switchPortName,
} from '../../lab/topology.js';

t.test('MACs are 02:00 plus the IPv4 address in hex', async (t) => {
  t.equal(LB_MAC, '02:00:0a:fa:00:02');
  t.equal(CLIENT_MAC, '02:00:0a:fa:00:0a');
  t.equal(backendIp(1), '10.250.0.21');
  t.equal(backendMac(1), '02:00:0a:fa:00:15');
  t.equal(backendMac(2), '02:00:0a:fa:00:16');
  t.equal(macForIp('10.250.0.100'), '02:00:0a:fa:00:64');
  t.throws(() => macForIp('10.250.0.256'));
  t.throws(() => macForIp('10.250.0'));
  t.throws(() => backendIp(0));
  t.throws(() => backendIp(51), /1\.\.50/);
});

t.test('names', async (t) => {
  t.equal(namespaceName('nflab', 'b3'), 'nflab-b3');
  t.equal(switchPortName('client'), 'p-client');
  // Switch ports are interface names: at most 15 bytes even for the largest backend index.
  t.ok(switchPortName('b50').length <= 15);
  t.doesNotThrow(() => checkPrefix('nflab'));
  t.doesNotThrow(() => checkPrefix('ab123456789x'));
  for (const bad of ['', 'a', 'NF', 'nf-lab', '9lab', 'abcdefghijklm', 'nf lab']) {
    t.throws(() => checkPrefix(bad), /lab prefix must match/, `rejects ${JSON.stringify(bad)}`);
  }
});

t.test('isLabNamespace matches only the lab host names of exactly that prefix', async (t) => {
  for (const ns of ['nflab-sw', 'nflab-client', 'nflab-lb', 'nflab-b1', 'nflab-b12']) {
    t.ok(isLabNamespace('nflab', ns), ns);
  }
  for (const ns of ['nflab', 'nflab-', 'nflabx-sw', 'nf-sw', 'nflab-b0', 'nflab-b', 'nflab-switch', 'nflab-sw-x', 'xnflab-sw']) {
    t.notOk(isLabNamespace('nflab', ns), ns);
  }
  t.notOk(isLabNamespace('nf', 'nflab-sw'), 'a shorter prefix does not match a longer one');
});
