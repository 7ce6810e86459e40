#!/usr/bin/env node
/**
 * The soak (issue 11): nftfarm under mixed load for SOAK_SECONDS (default 600), restarted once
 * half-way, in a lab of network namespaces of its own. Run as root after `npm run build`
 * (`npm run soak` does both). The lab (namespaces, processes, tables) is removed at the end.
 *
 * - `nftfarm serve` in the load balancer's namespace, with SOAK_FARMS (default 400) idle farms
 *   written to the store before it starts (half dsr, half nat, 4 backends of random weights
 *   each) and four farms that carry traffic (dsr tcp 80, dsr udp 53, nat tcp 81 -> 8080,
 *   nat udp 5353);
 * - API load from inside the load balancer's namespace (lib/soak-api.mjs): 3 writers
 *   (backend weight PUTs, backend add/delete, farm create/delete churn, stop/start), 2
 *   readers (farms, one farm, stats, status), a /metrics scrape every 5 s, /healthz every 1 s;
 * - traffic from the client's namespace (lib/soak-traffic.mjs): 16 long-lived connections to
 *   each TCP farm (a request a second each; a break is counted and the connection replaced),
 *   and every 250 ms a request on a fresh connection to each TCP farm and a datagram to each
 *   UDP farm;
 * - half-way: the writers pause, SIGTERM, `nftfarm serve` again on the same database, the
 *   writers resume once the kernel holds the store's generation (reads and traffic go on);
 * - every 5 s: the daemon's VmRSS and open descriptors from /proc, and from its /metrics the
 *   event-loop delay (prom-client's monitorEventLoopDelay, reset at each scrape: each scrape
 *   covers the 5 s since the previous one) and the V8 heap.
 *
 * Writes bench/soak.json (every sample), bench/soak.svg, the block between the soak markers
 * in bench/RESULTS.md, and prints a summary with a growth verdict per series and lifetime.
 * Options (environment): SOAK_SECONDS=600 SOAK_FARMS=400 SOAK_WARMUP_SECONDS (default 60,
 * or a fifth of a lifetime when shorter) SOAK_WRITE_RESULTS=0 (a trial: keep the files).
 * SOAK_RESTART_AT (seconds, default half-way) moves the restart, e.g. late in a longer run.
 * SOAK_DIAG=1 preloads lib/soak-diag.cjs into nftfarm (memory per thread every 5 s, and heap
 * snapshots at the process ages in SOAK_SNAPSHOTS, e.g. 100,280), in a directory it names;
 * SOAK_DAEMON_PREFIX='["env","NAME=value"]' goes before nftfarm's command line (it must exec
 * nftfarm in place, as env does, so that the PID sampled stays nftfarm's).
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { allApplied, generator, machine as describeMachine, sh } from './lib/common.mjs';
import { LAB_VIP, createLab } from '../lab/dist/lab/lab.js';
import { API_KEY, farmReady, startLabDaemon } from '../lab/dist/lab/daemon.js';
import { openDatabase } from '../dist/store/db.js';
import { Store } from '../dist/store/store.js';
import { soakChart } from './lib/soak-chart.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const VIP = LAB_VIP;
const SECONDS = Number(process.env.SOAK_SECONDS ?? 600);
const FARMS = Number(process.env.SOAK_FARMS ?? 400);
const WARMUP_S = Number(process.env.SOAK_WARMUP_SECONDS ?? Math.min(60, SECONDS / 10));
const WRITE_RESULTS = process.env.SOAK_WRITE_RESULTS !== '0';
const DIAG = process.env.SOAK_DIAG === '1';
const RESTART_AT = Number(process.env.SOAK_RESTART_AT ?? SECONDS / 2);
const SAMPLE_MS = 5000;
const WRITERS = 3;
const READERS = 2;
const HELD = 16;
const URL_IN_LB = 'http://127.0.0.1:4444';
const TRAFFIC = [
  { name: 'tdsr', vport: 80, protocol: 'tcp', nattype: 'dsr', port: null },
  { name: 'tdsru', vport: 53, protocol: 'udp', nattype: 'dsr', port: null },
  { name: 'tnat', vport: 81, protocol: 'tcp', nattype: 'nat', port: 8080 },
  { name: 'tnatu', vport: 5353, protocol: 'udp', nattype: 'nat', port: 5353 },
];
const started = Date.now();
const CLK_TCK = 100;

const round = (x, d = 1) => (x === null || x === undefined || !Number.isFinite(x) ? null : Math.round(x * 10 ** d) / 10 ** d);
const log = (...args) => console.error(`[${Math.round((Date.now() - started) / 1000)}s]`, ...args);
const mean = (xs) => xs.reduce((a, b) => a + b, 0) / xs.length;
const sd = (xs) => Math.sqrt(mean(xs.map((v) => (v - mean(xs)) ** 2)));



/** The idle farms and the traffic farms, written before nftfarm starts (b5 is the spare). */
function seed(dbPath, lab, idle) {
  const store = new Store(openDatabase(dbPath));
  const rnd = generator(20261204);
  const four = lab.backends.slice(0, 4);
  store.write((generation) => {
    const add = ({ name, vport, protocol, nattype, port }) => {
      const farm = store.insertFarm({ name, vip: VIP, vport: String(vport), protocol, nattype, algorithm: 'weight', persistence: '', ttl: 60, running: true }, generation);
      for (const b of four) store.insertBackend(farm.id, { ip: b.ip, port, weight: 1 + Math.floor(rnd() * 9), priority: 1, maxConns: 0 }, generation);
    };
    for (const f of idle) add(f);
    for (const f of TRAFFIC) add(f);
  });
  for (const b of lab.backends) store.rememberNeighbor('eth0', b.ip, b.mac);
  store.close();
}


/** A lab child whose stdout carries JSON lines: each goes to `onEvent`. */
function jsonLines(child, onEvent) {
  createInterface({ input: child.stdout }).on('line', (line) => {
    try {
      onEvent(JSON.parse(line));
    } catch {
      log(`unexpected output: ${line.slice(0, 200)}`);
    }
  });
  let stderr = '';
  child.stderr.setEncoding('utf8').on('data', (d) => (stderr = (stderr + d).slice(-4000)));
  return () => stderr;
}

/** Resolves with the first event `match` accepts, or null after `ms`. */
function nextEvent(waiters, match, ms) {
  return new Promise((resolve) => {
    const timer = setTimeout(() => {
      waiters.delete(w);
      resolve(null);
    }, ms);
    const w = (e) => {
      if (!match(e)) return false;
      clearTimeout(timer);
      waiters.delete(w);
      resolve(e);
      return true;
    };
    waiters.add(w);
  });
}

function procSample(pid, prev) {
  try {
    const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
    const rssKb = Number(/VmRSS:\s+(\d+)/.exec(status)[1]);
    const threads = Number(/Threads:\s+(\d+)/.exec(status)[1]);
    const anonKb = Number(/RssAnon:\s+(\d+)/.exec(status)[1]);
    const fileKb = Number(/RssFile:\s+(\d+)/.exec(status)[1]);
    const fds = fs.readdirSync(`/proc/${pid}/fd`).length;
    // The brk heap: glibc's main malloc arena (what the main thread mallocs and frees).
    const smaps = fs.readFileSync(`/proc/${pid}/smaps`, 'utf8');
    const brk = smaps.indexOf('[heap]\n');
    const brkKb = brk < 0 ? 0 : Number(/Rss:\s+(\d+)/.exec(smaps.slice(brk))[1]);
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const ticks = Number(fields[11]) + Number(fields[12]);
    const at = Date.now();
    const cpuPct = prev && prev.pid === pid ? round(((ticks - prev.ticks) / CLK_TCK / ((at - prev.at) / 1000)) * 100, 0) : null;
    return { pid, at, ticks, rssMb: round(rssKb / 1024), anonMb: round(anonKb / 1024), fileMb: round(fileKb / 1024), brkMb: round(brkKb / 1024), fds, threads, cpuPct };
  } catch {
    return null; // exited between the check and the read
  }
}

/**
 * Growth of one series in one lifetime, after its warm-up: the mean of the last third of the
 * span against the middle third. "bounded" when the rise is within the larger of 2 % of the
 * middle third's mean, its standard deviation, and `floor` (one unit of what is counted).
 */
function verdict(points, from, to, floor) {
  const span = to - from - WARMUP_S;
  const kept = points.filter(([t]) => t >= from + WARMUP_S && t <= to);
  if (span <= 0 || kept.length < 6) return { verdict: 'too few samples', samples: kept.length };
  const third = span / 3;
  const start = from + WARMUP_S;
  const mid = kept.filter(([t]) => t >= start + third && t < start + 2 * third).map(([, v]) => v);
  const last = kept.filter(([t]) => t >= start + 2 * third).map(([, v]) => v);
  if (mid.length < 2 || last.length < 2) return { verdict: 'too few samples', samples: kept.length };
  const m = mean(mid);
  const l = mean(last);
  const perMin = m > 0 ? ((l - m) / m) * 100 / (third / 60) : 0;
  const tolerance = Math.max(0.02 * m, sd(mid), floor);
  return {
    middleMean: round(m, 2),
    lastMean: round(l, 2),
    middleSd: round(sd(mid), 2),
    growthPctPerMin: round(perMin, 2),
    verdict: l - m <= tolerance ? 'bounded' : `grows ${round(perMin, 2)}%/min`,
  };
}

function describe(points) {
  const v = points.map(([, x]) => x).filter(Number.isFinite);
  if (v.length === 0) return { start: null, end: null, max: null };
  return { start: round(v[0], 1), end: round(v.at(-1), 1), max: round(Math.max(...v), 1) };
}

async function main() {
  if (process.getuid?.() !== 0) throw new Error('run as root (network namespaces)');
  const m = describeMachine({ loadavg: os.loadavg().map((l) => round(l, 2)) });
  log('machine', JSON.stringify(m));
  const idle = Array.from({ length: FARMS }, (_, i) =>
    i % 2 === 0
      ? { name: `d${i}`, vport: 10000 + i, protocol: 'tcp', nattype: 'dsr', port: null }
      : { name: `n${i}`, vport: 10000 + i, protocol: 'tcp', nattype: 'nat', port: null },
  );
  const lab = await createLab({ prefix: 'nfsoak', backends: 5 });
  const cleanups = [];
  const t = { teardown: (fn) => cleanups.push(fn) };
  try {
    await lab.configureDsrBackends(VIP);
    for (const b of lab.backends) {
      await lab.startBackendServer(b, { httpPort: 80, udp: [`${VIP}:53`] });
      await lab.startBackendServer(b, { httpPort: 8080, udp: [`${b.ip}:5353`] });
    }
    const env = { NFTFARM_LOG_LEVEL: 'warn' };
    if (DIAG) {
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'nftfarm-soak-diag-'));
      Object.assign(env, { NODE_OPTIONS: `--require ${path.join(here, 'lib', 'soak-diag.cjs')}`, NFTFARM_SOAK_DIAG_DIR: dir, NFTFARM_SOAK_SNAPSHOTS: process.env.SOAK_SNAPSHOTS ?? '' });
      log(`diagnostics (memory per thread, heap snapshots) in ${dir}`);
    }
    const prefix = JSON.parse(process.env.SOAK_DAEMON_PREFIX ?? '[]');
    const daemon = await startLabDaemon(t, lab, env, { beforeStart: (db) => seed(db, lab, idle), wrap: (argv) => [...prefix, ...argv] });
    const ready = async () => (await allApplied(daemon)) && (await Promise.all(TRAFFIC.map((f) => farmReady(daemon, f.name)))).every(Boolean);
    if (!(await daemon.until(ready, 120_000))) throw new Error(`farms not applied:\n${daemon.logs().slice(-3000)}`);
    const coldMs = Date.now() - daemon.startedAt();
    log(`${FARMS + TRAFFIC.length} farms applied ${coldMs} ms after the start; load for ${SECONDS} s`);

    // ---------------------------------------------------------------- load
    const t0 = Date.now();
    const rel = (at) => round((at - t0) / 1000, 1);
    const events = { api: [], traffic: [] };
    const waiters = new Set();
    const apiPlan = {
      writers: WRITERS,
      readers: READERS,
      scrapeMs: SAMPLE_MS,
      vip: VIP,
      backends: lab.backends.slice(0, 4).map((b) => b.ip),
      spare: lab.backends[4].ip,
      farms: { idle: idle.map((f) => f.name), traffic: TRAFFIC.map((f) => f.name) },
    };
    const api = lab.spawn(lab.lb.ns, [process.execPath, path.join(here, 'lib', 'soak-api.mjs'), URL_IN_LB, API_KEY, JSON.stringify(apiPlan)]);
    const apiStderr = jsonLines(api, (e) => {
      e.at = rel(e.t);
      events.api.push(e);
      for (const w of waiters) if (w(e)) break;
    });
    const trafficPlan = { vip: VIP, tcp: [80, 81], udp: [53, 5353], held: HELD, heldIntervalMs: 1000, requestIntervalMs: 250 };
    const traffic = lab.spawn(lab.client.ns, [process.execPath, path.join(here, 'lib', 'soak-traffic.mjs'), JSON.stringify(trafficPlan)]);
    const trafficStderr = jsonLines(traffic, (e) => {
      e.at = rel(e.t);
      events.traffic.push(e);
      if (e.ev === 'broken' || e.ev === 'fail') log(`traffic ${e.ev} at ${e.at} s: ${JSON.stringify(e)}`);
    });

    const samples = [];
    const lifetimes = [{ life: 1, pid: daemon.pid(), from: 0, to: null }];
    let prev = null;
    const sample = () => {
      const pid = daemon.pid();
      if (pid === null) return;
      const s = procSample(pid, prev);
      if (!s) return;
      prev = s;
      const life = lifetimes.findLast((l) => l.pid === pid)?.life ?? null;
      samples.push({ at: rel(s.at), life, pid, rssMb: s.rssMb, anonMb: s.anonMb, fileMb: s.fileMb, brkMb: s.brkMb, fds: s.fds, threads: s.threads, cpuPct: s.cpuPct });
    };
    sample();
    const sampler = setInterval(sample, SAMPLE_MS);

    // ---------------------------------------------------------------- the restart, half-way
    const restart = {};
    const halfway = t0 + RESTART_AT * 1000;
    await new Promise((r) => setTimeout(r, Math.max(0, halfway - Date.now())));
    restart.pauseAt = rel(Date.now());
    api.stdin.write('pause\n');
    if (!(await nextEvent(waiters, (e) => e.ev === 'paused', 60_000))) throw new Error('the writers did not pause within 60 s');
    restart.sigtermAt = rel(Date.now());
    const oldPid = daemon.pid();
    const exited = await Promise.race([daemon.stop('SIGTERM').then(() => true), new Promise((r) => setTimeout(() => r(false), 30_000))]);
    if (!exited) {
      restart.stopTimedOut = true;
      log('nftfarm did not exit within 30 s of SIGTERM: SIGKILL');
      await daemon.stop('SIGKILL');
    }
    restart.exitedAt = rel(Date.now());
    await daemon.start();
    restart.apiUpAt = rel(Date.now());
    lifetimes[0].to = restart.sigtermAt;
    lifetimes.push({ life: 2, pid: daemon.pid(), from: null, to: SECONDS });
    if (!(await daemon.until(() => allApplied(daemon), 120_000))) throw new Error('not converged within 120 s of the restart');
    restart.convergedAt = rel(Date.now());
    api.stdin.write('resume\n');
    restart.resumedAt = rel(Date.now());
    lifetimes[1].from = restart.resumedAt;
    log(`restart: pid ${oldPid} -> ${daemon.pid()}, SIGTERM at ${restart.sigtermAt} s, exited ${restart.exitedAt} s, API up ${restart.apiUpAt} s, converged ${restart.convergedAt} s`);

    await new Promise((r) => setTimeout(r, Math.max(0, t0 + SECONDS * 1000 - Date.now())));
    clearInterval(sampler);
    sample();
    const ended = rel(Date.now());

    // ---------------------------------------------------------------- wind down
    const apiDone = nextEvent(waiters, (e) => e.ev === 'done', 60_000);
    api.stdin.write('stop\n');
    traffic.stdin.write('stop\n');
    const apiTotals = await apiDone;
    const trafficDone = await (async () => {
      const deadline = Date.now() + 30_000;
      while (Date.now() < deadline) {
        const d = events.traffic.find((e) => e.ev === 'done');
        if (d) return d;
        await new Promise((r) => setTimeout(r, 100));
      }
      return null;
    })();
    if (!apiTotals) throw new Error(`the API load did not report: ${apiStderr()}`);
    if (!trafficDone) throw new Error(`the traffic did not report: ${trafficStderr()}`);
    const convergedAtEnd = await daemon.until(() => allApplied(daemon), 60_000);
    const status = (await daemon.api('GET', '/system/status')).body?.params;
    const notApplied = (status?.farms ?? []).filter((f) => !['applied', 'stopped'].includes(f.dataplane?.state)).map((f) => `${f.farmname}: ${f.dataplane?.state}`);
    const logLines = daemon.logs().split('\n').filter((l) => l.startsWith('{'));
    const levelOf = (l) => {
      try {
        return JSON.parse(l).level;
      } catch {
        return null;
      }
    };
    const levels = (n) => logLines.filter((l) => levelOf(l) === n);
    const daemonLog = { warn: levels(40).length, error: levels(50).length + levels(60).length, samples: [...levels(50), ...levels(60), ...levels(40)].slice(0, 5).map((l) => l.slice(0, 300)) };

    // ---------------------------------------------------------------- figures
    const scrapes = events.api.filter((e) => e.ev === 'scrape').map((e) => ({
      at: e.at,
      life: e.at <= restart.sigtermAt ? 1 : 2,
      // monitorEventLoopDelay (10 ms resolution) records the interval between its timer's
      // runs: an idle loop reads 10 ms. The delay is what exceeds that.
      lagP99Ms: round(Math.max(0, e.lagP99 * 1000 - 10), 2),
      lagMaxMs: round(Math.max(0, e.lagMax * 1000 - 10), 2),
      lagP50Ms: round(Math.max(0, e.lagP50 * 1000 - 10), 2),
      raw: { lagP99: e.lagP99, lagMax: e.lagMax, lagP50: e.lagP50, lagMean: e.lagMean },
      heapUsedMb: round(e.heapUsed / 2 ** 20),
      heapTotalMb: round(e.heapTotal / 2 ** 20),
      externalMb: round(e.external / 2 ** 20),
      rssMbMetric: round(e.rss / 2 ** 20),
      fdsMetric: e.fds,
      handles: e.handles,
      scrapeMs: e.ms,
      scrapeBytes: e.bytes,
    }));
    const ticks = events.api.filter((e) => e.ev === 'tick');
    const healthz = ticks.map((e) => ({ at: e.at, p99: e.kinds.healthz?.p99 ?? null, max: e.kinds.healthz?.max ?? null }));
    const apiFailures = events.api.filter((e) => e.ev === 'fail');
    const trafficEvents = events.traffic.filter((e) => e.ev === 'broken' || e.ev === 'fail');
    const bounds = { 1: [0, restart.sigtermAt], 2: [restart.resumedAt, ended] };
    const lives = {};
    for (const life of [1, 2]) {
      const [from, to] = bounds[life];
      const mine = samples.filter((s) => s.life === life);
      const sc = scrapes.filter((s) => s.life === life && s.at >= from);
      const series = {
        rssMb: [mine.map((s) => [s.at, s.rssMb]), 2],
        fds: [mine.map((s) => [s.at, s.fds]), 1],
        lagP99Ms: [sc.map((s) => [s.at, s.lagP99Ms]), 1],
        heapUsedMb: [sc.map((s) => [s.at, s.heapUsedMb]), 2],
      };
      lives[life] = { pid: mine[0]?.pid, from, to, samples: mine.length };
      for (const [name, [points, floor]] of Object.entries(series)) lives[life][name] = { ...describe(points), ...verdict(points, from, to, floor) };
      lives[life].lagMaxMs = describe(sc.map((s) => [s.at, s.lagMaxMs]));
      lives[life].cpuPctMean = round(mean(mine.map((s) => s.cpuPct).filter(Number.isFinite)), 0);
    }
    const apiSum = Object.values(apiTotals.totals).reduce((a, c) => ({ ok: a.ok + c.ok, refused: a.refused + c.refused, failed: a.failed + c.failed, restart: a.restart + c.restart }), { ok: 0, refused: 0, failed: 0, restart: 0 });
    const results = {
      machine: m,
      config: { seconds: SECONDS, farms: FARMS + TRAFFIC.length, idleFarms: FARMS, trafficFarms: TRAFFIC, writers: WRITERS, readers: READERS, held: HELD, sampleMs: SAMPLE_MS, warmupSeconds: WARMUP_S, traffic: trafficPlan },
      coldMs,
      restart,
      lifetimes: lives,
      api: { totals: apiTotals.totals, sum: apiSum, failures: apiFailures.slice(0, 50) },
      traffic: { ...trafficDone, events: trafficEvents.slice(0, 50) },
      end: { convergedAtEnd, notApplied: notApplied.slice(0, 20), storeGeneration: status?.store_generation, appliedGeneration: status?.applied_generation, daemonLog },
      samples,
      scrapes,
      healthz,
      apiTicks: ticks.map((e) => ({ at: e.at, kinds: e.kinds })),
      trafficTicks: events.traffic.filter((e) => e.ev === 'tick').map(({ t: _t, ev: _ev, ...rest }) => rest),
    };

    const text = summary(results);
    console.log(text);
    if (WRITE_RESULTS) {
      fs.writeFileSync(path.join(here, 'soak.json'), `${JSON.stringify(results, null, 1)}\n`);
      fs.writeFileSync(path.join(here, 'soak.svg'), chart(results));
      const file = path.join(here, 'RESULTS.md');
      const doc = fs.readFileSync(file, 'utf8');
      const begin = '<!-- soak:begin -->';
      const end = '<!-- soak:end -->';
      const block = `${begin}\n${text}\n${end}`;
      fs.writeFileSync(file, doc.includes(begin) ? doc.replace(new RegExp(`${begin}[\\s\\S]*${end}`), block) : `${doc}\n${block}\n`);
      log('bench/soak.json, bench/soak.svg and bench/RESULTS.md written');
    } else {
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'nftfarm-soak-'));
      fs.writeFileSync(path.join(dir, 'soak.json'), `${JSON.stringify(results, null, 1)}\n`);
      fs.writeFileSync(path.join(dir, 'soak.svg'), chart(results));
      log(`trial: results in ${dir}`);
    }
  } finally {
    for (const fn of cleanups.reverse()) await fn();
    await lab.destroy();
  }
}

function summary(r) {
  const n = (x) => (x ?? 0).toLocaleString('en-US');
  const lines = [];
  const m = r.machine;
  lines.push(`\`npm run soak\` (${r.config.seconds} s), ${m.date}: ${m.cpu}, ${m.memory}, ${m.os}, kernel ${m.kernel}, ${m.nft}, Node ${m.node}; load average at the start ${m.loadavg.join(' ')}.`);
  lines.push('');
  lines.push(`${n(r.config.farms)} farms (${n(r.config.idleFarms)} idle, half dsr and half nat, plus 4 with traffic), 4 backends each, applied ${n(r.coldMs)} ms after the start.`);
  const rs = r.restart;
  lines.push(`Restart: writers paused at ${rs.pauseAt} s, SIGTERM at ${rs.sigtermAt} s, exited at ${rs.exitedAt} s (${round(rs.exitedAt - rs.sigtermAt, 1)} s), API up at ${rs.apiUpAt} s (${round(rs.apiUpAt - rs.exitedAt, 1)} s after the exit), kernel converged and writers resumed at ${rs.resumedAt} s.`);
  lines.push('');
  lines.push(`| lifetime | series | start | end | max | mean, middle third | mean, last third | growth | verdict |`);
  lines.push('|---|---|---:|---:|---:|---:|---:|---:|---|');
  const names = { rssMb: 'RSS (MB, /proc)', fds: 'open fds (/proc)', lagP99Ms: 'event-loop delay p99 (ms)', heapUsedMb: 'V8 heap used (MB)' };
  for (const life of ['1', '2']) {
    const L = r.lifetimes[life];
    for (const [k, label] of Object.entries(names)) {
      const s = L[k];
      lines.push(`| ${life} (${L.from}-${L.to} s) | ${label} | ${s.start} | ${s.end} | ${s.max} | ${s.middleMean ?? ''} | ${s.lastMean ?? ''} | ${s.growthPctPerMin ?? ''}%/min | ${s.verdict} |`);
    }
    lines.push(`| ${life} | event-loop delay max (ms) | ${L.lagMaxMs.start} | ${L.lagMaxMs.end} | ${L.lagMaxMs.max} | | | | |`);
  }
  lines.push('');
  const a = r.api.sum;
  const kinds = Object.entries(r.api.totals).map(([k, c]) => `${k} ${n(c.ok)}${c.refused ? ` (${c.refused} refused)` : ''}${c.failed ? ` (${c.failed} failed)` : ''}${c.restart ? ` (${c.restart} in the restart)` : ''}`).join(', ');
  lines.push(`API calls: ${n(a.ok + a.refused + a.failed + a.restart)}: ${n(a.ok)} answered 2xx, ${n(a.refused)} refused (4xx in the envelope), **${n(a.failed)} failed** (5xx, outside the envelope, or no answer while the daemon ran), ${n(a.restart)} unanswered during the restart (reads while the daemon was down). By kind: ${kinds}.`);
  const tr = r.traffic;
  lines.push(`Traffic: ${HELD} long-lived connections to each of dsr tcp 80 and nat tcp 81, ${n(tr.heldRequests)} requests on them, **${n(tr.heldBroken)} broken**; fresh TCP requests ${n(tr.tcpOk)} ok, **${n(tr.tcpFailed)} failed**; UDP request/replies ${n(tr.udpOk)} ok, **${n(tr.udpFailed)} failed**.`);
  const e = r.end;
  lines.push(`At the end: kernel ${e.convergedAtEnd ? 'converged' : 'NOT converged'} (generation ${e.appliedGeneration} of ${e.storeGeneration}), ${e.notApplied.length} farms neither applied nor stopped; daemon log: ${e.daemonLog.error} errors, ${e.daemonLog.warn} warnings.`);
  lines.push('');
  lines.push('![RSS, open descriptors and event-loop delay over the soak, restart marked](soak.svg)');
  return lines.join('\n');
}

function chart(r) {
  const rs = r.restart;
  // A break between the two processes' lines.
  const lifePoints = (rows, key) => [...rows.filter((s) => s.at < rs.sigtermAt).map((s) => [s.at, s[key]]), [rs.sigtermAt, NaN], ...rows.filter((s) => s.at >= rs.sigtermAt).map((s) => [s.at, s[key]])];
  return soakChart({
    title: `nftfarm soak: ${r.config.farms} farms, mixed API load, traffic, one restart (npm run soak)`,
    seconds: r.config.seconds,
    panels: [
      {
        title: 'memory',
        unit: 'MB',
        lines: [
          { label: 'RSS (/proc VmRSS)', color: '#1f77b4', points: lifePoints(r.samples, 'rssMb') },
          { label: 'V8 heap used', color: '#2ca02c', dash: '5,3', points: lifePoints(r.scrapes, 'heapUsedMb') },
        ],
      },
      { title: 'open file descriptors', unit: 'fds', lines: [{ label: 'open fds (/proc/PID/fd)', color: '#9467bd', points: lifePoints(r.samples, 'fds') }] },
      {
        title: 'event-loop delay per 5 s (beyond the 10 ms sampling timer) and /healthz round trip',
        unit: 'ms',
        lines: [
          { label: 'delay p99', color: '#d62728', points: lifePoints(r.scrapes, 'lagP99Ms') },
          { label: 'delay max', color: '#ff9896', dash: '4,3', points: lifePoints(r.scrapes, 'lagMaxMs') },
          { label: '/healthz p99', color: '#7f7f7f', dash: '2,2', points: r.healthz.map((h) => [h.at, h.p99]) },
        ],
      },
    ],
    marks: [{ t: rs.sigtermAt, label: 'SIGTERM, restart', color: '#d62728' }],
    bands: [
      { from: rs.pauseAt, to: rs.resumedAt, color: '#fde0dd', label: 'writers paused (restart)' },
      { from: 0, to: r.config.warmupSeconds, color: '#f0f0f0', label: 'warm-up (not judged)' },
      { from: rs.resumedAt, to: rs.resumedAt + r.config.warmupSeconds, color: '#f0f0f0' },
    ],
  });
}

await main();
