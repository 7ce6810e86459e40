#!/usr/bin/env node
/**
 * Data-plane scale benchmark, in a lab of network namespaces (run as root, after
 * `npm run build`):  node bench/dataplane-scale.mjs [N ...]   (default: 1 1000 10000)
 *
 * For each N: a store with N DSR farms (one UDP farm that is measured, N-1 TCP farms on other
 * ports of the same VIP, two backends each) -> nftfarm starts on it (cold convergence time),
 * then UDP packets per second through the measured farm (dispatch cost), the time from an
 * API write to the kernel (incremental pass), and nftfarm's CPU use while idle.
 */
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { createLab, LAB_VIP } from '../dist/lab/lab.js';
import { startLabDaemon } from '../dist/lab/daemon.js';
import { openDatabase } from '../dist/store/db.js';
import { Store } from '../dist/store/store.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const sizes = process.argv.slice(2).map(Number).filter((n) => n > 0);
const SIZES = sizes.length ? sizes : [1, 1000, 10000];
const VIP = LAB_VIP;
const UDP_PORT = 5000;
const BLAST_SECONDS = 4;
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

function prepareStore(dbPath, n, backends) {
  const store = new Store(openDatabase(dbPath));
  store.write((generation) => {
    const add = (name, vport, protocol) => {
      const farm = store.insertFarm({ name, vip: VIP, vport, protocol, nattype: 'dsr', algorithm: 'weight', persistence: '', ttl: 60, running: true }, generation);
      for (const b of backends) store.insertBackend(farm.id, { ip: b.ip, port: null, weight: 1, priority: 1, maxConns: 0 }, generation);
    };
    add('measured', String(UDP_PORT), 'udp');
    for (let i = 1; i < n; i++) add(`filler${i}`, String(10000 + i), 'tcp');
  });
  store.close();
}

function cpuSeconds(pid) {
  const fields = fs.readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

async function udpRate(lab) {
  const counters = lab.backends.map((b) =>
    lab.spawn(b.ns, ['python3', path.join(here, 'udp-count.py'), VIP, String(UDP_PORT)], { stdio: ['pipe', 'pipe', 'inherit'] }),
  );
  await Promise.all(counters.map((c) => new Promise((resolve) => c.stdout.once('data', resolve))));
  const blast = await lab.exec(lab.client.ns, ['python3', path.join(here, 'udp-blast.py'), VIP, String(UDP_PORT), String(BLAST_SECONDS), '32'], { timeoutMs: 30_000 });
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
  const total = received.reduce((a, b) => a + b, 0);
  return { sent: Number(blast.stdout.trim()), received: total, perBackend: received, pps: Math.round(total / BLAST_SECONDS) };
}

async function run(n) {
  const cleanups = [];
  const t = { teardown: (fn) => cleanups.push(fn) };
  const lab = await createLab({ prefix: 'nfbench', backends: 2 });
  try {
    await lab.configureDsrBackends(VIP);
    const started = Date.now();
    const daemon = await startLabDaemon(t, lab, { NFTFARM_LOG_LEVEL: 'warn' }, { beforeStart: (db) => prepareStore(db, n, lab.backends) });
    const apiMs = Date.now() - started;
    const ready = await daemon.until(async () => {
      const farm = await daemon.api('GET', '/farms/measured');
      return farm.body?.params?.status === 'up' && farm.body.params.dataplane.state === 'applied';
    }, 300_000);
    const coldMs = Date.now() - started;
    if (!ready) throw new Error(`farm not up:\n${daemon.logs().slice(-3000)}`);

    const rates = [];
    for (let i = 0; i < 3; i++) rates.push(await udpRate(lab));

    const writes = [];
    for (let i = 0; i < 5; i++) {
      const t0 = Date.now();
      const answer = await daemon.api('PUT', '/farms/measured/backends/0', { weight: (i % 2) + 2 });
      if (answer.status !== 200) throw new Error(JSON.stringify(answer));
      // Poll without pauses: each poll is a curl in the namespace (about 10 ms).
      for (;;) {
        const d = (await daemon.api('GET', '/farms/measured')).body.params.dataplane;
        if (d.applied_generation === d.generation) break;
        if (Date.now() - t0 > 60_000) throw new Error('write not applied within 60 s');
      }
      writes.push(Date.now() - t0);
    }

    // Idle: let the last pass settle, then 20 s with no change at all.
    await new Promise((r) => setTimeout(r, 10_000));
    const pid = daemon.pid();
    const cpu0 = cpuSeconds(pid);
    await new Promise((r) => setTimeout(r, 20_000));
    const idleCpu = (cpuSeconds(pid) - cpu0) / 20;

    const result = {
      farms: n,
      apiUpMs: apiMs,
      coldStartMs: coldMs,
      udpPps: median(rates.map((r) => r.pps)),
      udpRuns: rates.map((r) => `${r.received}/${r.sent}`),
      writeToKernelMs: median(writes),
      idleCpuPercent: Math.round(idleCpu * 1000) / 10,
    };
    console.log(JSON.stringify(result));
    return result;
  } finally {
    for (const fn of cleanups.reverse()) await fn();
    await lab.destroy();
  }
}

const results = [];
for (const n of SIZES) results.push(await run(n));
console.log('\n| farms | start to API up | start to farms applied | UDP pps through one farm (median of 3) | API write to kernel (median of 5) | idle CPU |');
console.log('|---:|---:|---:|---:|---:|---:|');
for (const r of results) console.log(`| ${r.farms} | ${r.apiUpMs} ms | ${r.coldStartMs} ms | ${r.udpPps} | ${r.writeToKernelMs} ms | ${r.idleCpuPercent} % |`);
