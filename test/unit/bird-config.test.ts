/**
 * BIRD's configuration as nftfarm renders it: golden text, and BIRD's own parser (`bird -p`)
 * accepts every golden file. What ECMP needs is asserted on the text: no MED, prepend or
 * community unless configured, graceful restart off by default, one blackhole /32 per VIP.
 */
import t from 'tap';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { renderBirdConfig } from '../../src/cluster/bird-config.js';
import { DEFAULT_BGP, type BgpSettings } from '../../src/cluster/bgp-settings.js';

const DIR = path.join(import.meta.dirname, '..', 'golden', 'bird');
const UPDATE = process.env.UPDATE_GOLDEN === '1';
const hasBird = spawnSync('bird', ['--version']).status === 0;

const base: BgpSettings = { ...DEFAULT_BGP, enabled: true, asn: 65010, holdTime: 3, neighbors: [{ address: '10.250.0.1', asn: 65000 }] };

const CASES: [string, Parameters<typeof renderBirdConfig>[0]][] = [
  ['two-vips.conf', { settings: base, routerId: '10.250.0.2', vips: ['10.252.0.101', '10.252.0.100', '10.252.0.100'] }],
  ['no-vip.conf', { settings: base, routerId: '10.250.0.2', vips: [] }],
  [
    'attributes.conf',
    {
      settings: { ...base, holdTime: 90, med: 10, communities: ['65010:100', '65010:200'], gracefulRestart: true, neighbors: [{ address: '10.250.0.1', asn: 65000 }, { address: '10.250.1.1', asn: 65010 }] },
      routerId: '192.0.2.1',
      vips: ['10.252.0.100'],
    },
  ],
];

for (const [file, input] of CASES) {
  t.test(file, async (t) => {
    const text = renderBirdConfig(input);
    const golden = path.join(DIR, file);
    if (UPDATE) fs.writeFileSync(golden, text);
    t.equal(text, fs.readFileSync(golden, 'utf8'), 'matches the golden file (UPDATE_GOLDEN=1 refreshes it)');
    t.equal(renderBirdConfig({ ...input, vips: [...input.vips].reverse() }), text, 'the order of the VIPs does not matter');
    if (!hasBird) return t.fail('bird is not installed (scripts/setup.sh installs bird2)');
    const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'nftfarm-bird-'));
    t.teardown(() => fs.rmSync(tmp, { recursive: true, force: true }));
    fs.writeFileSync(path.join(tmp, 'bird.conf'), text);
    const parsed = spawnSync('bird', ['-p', '-c', path.join(tmp, 'bird.conf')], { encoding: 'utf8' });
    t.equal(parsed.status, 0, `bird -p accepts it: ${parsed.stderr}`);
  });
}

t.test('identical attributes on every node: nothing per node but the router id', async (t) => {
  const one = renderBirdConfig({ settings: base, routerId: '10.250.0.2', vips: ['10.252.0.100'] });
  const two = renderBirdConfig({ settings: base, routerId: '10.250.0.3', vips: ['10.252.0.100'] });
  const differing = one.split('\n').filter((line, i) => line !== two.split('\n')[i]);
  t.strictSame(differing, ['router id 10.250.0.2;']);
  t.notMatch(one, /bgp_med|bgp_path|bgp_community|prepend/, 'no MED, prepend or community by default');
  t.match(one, /graceful restart off;/);
  t.match(one, /long lived graceful restart off;/);
  t.match(one, /route 10\.252\.0\.100\/32 blackhole;/);
  t.match(one, /hold time 3;\n\s+keepalive time 1;/);
});
