#!/usr/bin/env node
/**
 * Failover with BGP and ECMP (issue 12), in the routed lab of lab/routed.ts (run as root,
 * after `npm run build`):
 *
 *   node bench/bgp-failover.mjs [RUNS=5] [HOLD_TIMES=3,9] [MOVED_RUNS=3]
 *
 * Two nftfarm nodes announce a DSR farm's VIP by BGP to a BIRD router with ECMP (L4 hash).
 *
 * Failover: for each hold time, RUNS times: the source ports that the router sends to node 1
 * are found (a connection from each of 60 ports, then node 1's flow map), then node 1 dies and the client keeps
 * opening connections from those ports (100 ms connect timeout each) until one succeeds, which
 * can only happen through node 2 once the router has dropped node 1. Two deaths:
 * - "silent": node 1's link goes down (power loss, a frozen host): nothing tells the router,
 *   which waits for the hold time;
 * - "kill": SIGKILL of nftfarm (BIRD dies with it): the kernel closes BIRD's TCP session, the
 *   router drops the path at once; node 1's nftables rules stay in the kernel meanwhile.
 * Reported: node killed -> first new connection succeeding, and node killed -> the router's
 * kernel route losing node 1, medians.
 *
 * Moved flows: node 1 is stopped (SIGTERM, withdrawn); the farm has 2 backends; 40 long-lived
 * connections open through node 2; a 3rd backend is added on node 2 and, through
 * `nftfarm config apply --db` (no daemon), on node 1; node 1 starts again and the router sends
 * about half of the flows to it. Node 1 never saw them: it picks their backend from its table,
 * in which some of their buckets now belong to the new backend. Counted: how many break.
 */
import fs from 'node:fs';
import path from 'node:path';
import { createRoutedLab, NODE_ASN, ROUTER_ASN, ROUTER_IP, PACKAGE_ROOT } from '../lab/dist/lab/routed.js';
import { startLabDaemon } from '../lab/dist/lab/daemon.js';

const RUNS = Number(process.argv[2] ?? 5);
const HOLD_TIMES = (process.argv[3] ?? '3,9').split(',').map(Number);
const MOVED_RUNS = Number(process.argv[4] ?? 3);
const VIP = '10.252.0.100';
const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
async function until(check, ms, what) {
  const deadline = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out: ${what}`);
    await sleep(50);
  }
}
async function ok(daemon, method, route, body) {
  const r = await daemon.api(method, route, body);
  if (r.status !== 200 && r.status !== 201) throw new Error(`${method} ${route}: ${r.status} ${JSON.stringify(r.body)}`);
  return r.body;
}

async function setup(holdTime, backends) {
  const teardowns = [];
  const t = { teardown: (fn) => teardowns.push(fn) };
  const lab = await createRoutedLab({ prefix: 'nfbgpx' });
  const close = async () => {
    for (const fn of teardowns.reverse()) await fn();
    await lab.destroy();
  };
  try {
    // A real router hashes the packet's 5-tuple. In one kernel, policy 1 (L4) reuses the hash
    // the client's socket put on the skb (veth keeps it; random per socket, re-drawn on a
    // retransmission timeout), so a source port would not say which node it goes to. Policy 3
    // with the 5-tuple fields (0x37) hashes the packet itself, as a remote router does.
    await lab.execOk(lab.router.ns, ['sysctl', '-q', '-w', 'net.ipv4.fib_multipath_hash_policy=3', 'net.ipv4.fib_multipath_hash_fields=0x0037']);
    await lab.configureDsrBackends([VIP]);
    await lab.startHttpBackends(80);
    await lab.startRouterBird(lab.nodes.slice(0, 2), holdTime);
    const nodes = [await startLabDaemon(t, lab.asLab(lab.nodes[0])), await startLabDaemon(t, lab.asLab(lab.nodes[1]))];
    await ok(nodes[0], 'PUT', '/system/bgp', { enabled: true, asn: NODE_ASN, neighbors: [{ address: ROUTER_IP, asn: ROUTER_ASN }], hold_time: holdTime, drain_time: 1 });
    await ok(nodes[0], 'POST', '/farms', { farmname: 'web', profile: 'l4xnat', vip: VIP, vport: '80' });
    await ok(nodes[0], 'PUT', '/farms/web', { nattype: 'dsr' });
    for (const b of lab.backends.slice(0, backends)) await ok(nodes[0], 'POST', '/farms/web/backends', { ip: b.ip });
    // Node 2 gets node 1's configuration as a document.
    await ok(nodes[1], 'PUT', '/system/config', await ok(nodes[0], 'GET', '/system/config'));
    const pair = [lab.nodes[0].ip, lab.nodes[1].ip].sort().join(',');
    await until(async () => (await lab.routerPaths(VIP)).join(',') === pair, 30_000, 'two paths');
    return { lab, nodes, close, pair };
  } catch (err) {
    await close();
    throw err;
  }
}

/**
 * Source ports the router sends to node 1 (its L4 multipath hash; `ip route get ... sport`
 * does not predict it on this kernel): one connection from each port of a fresh range, then
 * node 1's flow map says which of them it pinned.
 */
async function portsVia(lab, probe, run) {
  const range = Array.from({ length: 60 }, (_, i) => 20000 + run * 100 + i);
  await lab.execOk(lab.client.ns, [process.execPath, probe, 'open', VIP, '80', range.join(','), '1000', '0']);
  const listing = (await lab.execOk(lab.nodes[0].ns, ['nft', 'list', 'map', 'netdev', 'nftfarm', 'flows_tcp'])).stdout;
  const pinned = new Set([...listing.matchAll(/10\.251\.0\.10 \. 10\.252\.0\.100 \. (\d+) \. 80/g)].map((m) => Number(m[1])));
  return range.filter((p) => pinned.has(p));
}

function startProbe(lab, probe, ports, deadlineMs) {
  const child = lab.spawn(lab.client.ns, [process.execPath, probe, VIP, '80', ports.join(','), '100', String(deadlineMs)], { env: { ...process.env, NODE_OPTIONS: '' } });
  let out = '';
  let onReady;
  const ready = new Promise((resolve) => (onReady = resolve));
  child.stdout.setEncoding('utf8').on('data', (c) => {
    out += c;
    if (out.includes('ready\n')) onReady();
  });
  const result = new Promise((resolve, reject) =>
    child.once('close', () => {
      const last = out.trim().split('\n').pop();
      if (last && last.startsWith('{')) resolve(JSON.parse(last));
      else reject(new Error(`probe failed: ${out}`));
    }),
  );
  return { ready, result, go: () => child.stdin.write('go\n') };
}

async function failover(holdTime) {
  const rows = [];
  const env = await setup(holdTime, 3);
  const { lab, nodes, pair } = env;
  const probe = path.join(PACKAGE_ROOT, 'bench', 'lib', 'first-connect.mjs');
  try {
    let sequence = 0;
    for (const how of ['silent', 'kill']) {
      for (let run = 1; run <= RUNS; run++) {
        const ports = await portsVia(lab, probe, ++sequence);
        if (ports.length < 15) throw new Error(`only ${ports.length} of 60 ports go to node 1`);
        // The client is started first and told to go right after the failure.
        const client = startProbe(lab, probe, ports, (holdTime + 10) * 1000);
        await client.ready;
        const killedAt = Date.now();
        if (how === 'silent') await lab.execOk(lab.nodes[0].ns, ['ip', 'link', 'set', 'eth0', 'down']);
        else await nodes[0].stop('SIGKILL');
        client.go();
        let routeGoneAt = null;
        while (routeGoneAt === null && Date.now() - killedAt < (holdTime + 10) * 1000) {
          if ((await lab.routerPaths(VIP)).join(',') === lab.nodes[1].ip) routeGoneAt = Date.now();
          else await sleep(20);
        }
        const first = await client.result;
        const row = { holdTime, how, run, firstConnectionMs: first.ok ? first.at - killedAt : null, routerDroppedMs: routeGoneAt && routeGoneAt - killedAt, attempts: first.attempts };
        rows.push(row);
        console.log(JSON.stringify(row));
        if (how === 'silent') await lab.execOk(lab.nodes[0].ns, ['ip', 'link', 'set', 'eth0', 'up']);
        else await nodes[0].start();
        await until(async () => (await lab.routerPaths(VIP)).join(',') === pair, 60_000, 'node 1 back');
      }
    }
  } finally {
    await env.close();
  }
  return rows;
}

async function movedFlows() {
  const rows = [];
  const env = await setup(3, 2);
  const { lab, nodes, pair } = env;
  const bin = path.join(PACKAGE_ROOT, 'bin', 'nftfarm');
  try {
    for (let run = 1; run <= MOVED_RUNS; run++) {
      await nodes[0].stop('SIGTERM');
      await until(async () => (await lab.routerPaths(VIP)).join(',') === lab.nodes[1].ip, 10_000, 'node 1 withdrawn');
      const hold = lab.startHold(VIP, 80, 40);
      const ready = await hold.ready();
      // The new backend, on node 2 through its API and on node 1's database (no daemon runs there).
      await ok(nodes[1], 'POST', '/farms/web/backends', { ip: lab.backends[2].ip });
      const doc = await ok(nodes[1], 'GET', '/system/config');
      const file = path.join(nodes[0].dir, 'config.json');
      fs.writeFileSync(file, JSON.stringify(doc));
      const env1 = { ...process.env, NODE_OPTIONS: '' };
      await lab.execOk(lab.nodes[0].ns, [process.execPath, bin, 'config', 'apply', file, '--db', nodes[0].dbPath], { timeoutMs: 30_000, env: env1 });
      await nodes[0].start();
      await until(async () => (await lab.routerPaths(VIP)).join(',') === pair, 30_000, 'node 1 back');
      const stats = async () => (await ok(nodes[0], 'GET', '/stats/farms')).farms.find((f) => f.farmname === 'web').packets;
      const base = await stats();
      await until(async () => (await stats()) > base + 200, 20_000, 'node 1 carries flows');
      const result = await hold.stop();
      const row = { run, connections: ready.opened, byBackendBefore: ready.byBackend, broken: result.broken, errors: result.errors.slice(0, 3) };
      rows.push(row);
      console.log(JSON.stringify(row));
      // Back to 2 backends on both nodes for the next run.
      await ok(nodes[1], 'DELETE', '/farms/web/backends/2');
      await ok(nodes[0], 'PUT', '/system/config', await ok(nodes[1], 'GET', '/system/config'));
    }
  } finally {
    await env.close();
  }
  return rows;
}

const results = { failover: [], moved: [] };
for (const hold of HOLD_TIMES) results.failover.push(...(await failover(hold)));
if (MOVED_RUNS > 0) results.moved = await movedFlows();

console.log('\nfailover (ms, median of each case):');
for (const hold of HOLD_TIMES) {
  for (const how of ['silent', 'kill']) {
    const rows = results.failover.filter((r) => r.holdTime === hold && r.how === how);
    const first = rows.map((r) => r.firstConnectionMs).filter((x) => x !== null);
    const dropped = rows.map((r) => r.routerDroppedMs).filter((x) => x !== null);
    console.log(`hold ${hold} s, ${how}: first new connection via node 2 median ${median(first)} (runs ${first.join(', ')}); router drops node 1 median ${median(dropped)} (runs ${dropped.join(', ')})`);
  }
}
if (results.moved.length > 0) console.log(`moved flows: broken ${results.moved.map((r) => `${r.broken}/${r.connections}`).join(', ')}`);
fs.writeFileSync(path.join(PACKAGE_ROOT, 'bench', 'bgp-failover.json'), `${JSON.stringify(results, null, 2)}\n`);
