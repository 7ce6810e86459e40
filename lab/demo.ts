/**
 * `npm run demo`: Direct Server Return in a lab of network namespaces. A client, the load
 * balancer running nftfarm, two backends, one bridge. The farm is created through the HTTP
 * API; each request shows which backend answered, and captures show that replies go from
 * the backends straight to the client, never through the load balancer.
 */
import { createLab, LAB_VIP, type Lab } from './lab.js';
import { startLabDaemon, type LabDaemon } from './daemon.js';

const VIP = LAB_VIP;
const say = (line = '') => process.stdout.write(`${line}\n`);

async function showCall(daemon: LabDaemon, method: string, route: string, body?: unknown): Promise<void> {
  const answer = await daemon.api(method, route, body);
  say(`$ curl -X ${method} .../zapi/v4.0/zapi.cgi${route}${body === undefined ? '' : ` -d '${JSON.stringify(body)}'`}`);
  say(`  ${answer.status} ${JSON.stringify(answer.body)}`);
  if (answer.status >= 300) throw new Error(`the API refused ${method} ${route}`);
}

async function main(): Promise<number> {
  if (process.getuid?.() !== 0) {
    process.stderr.write('the demo builds network namespaces: run it as root (sudo npm run demo)\n');
    return 1;
  }
  const cleanups: (() => void | Promise<void>)[] = [];
  const teardown = { teardown: (fn: () => void | Promise<void>) => void cleanups.push(fn) };
  let lab: Lab | null = null;
  try {
    say('== building the lab: client 10.250.0.10, load balancer 10.250.0.2, backends b1 .21 and b2 .22, one bridge');
    lab = await createLab({ prefix: 'nfdemo', backends: 2 });
    await lab.configureDsrBackends(VIP);
    await lab.startHttpBackends(80);
    say(`   backends: VIP ${VIP}/32 on lo, arp_ignore=1, arp_announce=2; an HTTP server on port 80 that says who it is`);

    say('== starting nftfarm in the load balancer namespace');
    const daemon = await startLabDaemon(teardown, lab);
    say('== creating a DSR farm through the HTTP API');
    await showCall(daemon, 'POST', '/farms', { farmname: 'web', profile: 'l4xnat', vip: VIP, vport: '80' });
    await showCall(daemon, 'PUT', '/farms/web', { nattype: 'dsr' });
    for (const b of lab.backends) await showCall(daemon, 'POST', '/farms/web/backends', { ip: b.ip, port: 80 });
    const ready = await daemon.until(async () => {
      const farm = await daemon.api('GET', '/farms/web');
      return farm.body?.params?.status === 'up' && farm.body.params.dataplane.state === 'applied';
    }, 10_000);
    if (!ready) throw new Error(`the farm did not come up:\n${daemon.logs()}`);
    say('   the farm is up: nftfarm learned the backends\' MAC addresses and answers ARP for the VIP');

    say(`== six requests from the client to http://${VIP}/, each on a new connection`);
    const atLb = await lab.capture(lab.lb.ns, 'eth0', `host ${VIP}`);
    const atClient = await lab.capture(lab.client.ns, 'eth0', `host ${VIP}`);
    for (let i = 1; i <= 6; i++) {
      const r = await lab.httpMany(`http://${VIP}/`, 1);
      const sample = r.samples[0];
      say(`   request ${i}: ${sample ? `answered by ${sample.backend} (it saw client ${sample.client}, local address ${sample.local})` : `failed: ${r.errors.join('; ')}`}`);
    }
    const lbFrames = (await atLb.stop()).frames;
    const clientFrames = (await atClient.stop()).frames;

    const toVip = lbFrames.filter((f) => f.ipv4?.dst === VIP);
    const fromVip = lbFrames.filter((f) => f.ipv4?.src === VIP);
    say('== what the load balancer saw on eth0 (tcpdump)');
    say(`   client -> VIP frames: ${toVip.length} (in, then out again to a backend's MAC)`);
    say(`   VIP -> client frames: ${fromVip.length}`);
    for (const f of toVip.slice(0, 4)) say(`     ${f.srcMac} > ${f.dstMac} ${f.ipv4?.src}:${f.tcp?.srcPort} > ${f.ipv4?.dst}:${f.tcp?.dstPort} [${f.tcp?.flags}]`);
    const replies = clientFrames.filter((f) => f.ipv4?.src === VIP);
    const macs = new Map(lab.backends.map((b) => [b.mac, b.name]));
    const senders = new Map<string, number>();
    for (const f of replies) senders.set(f.srcMac, (senders.get(f.srcMac) ?? 0) + 1);
    say('== what the client saw: replies from the VIP, sent by');
    for (const [mac, count] of senders) say(`   ${mac} (${macs.get(mac) ?? (mac === lab.lb.mac ? 'the LOAD BALANCER' : 'unknown')}): ${count} frames`);
    say(fromVip.length === 0 && !senders.has(lab.lb.mac) ? '=> replies never crossed the load balancer: Direct Server Return' : '=> UNEXPECTED: replies crossed the load balancer');

    say('== cleaning up: deleting the farm, stopping nftfarm, removing the namespaces');
    await daemon.api('DELETE', '/farms/web');
    await daemon.until(async () => (await daemon.nft(['list', 'tables'])) === '', 5000);
    return fromVip.length === 0 ? 0 : 1;
  } finally {
    for (const fn of cleanups.reverse()) await fn();
    await lab?.destroy();
    say('== done: no namespace or process of the demo is left');
  }
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(`demo failed: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(1);
  },
);
