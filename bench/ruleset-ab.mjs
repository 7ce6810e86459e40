#!/usr/bin/env node
/**
 * Netdev rulesets of the measured farm loaded in turn in one lab, each paired with the bare
 * ceiling (run as root, after `npm run build`; needs gcc):
 *   node bench/ruleset-ab.mjs ROUNDS SECONDS LABEL=FILE [LABEL=FILE ...]
 * Each FILE is an `nft -f` text of `table netdev nftfarm` for a farm of LAB_VIP udp 5000 with
 * b1 its only backend (bench/lib/render-measured.mjs renders one from a checkout). The bare
 * ceiling is a table of its own (priority -300, udp 5001), in the kernel during the bare runs
 * only; LABEL+bare=FILE keeps it loaded during that ruleset's farm runs too (as `npm run bench`
 * did before), so the farm's packets also run its chain. Per round and ruleset: load the
 * ruleset (pins start empty), blast the farm port and
 * the bare port, in an order that alternates by round, from the C sender (sendmmsg, 32 flows);
 * b1 counts in a netdev ingress counter (no user-space receiver). Prints, per ruleset, the
 * median over rounds of farm pps / bare pps (paired), its quartiles, and the same ratio from
 * the sender's CPU time per datagram (bare ns / farm ns), which other load on the machine
 * moves less than it moves rates.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { createLab, LAB_VIP, LB_MAC, macForIp, backendIp } from '../lab/dist/lab/lab.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const BLAST = path.join(os.tmpdir(), `nftfarm-udp-blast-mmsg-${process.pid}`);
execFileSync('gcc', ['-O2', '-o', BLAST, path.join(here, 'lib', 'udp-blast-mmsg.c')]);
const [roundsArg, secondsArg, ...specs] = process.argv.slice(2);
const ROUNDS = Number(roundsArg ?? 8), SECONDS = Number(secondsArg ?? 2);
// LABEL+bare=FILE: the bare table stays loaded during that ruleset's farm runs too, as it
// was in \`npm run bench\` before the ceiling table was loaded for ceiling runs only.
const rulesets = specs.map((s) => { const [label, file] = s.split('='); return { label, keepBare: label.endsWith('+bare'), text: fs.readFileSync(file, 'utf8') }; });
const PORT = 5000, BARE = 5001, VIP = LAB_VIP;
const B1MAC = macForIp(backendIp(1));
const q = (xs, p) => { const s = [...xs].sort((a, b) => a - b); const i = (s.length - 1) * p; const lo = Math.floor(i); return s[lo] + (s[Math.ceil(i)] - s[lo]) * (i - lo); };
const lab = await createLab({ prefix: `nfab${process.env.NFTFARM_LAB_TAG ?? ''}`, backends: 1 });
try {
  await lab.configureDsrBackends(VIP);
  await lab.execOk(lab.client.ns, ['ip', 'neigh', 'replace', VIP, 'lladdr', LB_MAC, 'dev', 'eth0']);
  const b1 = lab.backends[0];
  await lab.execOk(b1.ns, ['nft', '-f', '-'], { input: `table netdev sink {\n counter c {}\n chain in {\n type filter hook ingress device "eth0" priority -500; policy accept;\n udp dport { ${PORT}, ${BARE} } counter name c drop\n }\n}\n` });
  const bareText = `table netdev nfbench_bare {\n chain in {\n type filter hook ingress device "eth0" priority -300; policy accept;\n meta pkttype host ip daddr ${VIP} udp dport ${BARE} ether saddr set ${LB_MAC} ether daddr set ${B1MAC} fwd to "eth0"\n }\n}\n`;
  const bareOff = () => lab.exec(lab.lb.ns, ['nft', 'delete', 'table', 'netdev', 'nfbench_bare']);
  const bareOn = async () => { await bareOff(); await lab.execOk(lab.lb.ns, ['nft', '-f', '-'], { input: bareText }); };
  const count = async () => Number(/packets (\d+)/.exec((await lab.execOk(b1.ns, ['nft', 'list', 'counter', 'netdev', 'sink', 'c'])).stdout)[1]);
  const run = async (port, keepBare) => {
    await (port === BARE || keepBare ? bareOn() : bareOff());
    const before = await count();
    const out = (await lab.execOk(lab.client.ns, [BLAST, VIP, String(port), String(SECONDS), '32'], { timeoutMs: 60000 })).stdout.trim().split(' ');
    await new Promise((r) => setTimeout(r, 100));
    return { pps: ((await count()) - before) / SECONDS, cpuNs: Number(out[1]) };
  };
  const res = Object.fromEntries(rulesets.map((r) => [r.label, { pps: [], cpu: [] }]));
  for (let i = 0; i < ROUNDS; i++) {
    const order = i % 2 ? [...rulesets].reverse() : rulesets;
    for (const r of order) {
      await lab.exec(lab.lb.ns, ['nft', 'delete', 'table', 'netdev', 'nftfarm']);
      await lab.execOk(lab.lb.ns, ['nft', '-f', '-'], { input: r.text });
      const [a, b] = i % 2 ? [await run(BARE), await run(PORT, r.keepBare)] : [null, await run(PORT, r.keepBare)];
      const bare = a ?? (await run(BARE));
      const farm = b;
      res[r.label].pps.push(farm.pps / bare.pps);
      res[r.label].cpu.push(bare.cpuNs / farm.cpuNs);
      console.error(`round ${i + 1} ${r.label}: farm ${Math.round(farm.pps)} pps (${farm.cpuNs} ns) bare ${Math.round(bare.pps)} pps (${bare.cpuNs} ns): ${(farm.pps / bare.pps).toFixed(3)} / cpu ${(bare.cpuNs / farm.cpuNs).toFixed(3)}`);
    }
  }
  for (const r of rulesets) {
    const x = res[r.label];
    console.log(`${r.label}: pps ratio median ${q(x.pps, 0.5).toFixed(3)} (IQR ${q(x.pps, 0.25).toFixed(3)}-${q(x.pps, 0.75).toFixed(3)}), cpu ratio median ${q(x.cpu, 0.5).toFixed(3)} (IQR ${q(x.cpu, 0.25).toFixed(3)}-${q(x.cpu, 0.75).toFixed(3)}), ${ROUNDS} rounds of ${SECONDS} s`);
  }
} finally {
  await lab.destroy();
  execFileSync('rm', ['-f', BLAST]);
}
