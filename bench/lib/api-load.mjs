#!/usr/bin/env node
/**
 * Runs inside the load balancer's namespace:  node api-load.mjs URL KEY FARM SECONDS [reads]
 * (`reads`: only the reads, 1, 2 and 4, with 5 timed scrapes in 1 instead of 3).
 * 1. the time of GET /stats/farms and GET /metrics (median of 3, nothing else running);
 * 2. autocannon (10 connections) against GET /farms/{f};
 * 3. autocannon against backend PUTs (weights alternating, so every PUT is a real write that
 *    wakes the reconciler), then how long the reconciler takes to catch up (the applied
 *    generation equal to the store's);
 * 4. GET /farms/{f} again while another process (scrape-loop.mjs, as Prometheus would be)
 *    scrapes /metrics and /stats/farms without pause.
 * Prints the figures as JSON.
 */
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import autocannon from 'autocannon';

const [url, key, farm, secondsText, mode] = process.argv.slice(2);
const readsOnly = mode === 'reads';
const duration = Number(secondsText);
const api = `${url}/zapi/v4.0/zapi.cgi`;
const base = `${api}/farms/${farm}`;
const headers = { ZAPI_KEY: key, 'content-type': 'application/json' };

async function load(opts) {
  const r = await autocannon({ connections: 10, pipelining: 1, duration, headers, ...opts });
  return { requestsPerSecond: Math.round(r.requests.average), p50Ms: r.latency.p50, p99Ms: r.latency.p99, non2xx: r.non2xx, errors: r.errors, total: r.requests.total };
}

async function timedGet(path) {
  const t0 = performance.now();
  const res = await fetch(`${url}${path}`, { headers });
  // To the last byte, not decoded: decoding megabytes of text would time this process.
  const chunks = [];
  for await (const chunk of res.body) chunks.push(chunk);
  const t1 = performance.now();
  if (res.status !== 200) throw new Error(`${path}: ${res.status} ${Buffer.concat(chunks).toString().slice(0, 200)}`);
  return t1 - t0;
}
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const round = (x) => Math.round(x * 10) / 10;

async function timed(path, times = 3) {
  const ms = [];
  for (let i = 0; i < times; i++) ms.push(await timedGet(path));
  return round(median(ms));
}

const status = async () => (await (await fetch(`${api}/system/status?farms=false`, { headers })).json()).params;

const statsMs = await timed('/zapi/v4.0/zapi.cgi/stats/farms', readsOnly ? 5 : 3);
const metricsMs = await timed('/metrics', readsOnly ? 5 : 3);
const get = await load({ url: base });
let n = 0;
const put = readsOnly
  ? null
  : await load({
      url: `${base}/backends/0`,
      method: 'PUT',
      requests: [{ setupRequest: (req) => ({ ...req, body: JSON.stringify({ weight: (n++ % 2) + 2 }) }) }],
    });
// The reconciler keeps up: how long after the load the kernel holds the last write.
const loadEnded = performance.now();
let caughtUpMs = null;
while (!readsOnly) {
  const s = await status();
  if (s.applied_generation === s.store_generation) {
    caughtUpMs = round(performance.now() - loadEnded);
    break;
  }
  if (performance.now() - loadEnded > 60_000) break;
  await new Promise((r) => setTimeout(r, 10));
}

// GETs while the reads that walk every farm are scraped in a loop, by another process.
const scraper = spawn(process.execPath, [fileURLToPath(new URL('scrape-loop.mjs', import.meta.url)), url, key], { stdio: ['pipe', 'pipe', 'inherit'] });
let scraperOut = '';
scraper.stdout.on('data', (d) => (scraperOut += d));
const scraperExit = new Promise((resolve) => scraper.on('exit', resolve));
const underScrape = await load({ url: base });
scraper.stdin.end('stop\n');
const scraperCode = await scraperExit;
if (scraperCode !== 0) throw new Error(`scrape-loop.mjs exited with ${scraperCode}`);
const scrapes = JSON.parse(scraperOut);
console.log(
  JSON.stringify({
    get,
    put,
    caughtUpMs,
    statsMs,
    metricsMs,
    underScrape: { get: underScrape, metricsMs: round(median(scrapes.metrics)), metricsMaxMs: round(Math.max(...scrapes.metrics)), statsMs: round(median(scrapes.stats)), scrapes: scrapes.metrics.length + scrapes.stats.length },
  }),
);
