#!/usr/bin/env node
/**
 * The netdev table of the bench's measured farm, rendered by this checkout's dist/ (no daemon):
 * node bench/lib/render-measured.mjs MODE PROTO PORT [OTHER_FARMS]. One farm on LAB_VIP with
 * b1 as its only backend, on the lab's eth0 (index 2: the lab's LB has lo and eth0 only);
 * OTHER_FARMS more DSR farms on other VIPs beside it. For bench/ruleset-ab.mjs, which loads
 * the output of two checkouts in turn in one lab.
 */
import { desiredState, isRendered } from '../../dist/reconcile/desired.js';
import { renderFarm } from '../../dist/reconcile/farm-render.js';
import { assembleTables } from '../../dist/reconcile/assemble.js';
import { renderTableText } from '../../dist/dataplane/nft/objects.js';

const [mode = 'dsr', protocol = 'udp', port = '5000', others = '0'] = process.argv.slice(2);
const LB_MAC = '02:00:0a:fa:00:02';
const interfaces = [
  { name: 'lo', index: 1, mac: '', up: true, addresses: [{ address: '127.0.0.1', prefixLength: 8 }] },
  { name: 'eth0', index: 2, mac: LB_MAC, up: true, addresses: [{ address: '10.250.0.2', prefixLength: 24 }] },
];
const macOf = (_i, ip) => (ip === '10.250.0.21' ? '02:00:0a:fa:00:15' : null);
const farm = (id, fields) => ({
  id, slot: id, name: `f${id}`, profile: 'l4xnat', vip: '10.250.0.100', vport: port, protocol, nattype: mode,
  algorithm: 'weight', persistence: '', ttl: 60, running: true, generation: 1, ...fields,
});
const backend = (uid, farmId) => ({ uid, farmId, id: 0, ip: '10.250.0.21', port: null, weight: 1, priority: 1, maxConns: 0, maintenance: 'none' });
const farms = [{ farm: farm(1, {}), backends: [backend(1, 1)], healthCheck: null }];
for (let i = 0; i < Number(others); i++) {
  const id = i + 2;
  farms.push({ farm: farm(id, { nattype: 'dsr', vip: `10.${200 + (i >> 16)}.${(i >> 8) & 255}.${i & 255}`, vport: '80' }), backends: [backend(id, id)], healthCheck: null });
}
const state = desiredState({ generation: 1, farms }, { interfaces, macOf });
const t = assembleTables(state.farms.filter(isRendered).map(renderFarm));
process.stdout.write(renderTableText(t.netdev));
