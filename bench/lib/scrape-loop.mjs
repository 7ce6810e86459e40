#!/usr/bin/env node
/**
 * A scraper in a process of its own, as Prometheus is:  node scrape-loop.mjs URL KEY
 * Fetches /metrics and /stats/farms one after the other, without pause, until it reads a line
 * on stdin (or stdin closes), then prints the times as JSON. Bodies are read as bytes and
 * dropped: decoding 17 MB of text here would only measure this process.
 */
const [url, key] = process.argv.slice(2);
const headers = { ZAPI_KEY: key };
const times = { metrics: [], stats: [] };
let running = true;
process.stdin.on('data', () => (running = false));
process.stdin.on('end', () => (running = false));

async function timedGet(path) {
  const t0 = performance.now();
  const res = await fetch(`${url}${path}`, { headers });
  let bytes = 0;
  for await (const chunk of res.body) bytes += chunk.length;
  if (res.status !== 200 || bytes === 0) throw new Error(`${path}: ${res.status}, ${bytes} bytes`);
  return performance.now() - t0;
}

while (running) {
  times.metrics.push(await timedGet('/metrics'));
  if (!running) break;
  times.stats.push(await timedGet('/zapi/v4.0/zapi.cgi/stats/farms'));
}
console.log(JSON.stringify(times));
