#!/usr/bin/env node
/**
 * Runs inside the load balancer's namespace:  node api-load.mjs URL KEY FARM SECONDS
 * autocannon against GET /farms/{f} and against backend PUTs (weights alternating, so every
 * PUT is a real write that wakes the reconciler). Prints requests/s and latencies as JSON.
 */
import autocannon from 'autocannon';

const [url, key, farm, secondsText] = process.argv.slice(2);
const duration = Number(secondsText);
const base = `${url}/zapi/v4.0/zapi.cgi/farms/${farm}`;
const headers = { ZAPI_KEY: key, 'content-type': 'application/json' };

async function load(opts) {
  const r = await autocannon({ connections: 10, pipelining: 1, duration, headers, ...opts });
  return {
    requestsPerSecond: Math.round(r.requests.average),
    p50Ms: r.latency.p50,
    p99Ms: r.latency.p99,
    non2xx: r.non2xx,
    errors: r.errors,
    total: r.requests.total,
  };
}

/** Median time of a few sequential requests (stats of every farm: kernel counters read live). */
async function timed(path, times = 3) {
  const ms = [];
  for (let i = 0; i < times; i++) {
    const t0 = performance.now();
    const res = await fetch(`${url}${path}`, { headers });
    const body = await res.text();
    if (res.status !== 200) throw new Error(`${path}: ${res.status} ${body.slice(0, 200)}`);
    ms.push(performance.now() - t0);
  }
  return Math.round(ms.sort((a, b) => a - b)[Math.floor(times / 2)] * 10) / 10;
}
const statsMs = await timed('/zapi/v4.0/zapi.cgi/stats/farms');
const metricsMs = await timed('/metrics');

const get = await load({ url: base });
let n = 0;
const put = await load({
  url: `${base}/backends/0`,
  method: 'PUT',
  requests: [{ setupRequest: (req) => ({ ...req, body: JSON.stringify({ weight: (n++ % 2) + 2 }) }) }],
});
console.log(JSON.stringify({ get, put, statsMs, metricsMs }));
