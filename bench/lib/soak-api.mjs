#!/usr/bin/env node
/**
 * The soak's API load, run inside the load balancer's namespace next to nftfarm:
 *   node soak-api.mjs URL KEY PLAN_JSON
 * PLAN_JSON: { writers, readers, scrapeMs, farms: { idle: [names], traffic: [names] }, spare }
 * where `spare` is the IP of a lab backend that no seeded farm uses (added and deleted again).
 *
 * Until "stop" (or EOF) on stdin:
 * - writers, each on its own share of the idle farms (so their writes never race each other):
 *   backend weight PUTs (on every farm, the traffic farms included), adding and deleting the
 *   spare backend, farm create/delete churn (dsr and nat in turn, 2 backends each), stop/start;
 * - readers: GET /farms, /farms/{f}, /stats/farms, /stats/farms/{f}, /system/status;
 * - a /metrics scrape every scrapeMs (event-loop delay, heap, the daemon's own RSS and fds);
 * - GET /healthz every second (round trip).
 * "pause" stops the writers after their current call (prints {"ev":"paused"}), "resume"
 * lets them go on: the soak restarts the daemon in between. Reads go on meanwhile; what fails
 * between pause and resume is counted apart, as the restart's.
 *
 * Prints JSON lines: {"ev":"tick"} every 5 s with the counts since the last tick, {"ev":"scrape"},
 * {"ev":"fail"} for each failed call (the first 200), and {"ev":"done"} with the totals.
 * A failure: any 5xx, any non-2xx answer outside ZAPI's envelope, no answer (outside the
 * restart), an answer that is not JSON. A 4xx in the envelope is counted as refused.
 */
import { createInterface } from 'node:readline';

const [url, key, planText] = process.argv.slice(2);
const plan = JSON.parse(planText);
const API = `${url}/zapi/v4.0/zapi.cgi`;
const HEADERS = { ZAPI_KEY: key, 'content-type': 'application/json' };
const REQUEST_TIMEOUT_MS = 15_000;
const TICK_MS = 5_000;
const MAX_FAIL_LINES = 200;
/** Per writer: farms holding the spare backend, stopped farms, churned farms alive at a time. */
const SPARES = 5;
const STOPPED = 5;
const CHURNED = 4;
const t0 = Date.now();

const out = (o) => process.stdout.write(`${JSON.stringify({ t: Date.now(), ...o })}\n`);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const pick = (xs) => xs[Math.floor(Math.random() * xs.length)];
const between = (a, b) => a + Math.random() * (b - a);

let stopping = false;
let paused = false;
/** True from "pause" to "resume": what fails meanwhile is the restart's. */
let restartWindow = false;
let resumeWaiters = [];
const idleWriters = new Set();

// ------------------------------------------------------------------ accounting

const blank = () => ({ ok: 0, refused: 0, failed: 0, restart: 0, ms: [] });
let tick = {};
const totals = {};
let failLines = 0;

function account(kind, outcome, ms) {
  for (const bag of [tick, totals]) {
    bag[kind] ??= blank();
    bag[kind][outcome]++;
    if (bag === tick) bag[kind].ms.push(ms);
  }
}

function failed(kind, method, path, what) {
  if (failLines++ < MAX_FAIL_LINES) out({ ev: 'fail', kind, method, path, restart: restartWindow, what: String(what).slice(0, 300) });
}

const isEnvelopeError = (body) =>
  body !== null && typeof body === 'object' && body.error === 'true' && typeof body.description === 'string' && typeof body.message === 'string';

/**
 * One call. Returns the parsed body of a 2xx answer, or null (refused or failed: accounted).
 * `expect` lists 4xx statuses that this call may meet by design (none today).
 */
async function call(kind, method, path, body, { raw = false } = {}) {
  const started = performance.now();
  let res;
  let text;
  try {
    res = await fetch(raw ? `${url}${path}` : `${API}${path}`, {
      method,
      headers: HEADERS,
      body: body === undefined ? undefined : JSON.stringify(body),
      signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS),
    });
    text = await res.text();
  } catch (err) {
    const ms = performance.now() - started;
    const why = err?.cause?.code ?? err?.name ?? String(err);
    account(kind, restartWindow ? 'restart' : 'failed', ms);
    failed(kind, method, path, `no answer: ${why}`);
    return null;
  }
  const ms = performance.now() - started;
  let parsed;
  if (!raw || res.headers.get('content-type')?.includes('json')) {
    try {
      parsed = JSON.parse(text);
    } catch {
      account(kind, 'failed', ms);
      failed(kind, method, path, `${res.status}, not JSON: ${text.slice(0, 120)}`);
      return null;
    }
  }
  if (res.status >= 200 && res.status < 300) {
    account(kind, 'ok', ms);
    return raw ? text : parsed;
  }
  if (res.status >= 500 || !isEnvelopeError(parsed)) {
    // 503 from a daemon that is shutting down is the restart's (it is in the envelope).
    const restart = restartWindow && res.status === 503 && isEnvelopeError(parsed);
    account(kind, restart ? 'restart' : 'failed', ms);
    failed(kind, method, path, `${res.status}: ${text.slice(0, 200)}`);
    return null;
  }
  account(kind, 'refused', ms);
  failed(kind, method, path, `refused ${res.status}: ${parsed.message}`);
  return null;
}

// ------------------------------------------------------------------ writers

async function writerGate(w) {
  while (paused && !stopping) {
    idleWriters.add(w);
    if (idleWriters.size === plan.writers) out({ ev: 'paused' });
    await new Promise((r) => resumeWaiters.push(r));
  }
  idleWriters.delete(w);
}

async function writer(w) {
  // This writer's share of the idle farms: its add/delete and stop/start never race another's.
  const mine = plan.farms.idle.filter((_, i) => i % plan.writers === w);
  const everyFarm = [...plan.farms.idle, ...plan.farms.traffic];
  const withSpare = new Set();
  const stopped = new Set();
  const churn = [];
  let n = 0;
  while (!stopping) {
    await writerGate(w);
    if (stopping) break;
    const r = Math.random();
    if (r < 0.45) {
      // Ids 0-3 are the seeded backends, never deleted: any writer may re-weight them.
      await call('put_weight', 'PUT', `/farms/${pick(everyFarm)}/backends/${Math.floor(Math.random() * 4)}`, { weight: 1 + Math.floor(Math.random() * 9) });
    } else if (r < 0.65) {
      // At most SPARES farms of this writer hold the spare at a time: the oldest loses it
      // first, so the configuration stays the same size over the soak.
      if (withSpare.size >= SPARES) {
        const [farm] = withSpare;
        // The spare is always id 4: ids are the lowest free ones and 0-3 stay.
        if (await call('delete_backend', 'DELETE', `/farms/${farm}/backends/4`)) withSpare.delete(farm);
      } else {
        const farm = pick(mine.filter((f) => !withSpare.has(f)));
        if (await call('add_backend', 'POST', `/farms/${farm}/backends`, { ip: plan.spare })) withSpare.add(farm);
      }
    } else if (r < 0.8) {
      const name = `c${w}x${n}`;
      const mode = n % 2 === 0 ? 'dsr' : 'nat';
      const vport = String(30000 + w * 1000 + (n % 1000));
      n++;
      if (await call('create_farm', 'POST', '/farms', { farmname: name, profile: 'l4xnat', vip: plan.vip, vport })) {
        churn.push(name);
        await call('modify_farm', 'PUT', `/farms/${name}`, { nattype: mode });
        for (const ip of plan.backends.slice(0, 2)) await call('add_backend', 'POST', `/farms/${name}/backends`, { ip });
      }
      if (churn.length > CHURNED) {
        const old = churn.shift();
        await call('delete_farm', 'DELETE', `/farms/${old}`);
      }
    } else if (stopped.size >= STOPPED) {
      // Likewise at most STOPPED stopped farms: the one stopped longest starts again.
      const [farm] = stopped;
      if (await call('start_farm', 'PUT', `/farms/${farm}/actions`, { action: 'start' })) stopped.delete(farm);
    } else {
      const farm = pick(mine.filter((f) => !stopped.has(f)));
      if (await call('stop_farm', 'PUT', `/farms/${farm}/actions`, { action: 'stop' })) stopped.add(farm);
    }
    await sleep(between(100, 300));
  }
}

// ------------------------------------------------------------------ readers, scrapes, health

async function reader() {
  const everyFarm = [...plan.farms.idle, ...plan.farms.traffic];
  while (!stopping) {
    const r = Math.random();
    if (r < 0.2) await call('get_farms', 'GET', '/farms');
    else if (r < 0.6) await call('get_farm', 'GET', `/farms/${pick(everyFarm)}`);
    else if (r < 0.75) await call('get_stats', 'GET', '/stats/farms');
    else if (r < 0.9) await call('get_farm_stats', 'GET', `/stats/farms/${pick(everyFarm)}`);
    else await call('get_status', 'GET', '/system/status?farms=false');
    await sleep(between(100, 300));
  }
}

/** The series of one Prometheus text answer (unlabelled ones, which are all we read). */
function series(text, name) {
  const m = new RegExp(`^${name} ([0-9.eE+-]+)$`, 'm').exec(text);
  return m ? Number(m[1]) : null;
}

async function scraper() {
  while (!stopping) {
    const due = Date.now() + plan.scrapeMs;
    const started = performance.now();
    const text = await call('metrics', 'GET', '/metrics', undefined, { raw: true });
    const ms = performance.now() - started;
    if (text !== null) {
      const p = 'nftfarm_';
      const s = (n) => series(text, `${p}${n}`);
      out({
        ev: 'scrape',
        ms: Math.round(ms),
        bytes: text.length,
        lagP99: s('nodejs_eventloop_lag_p99_seconds'),
        lagP50: s('nodejs_eventloop_lag_p50_seconds'),
        lagMax: s('nodejs_eventloop_lag_max_seconds'),
        lagMean: s('nodejs_eventloop_lag_mean_seconds'),
        rss: s('process_resident_memory_bytes'),
        fds: s('process_open_fds'),
        heapUsed: s('nodejs_heap_size_used_bytes'),
        heapTotal: s('nodejs_heap_size_total_bytes'),
        external: s('nodejs_external_memory_bytes'),
        handles: s('nodejs_active_handles_total'),
        desired: s('desired_generation'),
        applied: s('applied_generation'),
      });
    }
    await sleep(Math.max(0, due - Date.now()));
  }
}

async function health() {
  while (!stopping) {
    await call('healthz', 'GET', '/healthz', undefined, { raw: true });
    await sleep(1000);
  }
}

// ------------------------------------------------------------------ reporting

const percentile = (xs, p) => {
  if (xs.length === 0) return null;
  const s = [...xs].sort((a, b) => a - b);
  return Math.round(s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)] * 10) / 10;
};

function flushTick() {
  const kinds = {};
  for (const [kind, c] of Object.entries(tick)) {
    kinds[kind] = { ok: c.ok, refused: c.refused, failed: c.failed, restart: c.restart, p50: percentile(c.ms, 50), p99: percentile(c.ms, 99), max: percentile(c.ms, 100) };
  }
  tick = {};
  out({ ev: 'tick', kinds });
}

const lines = createInterface({ input: process.stdin });
lines.on('line', (line) => {
  const cmd = line.trim();
  if (cmd === 'pause') {
    paused = true;
    restartWindow = true;
    if (idleWriters.size === plan.writers) out({ ev: 'paused' });
  } else if (cmd === 'resume') {
    paused = false;
    restartWindow = false;
    const waiters = resumeWaiters;
    resumeWaiters = [];
    for (const r of waiters) r();
  } else if (cmd === 'stop') {
    stopping = true;
    paused = false;
    for (const r of resumeWaiters) r();
  }
});
// EOF: the soak is gone; stop rather than run on.
lines.on('close', () => {
  stopping = true;
  for (const r of resumeWaiters) r();
});

const ticker = setInterval(flushTick, TICK_MS);
const tasks = [
  ...Array.from({ length: plan.writers }, (_, w) => writer(w)),
  ...Array.from({ length: plan.readers }, () => reader()),
  scraper(),
  health(),
];
await Promise.all(tasks);
clearInterval(ticker);
flushTick();
const sum = {};
for (const [kind, c] of Object.entries(totals)) sum[kind] = { ok: c.ok, refused: c.refused, failed: c.failed, restart: c.restart };
out({ ev: 'done', seconds: Math.round((Date.now() - t0) / 1000), totals: sum });
process.exit(0);
