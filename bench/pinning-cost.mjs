#!/usr/bin/env node
/**
 * What flow pinning costs in packet rate (run as root, after `npm run build`):
 *   node bench/pinning-cost.mjs [rounds]   (default 3)
 *
 * One lab, one DSR farm with two backends rendered by nftfarm's own renderer and loaded with
 * nft (no daemon: nothing else runs). The same farm is measured with its flow pins and with
 * the pin rules taken out (the farm's ruleset minus the rules that read, refresh and forget
 * pins in `flows_udp`), alternating, 64-byte UDP from 32 flows. Prints the medians and the ratio.
 */
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { createLab, LAB_VIP, LB_MAC, macForIp } from '../lab/dist/lab/lab.js';
import { desiredState, isRendered } from '../dist/reconcile/desired.js';
import { renderFarm } from '../dist/reconcile/farm-render.js';
import { assembleTables } from '../dist/reconcile/assemble.js';
import { renderTableText } from '../dist/dataplane/nft/objects.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const ROUNDS = Number(process.argv[2] ?? 3);
const VIP = LAB_VIP;
const PORT = 5000;
const SECONDS = 4;
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

async function udpRate(lab) {
  const counters = lab.backends.map((b) =>
    lab.spawn(b.ns, ['python3', path.join(here, 'udp-count.py'), VIP, String(PORT)], { stdio: ['pipe', 'pipe', 'inherit'] }),
  );
  await Promise.all(counters.map((c) => new Promise((resolve) => c.stdout.once('data', resolve))));
  await lab.exec(lab.client.ns, ['python3', path.join(here, 'udp-blast.py'), VIP, String(PORT), String(SECONDS), '32'], { timeoutMs: 30_000 });
  await new Promise((r) => setTimeout(r, 300));
  const received = await Promise.all(
    counters.map(
      (c) =>
        new Promise((resolve) => {
          let out = '';
          c.stdout.on('data', (d) => (out += d));
          c.on('exit', () => resolve(Number(out.trim().split('\n').pop())));
          c.stdin.end('stop\n');
        }),
    ),
  );
  return Math.round(received.reduce((a, b) => a + b, 0) / SECONDS);
}

const lab = await createLab({ prefix: 'nfpin', backends: 2 });
try {
  await lab.configureDsrBackends(VIP);
  // No daemon answers ARP for the VIP here: the client knows the load balancer's MAC.
  await lab.execOk(lab.client.ns, ['ip', 'neigh', 'replace', VIP, 'lladdr', LB_MAC, 'dev', 'eth0']);
  const links = JSON.parse((await lab.execOk(lab.lb.ns, ['ip', '-j', 'link', 'show', 'eth0'])).stdout);
  const iface = { name: 'eth0', index: links[0].ifindex, mac: LB_MAC, up: true, addresses: [{ address: lab.lb.ip, prefixLength: 24 }] };
  const farm = { id: 1, slot: 1, name: 'measured', profile: 'l4xnat', vip: VIP, vport: String(PORT), protocol: 'udp', nattype: 'dsr', algorithm: 'weight', persistence: '', ttl: 60, running: true, generation: 1 };
  const backends = lab.backends.map((b, i) => ({ uid: i + 1, farmId: 1, id: i, ip: b.ip, port: null, weight: 1, priority: 1, maxConns: 0, maintenance: 'none' }));
  const state = desiredState({ generation: 1, farms: [{ farm, backends, healthCheck: null }] }, { interfaces: [iface], macOf: (_i, ip) => macForIp(ip) });
  const pinned = renderTableText(assembleTables(state.farms.filter(isRendered).map(renderFarm)).netdev);
  const unpinned = pinned
    .split('\n')
    // The pin rules (the pin stage chain's, and serve's refresh and forget) and the farm's jump to the pin stage.
    .filter((line) => !line.includes('@flows_udp') && !/jump pin_/.test(line))
    .join('\n');
  const load = async (text) => {
    await lab.exec(lab.lb.ns, ['nft', 'delete', 'table', 'netdev', 'nftfarm']);
    await lab.execOk(lab.lb.ns, ['nft', '-f', '-'], { input: text });
  };
  const rates = { pinned: [], unpinned: [] };
  for (let round = 0; round < ROUNDS; round++) {
    for (const [name, text] of [['pinned', pinned], ['unpinned', unpinned]]) {
      await load(text);
      rates[name].push(await udpRate(lab));
      console.log(JSON.stringify({ round, ruleset: name, pps: rates[name].at(-1) }));
    }
  }
  const p = median(rates.pinned);
  const u = median(rates.unpinned);
  console.log(`\n| ruleset | 64-byte UDP pps (median of ${ROUNDS}) |\n|---|---:|\n| with flow pinning | ${p} |\n| same farm without the pin rules | ${u} |\n| ratio | ${(p / u).toFixed(3)} |`);
} finally {
  await lab.destroy();
}
