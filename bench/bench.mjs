#!/usr/bin/env node
/**
 * nftfarm's benchmarks, in one lab of network namespaces (run as root: `npm run bench`).
 * Bounded in time, and the lab (namespaces, processes, tables) is removed at the end.
 *
 *   data plane   64-byte UDP packets/s and TCP throughput, client -> backend b1:
 *                direct, through a bare netdev rule that only rewrites the MACs and forwards
 *                to b1 (the ceiling of any one-armed load balancer on this path), and through
 *                an nftfarm DSR farm (b1 its only backend). Interleaved rounds, medians.
 *   dispatch     the DSR/bare ratio with the measured farm alone and with 10,000 other farms.
 *   control      with N farms x 4 backends (N = 1, 1,000, 10,000): cold start to applied;
 *                one backend change from the API answer to the kernel commit (NFT_MSG_NEWGEN
 *                seen on netlink), p50/p99 of CHANGES; API throughput (autocannon) for GET
 *                /farms/{f} and backend PUTs; nftfarm's resident memory.
 *
 * Writes bench/RESULTS.md (the table between the markers) and prints the raw JSON.
 * Options (environment): BENCH_SIZES=1,1000,10000  BENCH_ROUNDS=5  BENCH_CHANGES=60
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { CLIENT_IP, LB_IP, createLab, LAB_VIP } from '../dist/lab/lab.js';
import { startLabDaemon, API_KEY } from '../dist/lab/daemon.js';
import { openDatabase } from '../dist/store/db.js';
import { Store } from '../dist/store/store.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const VIP = LAB_VIP;
const SIZES = (process.env.BENCH_SIZES ?? '1,1000,10000').split(',').map(Number);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 5);
const TCP_ROUNDS = Math.max(3, Math.ceil(ROUNDS / 2));
const MODE_ROUNDS = Math.max(3, Math.ceil(ROUNDS / 2));
const CHANGES = Number(process.env.BENCH_CHANGES ?? 60);
const BLAST_SECONDS = 3;
const TCP_SECONDS = 3;
const LOAD_SECONDS = 5;
const PORTS = { udpFarm: 5000, udpBare: 5001, tcpFarm: 5201, tcpBare: 5202 };
const URL_IN_LB = 'http://127.0.0.1:4444';
const started = Date.now();

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};
const percentile = (xs, p) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)];
};
const round = (x, d = 1) => Math.round(x * 10 ** d) / 10 ** d;
const log = (...args) => console.error(`[${round((Date.now() - started) / 1000, 0)}s]`, ...args);
const sh = (cmd, args) => {
  try {
    return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }).trim();
  } catch {
    return 'unavailable';
  }
};

function machine() {
  const cpus = os.cpus();
  return {
    cpu: `${cpus[0]?.model ?? 'unknown'} x ${cpus.length}`,
    memory: `${Math.round(os.totalmem() / 2 ** 30)} GiB`,
    kernel: os.release(),
    os: sh('sh', ['-c', '. /etc/os-release && echo "$PRETTY_NAME"']),
    node: process.version,
    nft: sh('nft', ['--version']),
    python: sh('python3', ['--version']),
    iperf3: sh('iperf3', ['--version']).split('\n')[0],
    date: new Date().toISOString(),
  };
}

/** N DSR farms x 4 backends (the lab's b1..b4), TCP on ports 10000+i; farm f0 is the one changed. */
function prepareStore(dbPath, n, backends) {
  const store = new Store(openDatabase(dbPath));
  store.write((generation) => {
    for (let i = 0; i < n; i++) {
      const farm = store.insertFarm(
        { name: `f${i}`, vip: VIP, vport: String(10000 + i), protocol: 'tcp', nattype: 'dsr', algorithm: 'weight', persistence: '', ttl: 60, running: true },
        generation,
      );
      for (const b of backends) store.insertBackend(farm.id, { ip: b.ip, port: null, weight: 1, priority: 1, maxConns: 0 }, generation);
    }
  });
  store.close();
}

function rssMb(pid) {
  const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
  return Math.round(Number(/VmRSS:\s+(\d+)/.exec(status)[1]) / 1024);
}

async function farmApplied(daemon, name) {
  const farm = await daemon.api('GET', `/farms/${name}`);
  const d = farm.body?.params?.dataplane;
  return farm.status === 200 && d?.state === 'applied' && d.applied_generation === d.generation && farm.body.params.status === 'up';
}

/** The bare ceiling: a table of the bench's own, before nftfarm's hook, for the bare ports only. */
async function installBareRule(lab) {
  const b1 = lab.backends[0];
  const rule = (proto, port) =>
    `meta pkttype host ip daddr ${VIP} ${proto} dport ${port} ether saddr set ${lab.lb.mac} ether daddr set ${b1.mac} fwd to "eth0"`;
  const text = `table netdev nfbench_bare {\n\tchain in {\n\t\ttype filter hook ingress device "eth0" priority -300; policy accept;\n\t\t${rule('udp', PORTS.udpBare)}\n\t\t${rule('tcp', PORTS.tcpBare)}\n\t}\n}\n`;
  await lab.execOk(lab.lb.ns, ['nft', '-f', '-'], { input: text });
}

/** Datagrams that reached b1 while the client blasted `dest:port` for BLAST_SECONDS. */
async function udpRun(lab, dest, port) {
  const b1 = lab.backends[0];
  const counter = lab.spawn(b1.ns, ['python3', path.join(here, 'udp-count.py'), '0.0.0.0', String(port)], { stdio: ['pipe', 'pipe', 'inherit'] });
  let out = '';
  counter.stdout.on('data', (d) => (out += d));
  await new Promise((resolve) => counter.stdout.once('data', resolve));
  const blast = await lab.execOk(lab.client.ns, ['python3', path.join(here, 'udp-blast.py'), dest, String(port), String(BLAST_SECONDS), '32'], { timeoutMs: 30_000 });
  await new Promise((r) => setTimeout(r, 300));
  const exited = new Promise((resolve) => counter.on('exit', resolve));
  counter.stdin.end('stop\n');
  await exited;
  const received = Number(out.trim().split('\n').pop());
  return { sent: Number(blast.stdout.trim()), received, pps: Math.round(received / BLAST_SECONDS) };
}

async function tcpRun(lab, dest, port) {
  const r = await lab.execOk(lab.client.ns, ['iperf3', '-c', dest, '-p', String(port), '-t', String(TCP_SECONDS), '-J'], { timeoutMs: 60_000 });
  return JSON.parse(r.stdout).end.sum_received.bits_per_second / 1e9;
}

/** Interleaved rounds of each path (so drift in the machine's load hits all of them alike). */
async function udpCompare(lab, paths, rounds) {
  const runs = Object.fromEntries(Object.keys(paths).map((k) => [k, []]));
  for (let i = 0; i < rounds; i++) {
    for (const [name, [dest, port]] of Object.entries(paths)) {
      const r = await udpRun(lab, dest, port);
      runs[name].push(r);
      log(`udp ${name} round ${i + 1}: ${r.pps} pps (${r.received}/${r.sent})`);
    }
  }
  return Object.fromEntries(Object.entries(runs).map(([k, v]) => [k, { medianPps: median(v.map((r) => r.pps)), runs: v }]));
}

async function createMeasuredFarm(daemon, lab, name, protocol, port) {
  const ok = (r, what) => {
    if (r.status !== 200 && r.status !== 201) throw new Error(`${what}: ${JSON.stringify(r.body)}`);
  };
  ok(await daemon.api('POST', '/farms', { farmname: name, profile: 'l4xnat', vip: VIP, vport: String(port) }), `create ${name}`);
  ok(await daemon.api('PUT', `/farms/${name}`, { nattype: 'dsr', protocol }), `modify ${name}`);
  ok(await daemon.api('POST', `/farms/${name}/backends`, { ip: lab.backends[0].ip }), `backend of ${name}`);
  if (!(await daemon.until(() => farmApplied(daemon, name), 120_000))) throw new Error(`${name} not applied`);
}

async function controlPlane(lab, n) {
  const cleanups = [];
  const t = { teardown: (fn) => cleanups.push(fn) };
  try {
    const t0 = Date.now();
    const daemon = await startLabDaemon(t, lab, { NFTFARM_LOG_LEVEL: 'warn' }, { beforeStart: (db) => prepareStore(db, n, lab.backends) });
    const apiUpMs = Date.now() - t0;
    if (!(await daemon.until(() => farmApplied(daemon, 'f0'), 600_000))) throw new Error(`f0 not applied:\n${daemon.logs().slice(-3000)}`);
    const coldMs = Date.now() - t0;
    log(`${n} farms: API up ${apiUpMs} ms, applied ${coldMs} ms`);
    await new Promise((r) => setTimeout(r, 2000));
    const rssAfterApply = rssMb(daemon.pid());

    const probe = await lab.execOk(lab.lb.ns, [process.execPath, path.join(here, 'lib', 'change-latency.mjs'), URL_IN_LB, API_KEY, 'f0', String(CHANGES)], {
      timeoutMs: 600_000,
    });
    const delays = JSON.parse(probe.stdout);
    const change = { p50: round(percentile(delays, 50)), p99: round(percentile(delays, 99)), max: round(Math.max(...delays)), count: delays.length };
    log(`${n} farms: change to kernel p50 ${change.p50} ms, p99 ${change.p99} ms`);

    const load = JSON.parse(
      (await lab.execOk(lab.lb.ns, [process.execPath, path.join(here, 'lib', 'api-load.mjs'), URL_IN_LB, API_KEY, 'f0', String(LOAD_SECONDS)], { timeoutMs: 600_000 })).stdout,
    );
    log(`${n} farms: GET ${load.get.requestsPerSecond}/s, PUT ${load.put.requestsPerSecond}/s, GET /stats/farms ${load.statsMs} ms, GET /metrics ${load.metricsMs} ms`);
    // Let the writes settle, then the resident memory of the idle daemon.
    await daemon.until(() => farmApplied(daemon, 'f0'), 600_000);
    await new Promise((r) => setTimeout(r, 3000));
    const rss = rssMb(daemon.pid());

    let dispatch = null;
    if (n === Math.max(...SIZES) && n > 1) {
      await createMeasuredFarm(daemon, lab, 'measured', 'udp', PORTS.udpFarm);
      dispatch = await udpCompare(lab, { bare: [VIP, PORTS.udpBare], dsr: [VIP, PORTS.udpFarm] }, ROUNDS);
    }
    return { farms: n, apiUpMs, coldMs, change, load, rssMb: rss, rssAfterApplyMb: rssAfterApply, dispatch };
  } finally {
    for (const fn of cleanups.reverse()) await fn();
    await lab.exec(lab.lb.ns, ['nft', 'delete', 'table', 'netdev', 'nftfarm']);
  }
}

async function dataPlane(lab) {
  const cleanups = [];
  const t = { teardown: (fn) => cleanups.push(fn) };
  try {
    const daemon = await startLabDaemon(t, lab, { NFTFARM_LOG_LEVEL: 'warn' });
    await createMeasuredFarm(daemon, lab, 'measured', 'udp', PORTS.udpFarm);
    const b1 = lab.backends[0];
    const udp = await udpCompare(lab, { direct: [b1.ip, PORTS.udpFarm], bare: [VIP, PORTS.udpBare], dsr: [VIP, PORTS.udpFarm] }, ROUNDS);

    await createMeasuredFarm(daemon, lab, 'tcpbench', 'tcp', PORTS.tcpFarm);
    const servers = [PORTS.tcpFarm, PORTS.tcpBare].map((p) => lab.spawn(b1.ns, ['iperf3', '-s', '-p', String(p)], { stdio: 'ignore' }));
    await new Promise((r) => setTimeout(r, 500));
    const tcp = { direct: [], bare: [], dsr: [] };
    for (let i = 0; i < TCP_ROUNDS; i++) {
      tcp.direct.push(await tcpRun(lab, b1.ip, PORTS.tcpFarm));
      tcp.bare.push(await tcpRun(lab, VIP, PORTS.tcpBare));
      tcp.dsr.push(await tcpRun(lab, VIP, PORTS.tcpFarm));
      log(`tcp round ${i + 1}: direct ${round(tcp.direct[i], 2)} bare ${round(tcp.bare[i], 2)} dsr ${round(tcp.dsr[i], 2)} Gbit/s`);
    }
    for (const s of servers) await lab.stopProcess(s);

    // The other modes, UDP only (the blast needs no replies), each against its own ceiling runs.
    // b1 routes the clients through the load balancer, as dnat and stateless_dnat need.
    await lab.execOk(b1.ns, ['ip', 'route', 'replace', `${CLIENT_IP}/32`, 'via', LB_IP]);
    const modes = {};
    for (const mode of ['stateless_dnat', 'dnat', 'nat']) {
      const changed = await daemon.api('PUT', '/farms/measured', { nattype: mode });
      if (changed.status !== 200) throw new Error(`measured -> ${mode}: ${JSON.stringify(changed.body)}`);
      if (!(await daemon.until(() => farmApplied(daemon, 'measured'), 60_000))) throw new Error(`measured not applied in ${mode}`);
      modes[mode] = await udpCompare(lab, { bare: [VIP, PORTS.udpBare], [mode]: [VIP, PORTS.udpFarm] }, MODE_ROUNDS);
    }
    await lab.execOk(b1.ns, ['ip', 'route', 'del', `${CLIENT_IP}/32`]);
    return {
      udp,
      modes,
      tcp: Object.fromEntries(Object.entries(tcp).map(([k, v]) => [k, { medianGbps: round(median(v), 2), runs: v.map((x) => round(x, 2)) }])),
    };
  } finally {
    for (const fn of cleanups.reverse()) await fn();
    await lab.exec(lab.lb.ns, ['nft', 'delete', 'table', 'netdev', 'nftfarm']);
  }
}

function table(results) {
  const { dp, cp, m } = results;
  const r = (a, b) => (a / b).toFixed(3);
  const big = cp.find((c) => c.dispatch);
  const lines = [];
  lines.push(`Machine: ${m.cpu}, ${m.memory}, ${m.os}, kernel ${m.kernel}; ${m.nft}; Node ${m.node}; ${m.python}; ${m.iperf3}. ${m.date}.`);
  lines.push('A shared 2-core machine (other engineers ran tests at the same time): treat small differences as noise.');
  lines.push('');
  lines.push('| data plane (client -> b1) | direct | bare MAC-rewrite ceiling | nftfarm DSR | DSR / direct | DSR / ceiling |');
  lines.push('|---|---:|---:|---:|---:|---:|');
  const u = dp.udp;
  lines.push(`| 64-byte UDP, packets/s (median of ${ROUNDS}) | ${u.direct.medianPps} | ${u.bare.medianPps} | ${u.dsr.medianPps} | ${r(u.dsr.medianPps, u.direct.medianPps)} | ${r(u.dsr.medianPps, u.bare.medianPps)} |`);
  const tc = dp.tcp;
  lines.push(`| TCP, Gbit/s (iperf3, median of ${TCP_ROUNDS}) | ${tc.direct.medianGbps} | ${tc.bare.medianGbps} | ${tc.dsr.medianGbps} | ${r(tc.dsr.medianGbps, tc.direct.medianGbps)} | ${r(tc.dsr.medianGbps, tc.bare.medianGbps)} |`);
  if (dp.modes) {
    lines.push('');
    lines.push(`| other modes, 64-byte UDP (median of ${MODE_ROUNDS}, interleaved with the ceiling) | ceiling pps | mode pps | mode / ceiling | mode / direct |`);
    lines.push('|---|---:|---:|---:|---:|');
    for (const [mode, runs] of Object.entries(dp.modes)) {
      lines.push(`| ${mode} | ${runs.bare.medianPps} | ${runs[mode].medianPps} | ${r(runs[mode].medianPps, runs.bare.medianPps)} | ${r(runs[mode].medianPps, u.direct.medianPps)} |`);
    }
  }
  if (big) {
    const ratio1 = u.dsr.medianPps / u.bare.medianPps;
    const ratioN = big.dispatch.dsr.medianPps / big.dispatch.bare.medianPps;
    lines.push('');
    lines.push(`| dispatch cost (UDP, median of ${ROUNDS}) | ceiling pps | DSR pps | DSR / ceiling |`);
    lines.push('|---|---:|---:|---:|');
    lines.push(`| the measured farm alone | ${u.bare.medianPps} | ${u.dsr.medianPps} | ${ratio1.toFixed(3)} |`);
    lines.push(`| with ${big.farms.toLocaleString('en-US')} other farms | ${big.dispatch.bare.medianPps} | ${big.dispatch.dsr.medianPps} | ${ratioN.toFixed(3)} |`);
    lines.push(`| **${big.farms.toLocaleString('en-US')} farms / 1 farm** | | | **${(ratioN / ratio1).toFixed(3)}** |`);
  }
  lines.push('');
  lines.push(`| farms x 4 backends | cold start: API up | cold start: all applied | one change, API answer -> kernel commit: p50 / p99 / max (${CHANGES} changes) | GET /farms/{f} req/s (p99) | backend PUT req/s (p99) | GET /stats/farms (all farms' counters) | GET /metrics | nftfarm RSS |`);
  lines.push('|---:|---:|---:|---:|---:|---:|---:|---:|---:|');
  for (const c of cp) {
    lines.push(
      `| ${c.farms.toLocaleString('en-US')} | ${c.apiUpMs} ms | ${c.coldMs.toLocaleString('en-US')} ms | ${c.change.p50} / ${c.change.p99} / ${c.change.max} ms | ${c.load.get.requestsPerSecond} (${c.load.get.p99Ms} ms) | ${c.load.put.requestsPerSecond} (${c.load.put.p99Ms} ms) | ${c.load.statsMs} ms | ${c.load.metricsMs} ms | ${c.rssMb} MB |`,
    );
  }
  return lines.join('\n');
}

async function main() {
  if (process.getuid?.() !== 0) throw new Error('run as root (network namespaces)');
  const m = machine();
  log('machine', JSON.stringify(m));
  const lab = await createLab({ prefix: 'nfbench', backends: 4 });
  try {
    await lab.configureDsrBackends(VIP);
    await installBareRule(lab);
    const dp = await dataPlane(lab);
    const cp = [];
    for (const n of SIZES) cp.push(await controlPlane(lab, n));
    const results = { m, dp, cp, seconds: Math.round((Date.now() - started) / 1000) };
    console.log(JSON.stringify(results));
    const text = table(results);
    console.log(`\n${text}\n`);
    const file = path.join(here, 'RESULTS.md');
    const doc = fs.readFileSync(file, 'utf8');
    const begin = '<!-- bench:begin -->';
    const end = '<!-- bench:end -->';
    const block = `${begin}\n\`npm run bench\` (${results.seconds} s):\n\n${text}\n${end}`;
    fs.writeFileSync(file, doc.includes(begin) ? doc.replace(new RegExp(`${begin}[\\s\\S]*${end}`), block) : `${doc}\n${block}\n`);
    fs.writeFileSync(path.join(here, 'results.json'), `${JSON.stringify(results, null, 1)}\n`);
    log(`done in ${results.seconds} s; bench/RESULTS.md updated`);
  } finally {
    await lab.destroy();
  }
}

await main();
