#!/usr/bin/env node
/**
 * Time from a backend failure to its removal from the data plane, in a lab of network
 * namespaces (run as root, after `npm run build`):
 *
 *   node bench/health-failover.mjs [RUNS=10] [INTERVAL_S=1] [FALL=1]
 *
 * A DSR farm with three HTTP backends and check_tcp (interval INTERVAL_S, timeout 1 s, fall
 * FALL, rise 1). Each run stops the server of one backend (the failure: its process has
 * exited, so the port refuses connections) and reads nftfarm's own log lines for when the
 * check declared it down (detection) and when the nftables transaction that takes it out of
 * new-flow selection was applied (removal); then the server is started again, and the next
 * run waits until it is back plus a random part of an interval, so failures land at random
 * points of the check cycle. Prints each run and the medians.
 */
import fs from 'node:fs';
import { createLab, LAB_VIP } from '../lab/dist/lab/lab.js';
import { createDsrFarm, farmReady, startLabDaemon } from '../lab/dist/lab/daemon.js';

const RUNS = Number(process.argv[2] ?? 10);
const INTERVAL_S = Number(process.argv[3] ?? 1);
const FALL = Number(process.argv[4] ?? 1);
const VIP = LAB_VIP;
const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

const teardowns = [];
const t = { teardown: (fn) => teardowns.push(fn) };
const lab = await createLab({ prefix: 'nfhcb', backends: 3 });
try {
  await lab.configureDsrBackends(VIP);
  const servers = await lab.startHttpBackends(80);
  const daemon = await startLabDaemon(t, lab);
  await createDsrFarm(daemon, lab, 'web', VIP, '80');
  const check = { name: 'bench', command: 'check_tcp -H HOST -p PORT -t 1', interval: INTERVAL_S, timeout: 1, fall: FALL, rise: 1 };
  if ((await daemon.api('POST', '/monitoring/fg', check)).status !== 200) throw new Error('cannot create the check');
  if ((await daemon.api('POST', '/farms/web/fg', { name: 'bench' })).status !== 200) throw new Error('cannot link the check');
  if (!(await daemon.until(() => farmReady(daemon, 'web'), 10_000))) throw new Error(`farm not ready:\n${daemon.logs()}`);

  const logLines = () => fs.readFileSync(daemon.logFile, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l));
  const rows = [];
  for (let run = 1; run <= RUNS; run++) {
    await sleep(INTERVAL_S * 1000 + Math.random() * INTERVAL_S * 1000);
    const seen = logLines().length;
    await lab.stopProcess(servers[1].child);
    const failedAt = Date.now();
    const removed = await daemon.until(async () => (await daemon.api('GET', '/farms/web')).body.backends[1].status === 'down', 15_000);
    if (!removed) throw new Error(`run ${run}: not down in 15 s`);
    const fresh = logLines().slice(seen);
    const down = fresh.find((l) => l.component === 'health' && l.to === 'down' && l.backend === 1);
    const applied = fresh.find((l) => l.msg === 'applied the nftables transaction' && down && l.time >= down.time);
    if (!down || !applied) throw new Error(`run ${run}: log lines missing:\n${fresh.map((l) => JSON.stringify(l)).join("\n")}`);
    const row = { run, detectedMs: down.time - failedAt, removedMs: applied.time - failedAt, transactionMs: applied.ms, checkLatencyMs: down.latencyMs };
    rows.push(row);
    console.log(JSON.stringify(row));
    servers[1] = await lab.startBackendServer(lab.backends[1], { httpPort: 80 });
    if (!(await daemon.until(() => farmReady(daemon, 'web'), 15_000))) throw new Error(`run ${run}: backend did not come back`);
  }
  console.log(
    JSON.stringify({
      runs: RUNS,
      intervalS: INTERVAL_S,
      fall: FALL,
      medianDetectedMs: median(rows.map((r) => r.detectedMs)),
      medianRemovedMs: median(rows.map((r) => r.removedMs)),
      maxRemovedMs: Math.max(...rows.map((r) => r.removedMs)),
      medianTransactionMs: median(rows.map((r) => r.transactionMs)),
    }),
  );
} finally {
  for (const fn of teardowns.reverse()) await fn();
  await lab.destroy();
}
