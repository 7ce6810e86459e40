#!/usr/bin/env node
/**
 * nftfarm's benchmarks, in one lab of network namespaces (run as root: `npm run bench`).
 * Bounded in time, and the lab (namespaces, processes, tables) is removed at the end.
 *
 *   data plane   64-byte UDP packets/s and TCP throughput, client -> backend b1:
 *                direct, through a bare netdev rule that only rewrites the MACs and forwards
 *                to b1 (the ceiling of any one-armed load balancer on this path), and through
 *                an nftfarm DSR farm (b1 its only backend). Interleaved rounds, medians.
 *                The same for IPv6 (issue 13): direct, an IPv6 bare MAC-rewrite rule, and an
 *                IPv6 DSR farm, interleaved; the IPv6 DSR/ceiling ratio against the IPv4 one.
 *   dispatch     the DSR/bare ratio with the measured farm alone and with 10,000 other farms.
 *   control      with N farms x 4 backends (N = 1, 1,000, 10,000), in two workloads: every
 *                backend of weight 1 (uniform), and each farm's own random weights 1-9
 *                (random): cold start to all applied; one backend change from sending the
 *                request to the kernel's commit of that farm's buckets (element notifications
 *                on netlink), alone and under 100 PUTs/s to other farms; backend PUTs/s with
 *                autocannon and the time the reconciler takes to catch up; the reads of every
 *                farm (/stats/farms, /metrics), and GET /farms/{f} while they are scraped;
 *                the selection maps' kernel elements; nftfarm's resident memory after all.
 *   stateless    10,000 stateless_dnat farms: cold start, and a pass that changes nothing.
 *
 * Writes bench/RESULTS.md (the tables between the markers), bench/change-latency.svg, and
 * prints the raw JSON. Options (environment): BENCH_SIZES=1,1000,10000  BENCH_ROUNDS=5
 * BENCH_CHANGES=30  BENCH_WORKLOADS=uniform,random  BENCH_PARTS=data,control,stateless
 * (BENCH_PARTS=data,dispatch: the data plane and the 10,000-farm dispatch ratio without the
 * control-plane measurements; BENCH_PARTS=reads: only the reads of the control part, at each
 * size and workload, printed and not written to RESULTS.md; BENCH_PROF=DIR: the daemons run
 * with `node --cpu-prof`, their profiles written to DIR); BENCH_LOG_LEVEL=debug (the daemons'
 * log level; the first load logs its structure and element times), BENCH_KEEP_LOG=FILE (the
 * stateless part's daemon log).
 */
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { allApplied, generator, machine as describeMachine, sh } from './lib/common.mjs';
import { CLIENT_IP, LB_IP, createLab, LAB_VIP, LAB_VIP6 } from '../lab/dist/lab/lab.js';
import { startLabDaemon, API_KEY } from '../lab/dist/lab/daemon.js';
import { openDatabase } from '../dist/store/db.js';
import { Store } from '../dist/store/store.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const VIP = LAB_VIP;
const SIZES = (process.env.BENCH_SIZES ?? '1,1000,10000').split(',').map(Number);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 5);
const TCP_ROUNDS = Math.max(3, Math.ceil(ROUNDS / 2));
const MODE_ROUNDS = Math.max(3, Math.ceil(ROUNDS / 2));
const CHANGES = Number(process.env.BENCH_CHANGES ?? 30);
const WORKLOADS = (process.env.BENCH_WORKLOADS ?? 'uniform,random').split(',');
const PARTS = new Set((process.env.BENCH_PARTS ?? 'data,control,stateless').split(','));
/** The first farm the bench writes gets slot 1: its selection region starts at 0x80001000. */
const F0_SLOT = 1;
const BLAST_SECONDS = 3;
const TCP_SECONDS = 3;
const LOAD_SECONDS = 5;
/** How long the daemon idles before its resident memory is read again (largest size only). */
const IDLE_RSS_WAIT_MS = 45_000;
const PORTS = { udpFarm: 5000, udpBare: 5001, tcpFarm: 5201, tcpBare: 5202, udpFarm6: 5010, udpBare6: 5011 };
const URL_IN_LB = 'http://127.0.0.1:4444';
/** The daemon's environment: warnings only, and a CPU profile when BENCH_PROF names a directory. */
const DAEMON_ENV = { NFTFARM_LOG_LEVEL: process.env.BENCH_LOG_LEVEL ?? 'warn', ...(process.env.BENCH_PROF ? { NODE_OPTIONS: `--cpu-prof --cpu-prof-dir=${path.resolve(process.env.BENCH_PROF)}` } : {}) };
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



/**
 * N farms x 4 backends (the lab's b1..b4), TCP on ports 10000+i; farm f0 is the one changed.
 * uniform: every weight 1; random: each backend of each farm its own weight 1-9. The store
 * also remembers the backends' MACs, as that of a node that has run before does.
 */
function prepareStore(dbPath, n, backends, workload, nattype = 'dsr') {
  const store = new Store(openDatabase(dbPath));
  const rnd = generator(20261204);
  store.write((generation) => {
    for (let i = 0; i < n; i++) {
      const farm = store.insertFarm(
        { name: `f${i}`, vip: VIP, vport: String(10000 + i), protocol: 'tcp', nattype, algorithm: 'weight', persistence: '', ttl: 60, running: true },
        generation,
      );
      for (const b of backends) {
        const weight = workload === 'random' ? 1 + Math.floor(rnd() * 9) : 1;
        store.insertBackend(farm.id, { ip: b.ip, port: null, weight, priority: 1, maxConns: 0 }, generation);
      }
    }
  });
  for (const b of backends) store.rememberNeighbor('eth0', b.ip, b.mac);
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


const summary = (delays) => ({
  p50: round(percentile(delays, 50), 2),
  p99: round(percentile(delays, 99), 2),
  max: round(Math.max(...delays), 2),
  count: delays.length,
});

/**
 * The bare ceiling: a table of the bench's own, before nftfarm's hook, for the bare ports only.
 * It is in the kernel only while a ceiling run sends: loaded all along, every packet of the
 * paths it is compared with (DSR, the other modes) also ran its chain first (a hook, a base
 * chain and a rule that fails on the port), which cost them 1-2% against the ceiling
 * (bench/ruleset-ab.mjs, 8 rounds: the same ruleset 0.883-0.890 with it, 0.902 without).
 */
let bareLoaded = false;
const BARE_PORTS = new Set([PORTS.udpBare, PORTS.tcpBare, PORTS.udpBare6]);

async function bareRule(lab, on) {
  if (on === bareLoaded) return;
  if (!on) {
    await lab.execOk(lab.lb.ns, ['nft', 'delete', 'table', 'netdev', 'nfbench_bare']);
    bareLoaded = false;
    return;
  }
  const b1 = lab.backends[0];
  const rule = (proto, port, ip = 'ip', vip = VIP) =>
    `meta pkttype host ${ip} daddr ${vip} ${proto} dport ${port} ether saddr set ${lab.lb.mac} ether daddr set ${b1.mac} fwd to "eth0"`;
  const text = `table netdev nfbench_bare {\n\tchain in {\n\t\ttype filter hook ingress device "eth0" priority -300; policy accept;\n\t\t${rule('udp', PORTS.udpBare)}\n\t\t${rule('tcp', PORTS.tcpBare)}\n\t\t${rule('udp', PORTS.udpBare6, 'ip6', LAB_VIP6)}\n\t}\n}\n`;
  await lab.execOk(lab.lb.ns, ['nft', '-f', '-'], { input: text });
  bareLoaded = true;
}

/** Datagrams that reached b1 while the client blasted `dest:port` for BLAST_SECONDS. */
async function udpRun(lab, dest, port) {
  await bareRule(lab, BARE_PORTS.has(port));
  const b1 = lab.backends[0];
  const counter = lab.spawn(b1.ns, ['python3', path.join(here, 'udp-count.py'), dest.includes(':') ? '::' : '0.0.0.0', String(port)], { stdio: ['pipe', 'pipe', 'inherit'] });
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
  await bareRule(lab, BARE_PORTS.has(port));
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
  // Besides the ratio of medians: the median of each round's ratio to the ceiling run next to
  // it, which drifts less when other work on the machine comes and goes.
  const paired = (v) => (runs.bare && v !== runs.bare ? median(v.map((r, i) => r.pps / runs.bare[i].pps)) : undefined);
  return Object.fromEntries(Object.entries(runs).map(([k, v]) => [k, { medianPps: median(v.map((r) => r.pps)), pairedRatio: paired(v), runs: v }]));
}

/** The established packet's path through the netdev table, walked on the kernel's dump (lib/packet-path.mjs). */
async function packetPath(lab, port, proto) {
  const r = await lab.exec(lab.lb.ns, [process.execPath, path.join(here, 'lib', 'packet-path.mjs'), VIP, String(port), proto], { timeoutMs: 120_000 });
  if (r.code !== 0) {
    log(`packet path ${proto}/${port}: ${r.stderr.trim().split('\n').pop()}`);
    return null;
  }
  const p = JSON.parse(r.stdout);
  log(`packet path ${proto}/${port}: ${p.chains} chains, ${p.rules} rules, ${p.jumps} jumps, ${p.expressions} expressions (${p.path.join(' -> ')})`);
  return p;
}

async function createMeasuredFarm(daemon, lab, name, protocol, port, vip = VIP) {
  const ok = (r, what) => {
    if (r.status !== 200 && r.status !== 201) throw new Error(`${what}: ${JSON.stringify(r.body)}`);
  };
  ok(await daemon.api('POST', '/farms', { farmname: name, profile: 'l4xnat', vip, vport: String(port) }), `create ${name}`);
  ok(await daemon.api('PUT', `/farms/${name}`, { nattype: 'dsr', protocol }), `modify ${name}`);
  ok(await daemon.api('POST', `/farms/${name}/backends`, { ip: vip.includes(':') ? lab.backends[0].ip6 : lab.backends[0].ip }), `backend of ${name}`);
  if (!(await daemon.until(() => farmApplied(daemon, name), 120_000))) throw new Error(`${name} not applied`);
}

async function changeLatency(lab, background) {
  const probe = await lab.execOk(
    lab.lb.ns,
    [process.execPath, path.join(here, 'lib', 'change-latency.mjs'), URL_IN_LB, API_KEY, 'f0', String(F0_SLOT), String(CHANGES), String(background)],
    { timeoutMs: 600_000 },
  );
  const { delays, answers } = JSON.parse(probe.stdout);
  return { ...summary(delays), answerP50: summary(answers).p50 };
}

/**
 * When a start converged, from spawning: the end of the daemon's first pass (first_pass_at in
 * GET /system/status) when no pass ran since and everything is applied, otherwise when the
 * poll (every 200 ms) saw it converged. `polledMs`: the poll's own figure, up to 200 ms later.
 */
async function convergedAt(daemon) {
  const polled = Date.now();
  const s = (await daemon.api('GET', '/system/status?farms=false')).body.params;
  const exact = typeof s.first_pass_at === 'string' && s.first_pass_at === s.last_pass_at && s.applied_generation === s.store_generation;
  return { ms: (exact ? Date.parse(s.first_pass_at) : polled) - daemon.startedAt(), polledMs: polled - daemon.startedAt(), exact };
}

async function controlPlane(lab, n, workload) {
  const cleanups = [];
  const t = { teardown: (fn) => cleanups.push(fn) };
  try {
    const daemon = await startLabDaemon(t, lab, DAEMON_ENV, { beforeStart: (db) => prepareStore(db, n, lab.backends, workload) });
    const apiUpMs = Date.now() - daemon.startedAt();
    if (!(await daemon.until(async () => (await allApplied(daemon)) && (await farmApplied(daemon, 'f0')), 600_000))) throw new Error(`f0 not applied:\n${daemon.logs().slice(-3000)}`);
    const cold = await convergedAt(daemon);
    const coldMs = cold.ms;
    log(`${workload} ${n} farms: API up ${apiUpMs} ms, applied ${coldMs} ms (${cold.exact ? 'end of the first pass' : 'poll'}; the poll saw it at ${cold.polledMs} ms)`);
    // The probe listens to every element notification: start it once the kernel is quiet.
    await new Promise((r) => setTimeout(r, 2000));
    const change = await changeLatency(lab, 0);
    log(`${workload} ${n} farms: change request -> kernel p50 ${change.p50} ms, p99 ${change.p99} ms (answered after ${change.answerP50} ms)`);
    const underLoad = n > 1 ? await changeLatency(lab, Math.min(n - 1, 1000)) : null;
    if (underLoad) log(`${workload} ${n} farms: under 100 PUTs/s p50 ${underLoad.p50} ms, p99 ${underLoad.p99} ms`);

    const load = JSON.parse(
      (await lab.execOk(lab.lb.ns, [process.execPath, path.join(here, 'lib', 'api-load.mjs'), URL_IN_LB, API_KEY, 'f0', String(LOAD_SECONDS)], { timeoutMs: 600_000 })).stdout,
    );
    log(
      `${workload} ${n} farms: GET ${load.get.requestsPerSecond}/s, PUT ${load.put.requestsPerSecond}/s (p99 ${load.put.p99Ms} ms, caught up in ${load.caughtUpMs} ms), ` +
        `stats ${load.statsMs} ms, metrics ${load.metricsMs} ms, GET p99 ${load.underScrape.get.p99Ms} ms while scraping`,
    );
    const elements = JSON.parse((await lab.execOk(lab.lb.ns, [process.execPath, path.join(here, 'lib', 'count-elements.mjs')], { timeoutMs: 120_000 })).stdout);
    await daemon.until(() => allApplied(daemon), 600_000);
    await new Promise((r) => setTimeout(r, 3000));
    const rss = rssMb(daemon.pid());
    log(`${workload} ${n} farms: ${elements.selection} selection elements, RSS ${rss} MB`);
    // At the largest size, the resident memory once idle too: the daemon returns the pages V8
    // keeps pooled after a burst (src/memory-reclaim.ts: a check every 30 s, an 8 s window).
    let rssIdle = null;
    if (n === Math.max(...SIZES) && n > 1) {
      await new Promise((r) => setTimeout(r, IDLE_RSS_WAIT_MS));
      rssIdle = rssMb(daemon.pid());
      log(`${workload} ${n} farms: RSS ${rssIdle} MB after ${IDLE_RSS_WAIT_MS / 1000} s idle`);
    }

    // Recovery: kill -9 with writes in flight, then a plain restart (SIGTERM), each followed
    // by a start; the kernel still holds the farms, so nftfarm should adopt, not reload.
    const restarts = [];
    if (n > 1) {
      for (const signal of ['SIGKILL', 'SIGTERM']) {
        const inflight =
          signal === 'SIGKILL' ? Array.from({ length: 40 }, (_, i) => daemon.api('PUT', `/farms/f${(i * 7) % n}/backends/0`, { weight: 1 + (i % 9) }).catch(() => null)) : [];
        await new Promise((r) => setTimeout(r, 30));
        await daemon.stop(signal);
        await Promise.all(inflight);
        await daemon.start();
        const upMs = Date.now() - daemon.startedAt();
        if (!(await daemon.until(async () => (await allApplied(daemon)) && (await farmApplied(daemon, 'f0')), 600_000))) throw new Error('not converged after a restart');
        const converged = await convergedAt(daemon);
        const convergedMs = converged.ms;
        restarts.push({ signal, apiUpMs: upMs, convergedMs, convergedPolledMs: converged.polledMs });
        log(`${workload} ${n} farms: restart after ${signal}: API up ${upMs} ms, converged ${convergedMs} ms (${converged.exact ? 'end of the first pass' : 'poll'}; the poll saw it at ${converged.polledMs} ms)`);
      }
    }

    let dispatch = null;
    if (n === Math.max(...SIZES) && n > 1 && workload === WORKLOADS[0] && PARTS.has('data')) {
      await createMeasuredFarm(daemon, lab, 'measured', 'udp', PORTS.udpFarm);
      dispatch = await udpCompare(lab, { bare: [VIP, PORTS.udpBare], dsr: [VIP, PORTS.udpFarm] }, ROUNDS);
    }
    return { farms: n, workload, apiUpMs, coldMs, coldPolledMs: cold.polledMs, coldExact: cold.exact, change, underLoad, load, elements, rssMb: rss, rssIdleMb: rssIdle, restarts, dispatch };
  } finally {
    for (const fn of cleanups.reverse()) await fn();
    await lab.exec(lab.lb.ns, ['nft', 'delete', 'table', 'netdev', 'nftfarm']);
  }
}

/** The reads of every farm alone (BENCH_PARTS=reads): /stats/farms, /metrics, GET /farms/{f} with and without scrapes. */
async function readsOnly(lab, n, workload) {
  const cleanups = [];
  const t = { teardown: (fn) => cleanups.push(fn) };
  try {
    const daemon = await startLabDaemon(t, lab, DAEMON_ENV, { beforeStart: (db) => prepareStore(db, n, lab.backends, workload) });
    if (!(await daemon.until(async () => (await allApplied(daemon)) && (await farmApplied(daemon, 'f0')), 600_000))) throw new Error('farms not applied');
    await new Promise((r) => setTimeout(r, 2000));
    const load = JSON.parse(
      (await lab.execOk(lab.lb.ns, [process.execPath, path.join(here, 'lib', 'api-load.mjs'), URL_IN_LB, API_KEY, 'f0', String(LOAD_SECONDS), 'reads'], { timeoutMs: 600_000 })).stdout,
    );
    const s = load.underScrape;
    log(
      `${workload} ${n} farms: stats ${load.statsMs} ms, metrics ${load.metricsMs} ms (median of 5, alone); GET p50/p99 ${load.get.p50Ms}/${load.get.p99Ms} ms alone, ` +
        `${s.get.p50Ms}/${s.get.p99Ms} ms while scraping (${s.scrapes} scrapes: metrics median ${s.metricsMs} ms, max ${s.metricsMaxMs} ms; stats median ${s.statsMs} ms)`,
    );
    // A graceful stop, so that a daemon under --cpu-prof writes its profile.
    await daemon.stop('SIGTERM');
    return { farms: n, workload, load };
  } finally {
    for (const fn of cleanups.reverse()) await fn();
    await lab.exec(lab.lb.ns, ['nft', 'delete', 'table', 'netdev', 'nftfarm']);
  }
}

/** The measured farm beside N-1 other farms, against the ceiling: the dispatch ratio alone. */
async function dispatchOnly(lab, n) {
  const cleanups = [];
  const t = { teardown: (fn) => cleanups.push(fn) };
  try {
    const daemon = await startLabDaemon(t, lab, DAEMON_ENV, { beforeStart: (db) => prepareStore(db, n, lab.backends, 'uniform') });
    if (!(await daemon.until(async () => (await allApplied(daemon)) && (await farmApplied(daemon, 'f0')), 600_000))) throw new Error('farms not applied');
    await createMeasuredFarm(daemon, lab, 'measured', 'udp', PORTS.udpFarm);
    const dispatch = await udpCompare(lab, { bare: [VIP, PORTS.udpBare], dsr: [VIP, PORTS.udpFarm] }, ROUNDS);
    return { farms: n, workload: 'uniform', dispatch };
  } finally {
    for (const fn of cleanups.reverse()) await fn();
    await lab.exec(lab.lb.ns, ['nft', 'delete', 'table', 'netdev', 'nftfarm']);
  }
}

/** 10,000 stateless_dnat farms: cold start, and how long a pass that changes nothing takes. */
async function stateless(lab, n = 10_000) {
  const cleanups = [];
  const t = { teardown: (fn) => cleanups.push(fn) };
  try {
    const daemon = await startLabDaemon(t, lab, DAEMON_ENV, { beforeStart: (db) => prepareStore(db, n, lab.backends, 'uniform', 'stateless_dnat') });
    if (process.env.BENCH_KEEP_LOG) cleanups.push(() => fs.writeFileSync(process.env.BENCH_KEEP_LOG, daemon.logs()));
    // A profiled daemon writes its profile only when it exits by itself.
    if (process.env.BENCH_PROF) cleanups.push(() => daemon.stop('SIGTERM'));
    if (!(await daemon.until(async () => (await allApplied(daemon)) && (await farmApplied(daemon, 'f0')), 600_000))) throw new Error('stateless farms not applied');
    const cold = await convergedAt(daemon);
    const coldMs = cold.ms;
    log(`stateless ${n} farms: applied ${coldMs} ms (${cold.exact ? 'end of the first pass' : 'poll'}; the poll saw it at ${cold.polledMs} ms)`);
    // A write that changes nothing in the kernel: the weight it already has.
    const passes = [];
    for (let i = 0; i < 5; i++) {
      const r = await daemon.api('PUT', '/farms/f0/backends/0', { weight: 1 });
      if (r.status !== 200) throw new Error(`PUT: ${JSON.stringify(r.body)}`);
      await daemon.until(() => allApplied(daemon), 60_000);
      passes.push((await daemon.api('GET', '/system/status?farms=false')).body.params.last_pass.ms);
    }
    log(`stateless ${n} farms: applied ${coldMs} ms, a pass with nothing to change ${median(passes)} ms`);
    return { farms: n, coldMs, coldPolledMs: cold.polledMs, coldExact: cold.exact, noopPassMs: median(passes), passes };
  } finally {
    for (const fn of cleanups.reverse()) await fn();
    await lab.exec(lab.lb.ns, ['nft', 'delete', 'table', 'netdev', 'nftfarm']);
  }
}

async function dataPlane(lab) {
  const cleanups = [];
  const t = { teardown: (fn) => cleanups.push(fn) };
  try {
    const daemon = await startLabDaemon(t, lab, DAEMON_ENV);
    await createMeasuredFarm(daemon, lab, 'measured', 'udp', PORTS.udpFarm);
    const b1 = lab.backends[0];
    const udp = await udpCompare(lab, { direct: [b1.ip, PORTS.udpFarm], bare: [VIP, PORTS.udpBare], dsr: [VIP, PORTS.udpFarm] }, ROUNDS);
    const paths = { dsr: await packetPath(lab, PORTS.udpFarm, 'udp') };
    // IPv6: the same three paths, each against its own family's ceiling.
    await createMeasuredFarm(daemon, lab, 'measured6', 'udp', PORTS.udpFarm6, LAB_VIP6);
    const udp6 = await udpCompare(lab, { direct: [b1.ip6, PORTS.udpFarm6], bare: [LAB_VIP6, PORTS.udpBare6], dsr: [LAB_VIP6, PORTS.udpFarm6] }, ROUNDS);

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
    paths.dsrTcp = await packetPath(lab, PORTS.tcpFarm, 'tcp');

    // The other modes, UDP only (the blast needs no replies), each against its own ceiling runs.
    // b1 routes the clients through the load balancer, as dnat and stateless_dnat need.
    await lab.execOk(b1.ns, ['ip', 'route', 'replace', `${CLIENT_IP}/32`, 'via', LB_IP]);
    const modes = {};
    for (const mode of ['stateless_dnat', 'dnat', 'nat']) {
      const changed = await daemon.api('PUT', '/farms/measured', { nattype: mode });
      if (changed.status !== 200) throw new Error(`measured -> ${mode}: ${JSON.stringify(changed.body)}`);
      if (!(await daemon.until(() => farmApplied(daemon, 'measured'), 60_000))) throw new Error(`measured not applied in ${mode}`);
      modes[mode] = await udpCompare(lab, { bare: [VIP, PORTS.udpBare], [mode]: [VIP, PORTS.udpFarm] }, MODE_ROUNDS);
      if (mode === 'stateless_dnat') paths.stateless_dnat = await packetPath(lab, PORTS.udpFarm, 'udp');
    }
    await lab.execOk(b1.ns, ['ip', 'route', 'del', `${CLIENT_IP}/32`]);
    return {
      udp,
      paths,
      udp6,
      modes,
      tcp: Object.fromEntries(Object.entries(tcp).map(([k, v]) => [k, { medianGbps: round(median(v), 2), runs: v.map((x) => round(x, 2)) }])),
    };
  } finally {
    for (const fn of cleanups.reverse()) await fn();
    await lab.exec(lab.lb.ns, ['nft', 'delete', 'table', 'netdev', 'nftfarm']);
  }
}

/** nftlb, measured beside an earlier nftfarm on this kind of machine (issue 10): one change, p50 / p99 ms. */
const NFTLB = { 3: [2.7, 8.0], 1000: [6.3, 12.1], 10000: [45.5, 74.5] };

function table(results) {
  const { dp, cp, sl, m } = results;
  const r = (a, b) => (a / b).toFixed(3);
  const pr = (x) => (x === undefined ? '' : ` (paired ${x.toFixed(3)})`);
  const n = (x) => x.toLocaleString('en-US');
  const lines = [];
  lines.push(`Machine: ${m.cpu}, ${m.memory}, ${m.os}, kernel ${m.kernel}; ${m.nft}; Node ${m.node}; ${m.python}; ${m.iperf3}. ${m.date}.`);
  lines.push('A shared 2-core machine: treat small differences as noise.');
  if (dp) {
    const big = cp.find((c) => c.dispatch);
    lines.push('');
    lines.push('| data plane (client -> b1) | direct | bare MAC-rewrite ceiling | nftfarm DSR | DSR / direct | DSR / ceiling |');
    lines.push('|---|---:|---:|---:|---:|---:|');
    const u = dp.udp;
    lines.push(`| 64-byte UDP, packets/s (median of ${ROUNDS}) | ${u.direct.medianPps} | ${u.bare.medianPps} | ${u.dsr.medianPps} | ${r(u.dsr.medianPps, u.direct.medianPps)} | ${r(u.dsr.medianPps, u.bare.medianPps)}${pr(u.dsr.pairedRatio)} |`);
    const tc = dp.tcp;
    lines.push(`| TCP, Gbit/s (iperf3, median of ${TCP_ROUNDS}) | ${tc.direct.medianGbps} | ${tc.bare.medianGbps} | ${tc.dsr.medianGbps} | ${r(tc.dsr.medianGbps, tc.direct.medianGbps)} | ${r(tc.dsr.medianGbps, tc.bare.medianGbps)} |`);
    if (dp.paths) {
      lines.push('');
      lines.push('| an established packet, walked on the kernel\'s dump (`bench/lib/packet-path.mjs`) | chains (visits) | rules | jumps | expressions | packets/s | / ceiling |');
      lines.push('|---|---:|---:|---:|---:|---:|---:|');
      const row = (label, p, pps, ceiling) =>
        p && lines.push(`| ${label}: ${p.path.join(' → ')} | ${p.chains} | ${p.rules} | ${p.jumps} | ${p.expressions} | ${pps ?? 'n/a'} | ${pps ? r(pps, ceiling) : 'n/a'} |`);
      row('DSR, UDP, pinned', dp.paths.dsr, u.dsr.medianPps, u.bare.medianPps);
      row('DSR, TCP (ACK), pinned', dp.paths.dsrTcp, null, null);
      const sd = dp.modes?.stateless_dnat;
      row('stateless_dnat, UDP, pinned', dp.paths.stateless_dnat, sd?.stateless_dnat.medianPps, sd?.bare.medianPps);
    }
    if (dp.udp6) {
      // IPv6 against its own ceiling (an ip6 bare rule): the same payload, 20 bytes more header.
      const u6 = dp.udp6;
      lines.push(`| IPv6 64-byte UDP payload, packets/s (median of ${ROUNDS}) | ${u6.direct.medianPps} | ${u6.bare.medianPps} | ${u6.dsr.medianPps} | ${r(u6.dsr.medianPps, u6.direct.medianPps)} | ${r(u6.dsr.medianPps, u6.bare.medianPps)} |`);
      lines.push('');
      lines.push(`IPv6 DSR / IPv6 ceiling over IPv4 DSR / IPv4 ceiling: **${r(u6.dsr.medianPps / u6.bare.medianPps, u.dsr.medianPps / u.bare.medianPps)}** (target: within 5% of 1).`);
    }
    if (dp.modes) {
      lines.push('');
      lines.push(`| other modes, 64-byte UDP (median of ${MODE_ROUNDS}, interleaved with the ceiling) | ceiling pps | mode pps | mode / ceiling | mode / direct |`);
      lines.push('|---|---:|---:|---:|---:|');
      for (const [mode, runs] of Object.entries(dp.modes)) {
        lines.push(`| ${mode} | ${runs.bare.medianPps} | ${runs[mode].medianPps} | ${r(runs[mode].medianPps, runs.bare.medianPps)}${pr(runs[mode].pairedRatio)} | ${r(runs[mode].medianPps, u.direct.medianPps)} |`);
      }
    }
    if (big) {
      const ratio1 = u.dsr.medianPps / u.bare.medianPps;
      const ratioN = big.dispatch.dsr.medianPps / big.dispatch.bare.medianPps;
      lines.push('');
      lines.push(`| dispatch cost (UDP, median of ${ROUNDS}) | ceiling pps | DSR pps | DSR / ceiling |`);
      lines.push('|---|---:|---:|---:|');
      const p1 = u.dsr.pairedRatio;
      const pN = big.dispatch.dsr.pairedRatio;
      lines.push(`| the measured farm alone | ${u.bare.medianPps} | ${u.dsr.medianPps} | ${ratio1.toFixed(3)}${pr(p1)} |`);
      lines.push(`| with ${n(big.farms)} other farms | ${big.dispatch.bare.medianPps} | ${big.dispatch.dsr.medianPps} | ${ratioN.toFixed(3)}${pr(pN)} |`);
      lines.push(`| **${n(big.farms)} farms / 1 farm** | | | **${(ratioN / ratio1).toFixed(3)}**${p1 && pN ? ` (paired ${(pN / p1).toFixed(3)})` : ''} |`);
    }
  }
  const ctl = cp.filter((c) => c.change);
  if (ctl.length > 0) {
    lines.push('');
    lines.push(
      `| workload | farms x 4 backends | cold start: API up / all applied | one change, request -> kernel: p50 / p99 / max (${CHANGES}) | the same under 100 PUTs/s: p50 / p99 | backend PUTs/s (p99), caught up after | GET /farms/{f}/s (p99) | GET /stats/farms | GET /metrics | GET /farms/{f} p99 while both are scraped | selection elements | nftfarm RSS after all (45 s later) |`,
    );
    lines.push('|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|');
    for (const c of ctl) {
      const l = c.load;
      lines.push(
        `| ${c.workload} | ${n(c.farms)} | ${n(c.apiUpMs)} / ${n(c.coldMs)} ms | ${c.change.p50} / ${c.change.p99} / ${c.change.max} ms | ${c.underLoad ? `${c.underLoad.p50} / ${c.underLoad.p99} ms` : 'n/a'} | ${l.put.requestsPerSecond} (${l.put.p99Ms} ms), ${l.caughtUpMs} ms | ${l.get.requestsPerSecond} (${l.get.p99Ms} ms) | ${l.statsMs} ms | ${l.metricsMs} ms | ${l.underScrape.get.p99Ms} ms | ${n(c.elements.selection)} | ${c.rssMb} MB${c.rssIdleMb === null || c.rssIdleMb === undefined ? '' : ` (${c.rssIdleMb} MB)`} |`,
      );
    }
    const withRestarts = cp.filter((c) => c.restarts?.length > 0);
    if (withRestarts.length > 0) {
      lines.push('');
      lines.push('| workload | farms x 4 backends | restart after kill -9 with 40 writes in flight: API up / converged | after SIGTERM: API up / converged |');
      lines.push('|---|---:|---:|---:|');
      for (const c of withRestarts) {
        const [k, s] = c.restarts;
        lines.push(`| ${c.workload} | ${n(c.farms)} | ${n(k.apiUpMs)} / ${n(k.convergedMs)} ms | ${n(s.apiUpMs)} / ${n(s.convergedMs)} ms |`);
      }
    }
    lines.push('');
    lines.push('nftlb, measured beside an earlier nftfarm on this kind of machine (issue 10), one change p50 / p99: 3 farms 2.7 / 8.0 ms, 1,000 farms 6.3 / 12.1 ms, 10,000 farms 45.5 / 74.5 ms.');
    lines.push('');
    lines.push('![one change, request to kernel, p50 and p99 against the number of farms](change-latency.svg)');
  }
  if (sl) {
    lines.push('');
    lines.push('| stateless_dnat farms x 4 backends | cold start: all applied | a pass with nothing to change (median of 5) |');
    lines.push('|---:|---:|---:|');
    lines.push(`| ${n(sl.farms)} | ${n(sl.coldMs)} ms | ${sl.noopPassMs} ms |`);
  }
  return lines.join('\n');
}

/** change-latency.svg: p50 and p99 of one change against the number of farms (log scale), per workload. */
function chart(cp) {
  const W = 640;
  const H = 360;
  const pad = { l: 60, r: 150, t: 30, b: 50 };
  const sizes = [...new Set(cp.map((c) => c.farms))].sort((a, b) => a - b);
  const values = cp.flatMap((c) => [c.change.p50, c.change.p99]);
  const ymax = Math.max(1, ...values) * 1.15;
  const x = (farms) => pad.l + (sizes.length === 1 ? 0.5 : Math.log10(farms) / Math.log10(Math.max(...sizes))) * (W - pad.l - pad.r);
  const y = (ms) => H - pad.b - (ms / ymax) * (H - pad.t - pad.b);
  const series = [];
  const colors = { uniform: '#1f77b4', random: '#d62728' };
  for (const workload of WORKLOADS) {
    const points = cp.filter((c) => c.workload === workload).sort((a, b) => a.farms - b.farms);
    for (const [stat, dash] of [['p50', ''], ['p99', '6,4']]) {
      const d = points.map((c, i) => `${i === 0 ? 'M' : 'L'}${x(c.farms).toFixed(1)},${y(c.change[stat]).toFixed(1)}`).join(' ');
      series.push(`<path d="${d}" fill="none" stroke="${colors[workload] ?? '#333'}" stroke-width="2" ${dash ? `stroke-dasharray="${dash}"` : ''}/>`);
      for (const c of points) series.push(`<circle cx="${x(c.farms).toFixed(1)}" cy="${y(c.change[stat]).toFixed(1)}" r="3" fill="${colors[workload] ?? '#333'}"/>`);
    }
  }
  const yticks = 5;
  const grid = [];
  for (let i = 0; i <= yticks; i++) {
    const v = (ymax * i) / yticks;
    grid.push(`<line x1="${pad.l}" x2="${W - pad.r}" y1="${y(v)}" y2="${y(v)}" stroke="#ddd"/><text x="${pad.l - 6}" y="${y(v) + 4}" text-anchor="end" font-size="11">${v.toFixed(1)}</text>`);
  }
  for (const s of sizes) grid.push(`<text x="${x(s)}" y="${H - pad.b + 16}" text-anchor="middle" font-size="11">${s.toLocaleString('en-US')}</text>`);
  const legend = [];
  let ly = pad.t + 10;
  for (const workload of WORKLOADS) {
    for (const [stat, dash] of [['p50', ''], ['p99', '6,4']]) {
      legend.push(`<line x1="${W - pad.r + 15}" x2="${W - pad.r + 45}" y1="${ly}" y2="${ly}" stroke="${colors[workload] ?? '#333'}" stroke-width="2" ${dash ? `stroke-dasharray="${dash}"` : ''}/><text x="${W - pad.r + 50}" y="${ly + 4}" font-size="11">${workload} ${stat}</text>`);
      ly += 18;
    }
  }
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif">
<rect width="${W}" height="${H}" fill="white"/>
<text x="${W / 2 - 60}" y="18" text-anchor="middle" font-size="13">One backend change, request to kernel commit (npm run bench)</text>
${grid.join('\n')}
<text x="${(pad.l + W - pad.r) / 2}" y="${H - 12}" text-anchor="middle" font-size="12">farms x 4 backends (log scale)</text>
<text x="16" y="${(pad.t + H - pad.b) / 2}" text-anchor="middle" font-size="12" transform="rotate(-90 16 ${(pad.t + H - pad.b) / 2})">ms</text>
${series.join('\n')}
${legend.join('\n')}
</svg>
`;
}

async function main() {
  if (process.getuid?.() !== 0) throw new Error('run as root (network namespaces)');
  const m = describeMachine({ python: sh('python3', ['--version']), iperf3: sh('iperf3', ['--version']).split('\n')[0] });
  log('machine', JSON.stringify(m));
  // Both families on the links: the IPv6 data-plane figures come from the same run.
  const lab = await createLab({ prefix: 'nfbench', backends: 4, family: 'dual' });
  try {
    await lab.configureDsrBackends(VIP);
    await lab.configureDsrBackends(LAB_VIP6);
    if (PARTS.has('reads')) {
      const reads = [];
      for (const workload of WORKLOADS) for (const n of SIZES) reads.push(await readsOnly(lab, n, workload));
      console.log(JSON.stringify({ m, reads, seconds: Math.round((Date.now() - started) / 1000) }));
      return;
    }
    const dp = PARTS.has('data') ? await dataPlane(lab) : null;
    const cp = [];
    if (PARTS.has('control')) for (const workload of WORKLOADS) for (const n of SIZES) cp.push(await controlPlane(lab, n, workload));
    else if (PARTS.has('dispatch')) cp.push(await dispatchOnly(lab, Math.max(...SIZES)));
    const sl = PARTS.has('stateless') ? await stateless(lab) : null;
    const results = { m, dp, cp, sl, seconds: Math.round((Date.now() - started) / 1000) };
    if (cp.some((c) => c.change)) fs.writeFileSync(path.join(here, 'change-latency.svg'), chart(cp.filter((c) => c.change)));
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
