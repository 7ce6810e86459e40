#!/usr/bin/env node
/**
 * What one instance of each kind of rule on the established packet's path costs (run as root,
 * after `npm run build`; needs gcc):   node bench/expression-cost.mjs [ROUNDS] [K]
 *
 * One lab, no daemon. A table of its own hooks the load balancer's ingress for the farm port:
 * each packet runs a chain holding K copies (default 100) of one rule, then a bare MAC rewrite
 * and `fwd`. Each measurement is paired with one of the same table with the chain empty;
 * 64-byte UDP from a C sender (sendmmsg, 32 flows, bench/lib/udp-blast-mmsg.c), counted by a
 * netdev counter at b1's ingress. Cost of one copy = (1/pps(K copies) - 1/pps(none)) / K.
 * Amplifying K times puts the cost far above the run-to-run noise of a shared machine.
 */
import { execFileSync } from 'node:child_process';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { createLab, LAB_VIP, LB_MAC, macForIp, backendIp } from '../lab/dist/lab/lab.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const BLAST = path.join(os.tmpdir(), `nftfarm-udp-blast-mmsg-${process.pid}`);
execFileSync('gcc', ['-O2', '-o', BLAST, path.join(here, 'lib', 'udp-blast-mmsg.c')]);
const ROUNDS = Number(process.argv[2] ?? 5), SECONDS = 2, K = Number(process.argv[3] ?? 100);
const VIP = LAB_VIP, PORT = 5000;
const median = (xs) => { const s = [...xs].sort((a, b) => a - b); return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2; };
const F = 'ip saddr . ip daddr . th sport . th dport';
const B1MAC = macForIp(backendIp(1));
const components = {
  zero: null,
  pin_lookup: `meta mark set ${F} map @flows`,
  pin_refresh: `update @flows { ${F} : meta mark }`,
  mac_lookup_counted: `ether daddr set meta mark map @macs`,
  mac_lookup_uncounted: `ether daddr set meta mark map @macs_nc`,
  dispatch_vmap_jump: `ip daddr . meta l4proto . th dport vmap @ports`,
  jump: `jump empty`,
  meta_match: `meta pkttype host`,
  ether_write: `ether saddr set ${LB_MAC}`,
};
const only = Object.keys(components);
const table = (rule) => `table netdev amp {
 map flows { type ipv4_addr . ipv4_addr . inet_service . inet_service : mark; size 65536; flags dynamic,timeout; timeout 300s; }
 map macs { type mark : ether_addr; counter; elements = { 1 : ${B1MAC} } }
 map macs_nc { type mark : ether_addr; elements = { 1 : ${B1MAC} } }
 map ports { type ipv4_addr . inet_proto . inet_service : verdict; elements = { ${VIP} . udp . ${PORT} : jump empty } }
 chain empty { }
 chain work {
${rule ? Array.from({ length: K }, () => `  ${rule}`).join('\n') : ''}
 }
 chain in {
  type filter hook ingress device "eth0" priority -250; policy accept;
  meta pkttype host ip daddr ${VIP} udp dport ${PORT} meta mark set 1 update @flows { ${F} : meta mark } jump work
  meta pkttype host ip daddr ${VIP} udp dport ${PORT} ether saddr set ${LB_MAC} ether daddr set ${B1MAC} fwd to "eth0"
 }
}
`;
const lab = await createLab({ prefix: 'nfamp', backends: 1 });
try {
  await lab.configureDsrBackends(VIP);
  await lab.execOk(lab.client.ns, ['ip', 'neigh', 'replace', VIP, 'lladdr', LB_MAC, 'dev', 'eth0']);
  const b1 = lab.backends[0];
  await lab.execOk(b1.ns, ['nft', '-f', '-'], { input: `table netdev sink {\n chain in {\n type filter hook ingress device "eth0" priority -500; policy accept;\n udp dport ${PORT} counter name c drop\n }\n counter c {}\n}\n` });
  const count = async () => Number(/packets (\d+)/.exec((await lab.execOk(b1.ns, ['nft', 'list', 'counter', 'netdev', 'sink', 'c'])).stdout)[1]);
  const run = async () => {
    const before = await count();
    await lab.execOk(lab.client.ns, [BLAST, VIP, String(PORT), String(SECONDS), '32'], { timeoutMs: 30000 });
    await new Promise((r) => setTimeout(r, 200));
    return ((await count()) - before) / SECONDS;
  };
  const load = async (rule) => { await lab.exec(lab.lb.ns, ['nft', 'delete', 'table', 'netdev', 'amp']); await lab.execOk(lab.lb.ns, ['nft', '-f', '-'], { input: table(rule) }); };
  const cost = {}; for (const c of only) cost[c] = [];
  for (let i = 0; i < ROUNDS; i++) {
    for (const c of only.slice(1)) {
      await load(null); const z = await run();
      await load(components[c]); const x = await run();
      const ns = (1e9 / x - 1e9 / z) / K;
      cost[c].push(ns); cost.zero.push(1e9 / z);
      console.error(`round ${i} ${c}: ${Math.round(x)} pps vs ${Math.round(z)} -> ${ns.toFixed(1)} ns each`);
    }
  }
  console.log(`K=${K}, ${ROUNDS} rounds; zero: ${median(cost.zero).toFixed(0)} ns/packet`);
  for (const c of only.slice(1)) console.log(`${c}: median ${median(cost[c]).toFixed(1)} ns per instance (${cost[c].map((x) => x.toFixed(0)).join(' ')})`);
} finally {
  await lab.destroy();
  execFileSync('rm', ['-f', BLAST]);
}
