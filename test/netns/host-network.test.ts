// The real host-network module against a real kernel, in two namespaces this test creates:
//   <prefix>-lb  eth0 02:4e:48:00:00:01 10.250.0.1/24  (runs the module, through a driver)
//   <prefix>-pe  eth0 02:4e:48:00:00:02 10.250.0.2/24  (the peer: backend and ARP client)
// joined by one veth pair. Nothing here touches the root namespace's network configuration.
import t from 'tap';
import { spawn, spawnSync, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { mkdirSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

const HERE = dirname(fileURLToPath(import.meta.url));
const ROOT = resolve(HERE, '../..');
const SRC_DIR = join(ROOT, 'src/dataplane/netlink');
// Inside the project so the compiled module resolves `netlink` from ./node_modules.
const BUILD_DIR = join(ROOT, 'node_modules/.cache', `nftfarm-hn-${process.pid}`);

const PREFIX = `nfhn-${process.pid}`;
const NS_LB = `${PREFIX}-lb`;
const NS_PEER = `${PREFIX}-pe`;
const LB_MAC = '02:4e:48:00:00:01';
const PEER_MAC = '02:4e:48:00:00:02';
const LB_IP = '10.250.0.1';
const PEER_IP = '10.250.0.2';
const VIP = '10.250.0.100';

interface RunResult { status: number | null; stdout: string; stderr: string }

function run(cmd: string, args: string[]): RunResult {
  const r = spawnSync(cmd, args, { encoding: 'utf8', timeout: 30_000 });
  return { status: r.status, stdout: r.stdout ?? '', stderr: r.stderr ?? String(r.error ?? '') };
}

function must(cmd: string, args: string[]): string {
  const r = run(cmd, args);
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} failed (${r.status}): ${r.stderr}`);
  return r.stdout;
}

const inNs = (ns: string, ...cmd: string[]): string => must('ip', ['netns', 'exec', ns, ...cmd]);
const ipJson = (ns: string, ...args: string[]): unknown => JSON.parse(must('ip', ['-j', '-n', ns, ...args]) || '[]');

interface DriverError { name?: string; kind?: string; code?: string; message: string }

/** One driver process inside NS_LB, serving the module over JSON lines. */
class Driver {
  private readonly child: ChildProcessWithoutNullStreams;
  private nextId = 1;
  private readonly pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: DriverError) => void }>();
  events = 0;
  /** Events by the name of the watch that got them. */
  readonly eventsOf = new Map<string, number>();
  private eventWaiters: (() => void)[] = [];

  constructor(ns: string, modulePath: string) {
    this.child = spawn('ip', ['netns', 'exec', ns, process.execPath,
      join(HERE, 'fixtures/host-network-driver.mjs'), modulePath], {
      // tap's NODE_OPTIONS preloads its process tracker; the driver needs none of it.
      env: { ...process.env, NODE_OPTIONS: '' },
    });
    this.child.stderr.on('data', (d: Buffer) => process.stderr.write(`[driver] ${d.toString()}`));
    createInterface({ input: this.child.stdout }).on('line', (line) => {
      const msg = JSON.parse(line) as { id?: number; ok?: boolean; value?: unknown; error?: DriverError; event?: string; who?: string };
      if (msg.event !== undefined) {
        this.events++;
        if (msg.who !== undefined) this.eventsOf.set(msg.who, (this.eventsOf.get(msg.who) ?? 0) + 1);
        for (const w of this.eventWaiters.splice(0)) w();
        return;
      }
      const p = this.pending.get(msg.id ?? -1);
      if (p === undefined) return;
      this.pending.delete(msg.id ?? -1);
      if (msg.ok) p.resolve(msg.value);
      else p.reject(msg.error ?? { message: 'unknown error' });
    });
  }

  call<T = unknown>(method: string, ...args: unknown[]): Promise<T> {
    const id = this.nextId++;
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject({ message: `driver call ${method} timed out` });
      }, 10_000);
      this.pending.set(id, {
        resolve: (v) => { clearTimeout(timer); resolve(v as T); },
        reject: (e) => { clearTimeout(timer); reject(e); },
      });
      this.child.stdin.write(`${JSON.stringify({ id, method, args })}\n`);
    });
  }

  /** Resolves true at the next notification, false after ms without one. */
  nextEvent(ms: number): Promise<boolean> {
    return new Promise((resolve) => {
      const timer = setTimeout(() => resolve(false), ms);
      this.eventWaiters.push(() => { clearTimeout(timer); resolve(true); });
    });
  }

  stop(): void {
    this.child.stdin.end();
    setTimeout(() => this.child.kill('SIGKILL'), 2000).unref();
  }
}

/** Compiles only this module's files, so the test never runs a stale dist/. */
function compileModule(): string {
  rmSync(BUILD_DIR, { recursive: true, force: true });
  mkdirSync(BUILD_DIR, { recursive: true });
  // Node looks for "type" no further up than node_modules/: declare ESM here.
  writeFileSync(join(BUILD_DIR, 'package.json'), '{"type":"module"}\n');
  const files = readdirSync(SRC_DIR).filter((f) => f.endsWith('.ts')).map((f) => join(SRC_DIR, f));
  must(process.execPath, [join(ROOT, 'node_modules/typescript/bin/tsc'),
    '--module', 'nodenext', '--moduleResolution', 'nodenext', '--target', 'es2022',
    '--strict', '--skipLibCheck', '--types', 'node', '--rootDir', join(ROOT, 'src'), '--outDir', BUILD_DIR, ...files]);
  // rootDir is src/: the module imports the address helpers of src/model.
  return join(BUILD_DIR, 'dataplane', 'netlink', 'host-network.js');
}

interface ArpingResult { replies: { mac: string; ms: number }[] }

/** `arping` (Thomas Habets' 2.x) from the peer; parses "... from MAC (IP): index=N time=X msec". */
function arpingFromPeer(count: number): ArpingResult {
  const r = run('ip', ['netns', 'exec', NS_PEER, 'arping', '-c', String(count), '-W', '0.25', '-I', 'eth0', VIP]);
  const replies: { mac: string; ms: number }[] = [];
  const unitMs: Record<string, number> = { nsec: 1e-6, usec: 1e-3, msec: 1, sec: 1000 };
  for (const m of r.stdout.matchAll(/bytes from ([0-9a-f:]{17}) \(([\d.]+)\): index=\d+ time=([\d.]+) (nsec|usec|msec|sec)/g)) {
    replies.push({ mac: m[1] as string, ms: Number(m[3]) * (unitMs[m[4] as string] ?? Number.NaN) });
  }
  return { replies };
}

const canRun = process.getuid?.() === 0 && run('ip', ['-V']).status === 0;

// Runs as root (CI does): a missing privilege is a failure, never a silent skip.
t.ok(canRun, 'root and iproute2 are available (these tests build network namespaces)');
t.test('host network over rtnetlink in namespaces', async (t) => {
  if (run('sh', ['-c', 'command -v arping && command -v ping']).status !== 0) {
    t.fail('arping and ping are needed: apt-get install -y arping iputils-ping');
    return;
  }

  let driver: Driver | undefined;
  t.teardown(() => {
    driver?.stop();
    for (const ns of [NS_LB, NS_PEER]) run('ip', ['netns', 'del', ns]);
    rmSync(BUILD_DIR, { recursive: true, force: true });
  });

  const modulePath = compileModule();

  must('ip', ['netns', 'add', NS_LB]);
  must('ip', ['netns', 'add', NS_PEER]);
  // Created inside NS_LB with its peer end placed straight into NS_PEER: never in the root namespace.
  must('ip', ['-n', NS_LB, 'link', 'add', 'eth0', 'address', LB_MAC, 'type', 'veth',
    'peer', 'name', 'eth0', 'address', PEER_MAC, 'netns', NS_PEER]);
  must('ip', ['-n', NS_LB, 'addr', 'add', `${LB_IP}/24`, 'dev', 'eth0']);
  must('ip', ['-n', NS_PEER, 'addr', 'add', `${PEER_IP}/24`, 'dev', 'eth0']);
  must('ip', ['-n', NS_LB, 'link', 'set', 'eth0', 'up']);
  must('ip', ['-n', NS_PEER, 'link', 'set', 'eth0', 'up']);
  // NS_LB's lo stays down for now: the route test checks what that does.

  const d = new Driver(NS_LB, modulePath);
  driver = d;

  type Iface = { name: string; index: number; mac: string; up: boolean; addresses: { address: string; prefixLength: number }[] };
  const interfaces = await d.call<Iface[]>('listInterfaces');
  const eth0 = interfaces.find((i) => i.name === 'eth0');
  const ETH0 = eth0?.index ?? -1;

  t.test('listInterfaces shows lo and the veth with its MAC and address', async (t) => {
    t.same(eth0, { name: 'eth0', index: ETH0, mac: LB_MAC, up: true, addresses: [{ address: LB_IP, prefixLength: 24 }] });
    const lo = interfaces.find((i) => i.name === 'lo');
    t.same(lo, { name: 'lo', index: 1, mac: '00:00:00:00:00:00', up: false, addresses: [] },
      'lo of a fresh namespace is down and has no address yet');
    t.same(interfaces.map((i) => i.name), ['lo', 'eth0']);
  });

  t.test('addVipRoute fails with ENETDOWN while lo is down; setLinkUp fixes it', async (t) => {
    await t.rejects(d.call('addVipRoute', VIP), { name: 'HostNetworkError', kind: 'other', code: 'ENETDOWN' });
    t.same(ipJson(NS_LB, 'route', 'show', 'table', 'main', 'proto', '222'), [], 'nothing installed');
    await d.call('setLinkUp', 1);
    const lo = (await d.call<Iface[]>('listInterfaces')).find((i) => i.name === 'lo');
    t.equal(lo?.up, true);
    t.same(lo?.addresses, [{ address: '127.0.0.1', prefixLength: 8 }, { address: '::1', prefixLength: 128 }], 'the kernel adds 127.0.0.1/8 and ::1/128 when lo comes up');
  });

  t.test('addVipRoute / listOwnedRoutes / deleteVipRoute', async (t) => {
    must('ip', ['-n', NS_LB, 'route', 'add', '10.250.0.200/32', 'dev', 'lo']); // someone else's route
    t.same(await d.call('listOwnedRoutes'), [], 'foreign and kernel routes are not listed');

    await d.call('addVipRoute', VIP);
    await d.call('addVipRoute', VIP);
    t.same(await d.call('listOwnedRoutes'), [{ ip: VIP, prefixLength: 32, ifindex: 1 }], 'one route, replaced');
    t.match(ipJson(NS_LB, 'route', 'show', 'table', 'main', 'proto', '222'),
      [{ dst: VIP, dev: 'lo', scope: 'link' }], 'ip route agrees');

    await d.call('deleteVipRoute', '10.250.0.200');
    t.match(ipJson(NS_LB, 'route', 'show', '10.250.0.200/32'), [{ dst: '10.250.0.200', dev: 'lo' }],
      'deleteVipRoute leaves a route of another protocol alone');

    await d.call('deleteVipRoute', VIP);
    await d.call('deleteVipRoute', VIP);
    t.same(await d.call('listOwnedRoutes'), []);
    t.same(ipJson(NS_LB, 'route', 'show', 'table', 'main', 'proto', '222'), []);

    await t.rejects(d.call('addVipRoute', '10.250.0.0100'), { kind: 'other' }, 'invalid address');
    must('ip', ['-n', NS_LB, 'route', 'del', '10.250.0.200/32', 'dev', 'lo']);
  });

  t.test('listNeighbors sees the peer after a ping, with states and without proxy entries', async (t) => {
    inNs(NS_LB, 'ping', '-c', '1', '-W', '2', PEER_IP);
    must('ip', ['-n', NS_LB, 'neigh', 'add', '10.250.0.50', 'lladdr', '02:4e:48:00:00:50', 'dev', 'eth0', 'nud', 'permanent']);
    run('ip', ['netns', 'exec', NS_LB, 'ping', '-c', '1', '-W', '1', '10.250.0.99']); // nobody answers
    await d.call('addProxyNeighbor', ETH0, VIP);

    type Neigh = { ip: string; ifindex: number; mac: string | null; state: string };
    const neighbors = await d.call<Neigh[]>('listNeighbors');
    const byIp = new Map(neighbors.map((n) => [n.ip, n]));
    t.match(byIp.get(PEER_IP), { ip: PEER_IP, ifindex: ETH0, mac: PEER_MAC, state: /^(reachable|stale|delay|probe)$/ });
    t.same(byIp.get('10.250.0.50'), { ip: '10.250.0.50', ifindex: ETH0, mac: '02:4e:48:00:00:50', state: 'permanent' });
    t.match(byIp.get('10.250.0.99'), { ifindex: ETH0, mac: null, state: /^(incomplete|failed)$/ });
    t.notOk(byIp.has(VIP), 'proxy entries are not in the ARP table listing');

    await d.call('deleteProxyNeighbor', ETH0, VIP);
    must('ip', ['-n', NS_LB, 'neigh', 'del', '10.250.0.50', 'dev', 'eth0']);
  });

  t.test('add / list / delete proxy neighbours, idempotently', async (t) => {
    await d.call('addProxyNeighbor', ETH0, VIP);
    await d.call('addProxyNeighbor', ETH0, VIP);
    await d.call('addProxyNeighbor', ETH0, '10.250.0.101');
    const listed = await d.call<{ ip: string; ifindex: number }[]>('listProxyNeighbors');
    t.same([...listed].sort((a, b) => a.ip.localeCompare(b.ip)),
      [{ ip: VIP, ifindex: ETH0 }, { ip: '10.250.0.101', ifindex: ETH0 }]);
    t.same((ipJson(NS_LB, 'neigh', 'show', 'proxy') as { dst: string }[]).map((n) => n.dst).sort(),
      [VIP, '10.250.0.101'], 'ip neigh show proxy agrees');

    await d.call('deleteProxyNeighbor', ETH0, VIP);
    await d.call('deleteProxyNeighbor', ETH0, VIP);
    await d.call('deleteProxyNeighbor', ETH0, '10.250.0.101');
    t.same(await d.call('listProxyNeighbors'), []);
    t.same(ipJson(NS_LB, 'neigh', 'show', 'proxy'), []);

    await t.rejects(d.call('addProxyNeighbor', 9999, VIP), { kind: 'not-found', code: 'ENODEV' });
    await d.call('deleteProxyNeighbor', 9999, VIP); // a vanished interface holds no entries
  });

  t.test('setProxyDelay / getProxyDelay (milliseconds; the sysctl shows 1/100 s)', async (t) => {
    const sysctl = (): string => inNs(NS_LB, 'sysctl', '-n', 'net.ipv4.neigh.eth0.proxy_delay').trim();
    t.equal(await d.call('getProxyDelay', ETH0), 800, 'kernel default 0.8 s');
    t.equal(sysctl(), '80');
    await d.call('setProxyDelay', ETH0, 400); // a whole number of ticks at HZ 100, 250, 300, 1000
    t.equal(await d.call('getProxyDelay', ETH0), 400);
    t.equal(sysctl(), '40');
    await d.call('setProxyDelay', ETH0, 0);
    t.equal(await d.call('getProxyDelay', ETH0), 0);
    t.equal(sysctl(), '0');
    await t.rejects(d.call('getProxyDelay', 9999), { kind: 'not-found' });
    await t.rejects(d.call('setProxyDelay', 9999, 0), { kind: 'not-found' });
    await t.rejects(d.call('setProxyDelay', ETH0, -1), { kind: 'other' });
  });

  t.test('watchNeighbors reports ARP table changes until unsubscribed', async (t) => {
    await d.call('watch');
    const seen = d.nextEvent(2000);
    must('ip', ['-n', NS_LB, 'neigh', 'add', '10.250.0.77', 'lladdr', '02:4e:48:00:00:77', 'dev', 'eth0', 'nud', 'permanent']);
    t.ok(await seen, 'notified of the new entry');
    await d.call('unwatch');
    const before = d.events;
    must('ip', ['-n', NS_LB, 'neigh', 'del', '10.250.0.77', 'dev', 'eth0']);
    t.notOk(await d.nextEvent(300), 'no notification after unsubscribe');
    t.equal(d.events, before);
  });

  t.test('neighbour watches share one monitor; each is called until it unsubscribes', async (t) => {
    await d.call('watch', 'x');
    await d.call('watch', 'y');
    t.equal(await d.call('monitorCount'), 1, 'one `ip monitor` for both');
    const neighbor = (verb: 'add' | 'del') => must('ip', ['-n', NS_LB, 'neigh', verb, '10.250.0.79', ...(verb === 'add' ? ['lladdr', '02:4e:48:00:00:79'] : []), 'dev', 'eth0', ...(verb === 'add' ? ['nud', 'permanent'] : [])]);
    const seen = (who: string) => d.eventsOf.get(who) ?? 0;
    neighbor('add');
    const deadline = Date.now() + 5000;
    while ((seen('x') === 0 || seen('y') === 0) && Date.now() < deadline) await d.nextEvent(200);
    t.ok(seen('x') > 0 && seen('y') > 0, `both notified (x ${seen('x')}, y ${seen('y')})`);
    await d.call('unwatch', 'x');
    const [x, y] = [seen('x'), seen('y')];
    neighbor('del');
    while (seen('y') === y && Date.now() < deadline + 5000) await d.nextEvent(200);
    t.ok(seen('y') > y, 'the remaining watch is still notified');
    t.equal(seen('x'), x, 'the one unsubscribed is not');
    t.equal(await d.call('monitorCount'), 1, 'the monitor stays for the other');
    await d.call('unwatch', 'y');
    let count = await d.call<number>('monitorCount');
    while (count > 0 && Date.now() < deadline + 10_000) {
      await new Promise((r) => setTimeout(r, 50));
      count = await d.call<number>('monitorCount');
    }
    t.equal(count, 0, 'the last unsubscribe ends it');
  });

  t.test('a flood of neighbour changes is survived, and the watch goes on (an overrun socket of the netlink package aborts its process)', async (t) => {
    await d.call('watch');
    // 3 x 5,000 entries added and flushed: tens of thousands of notifications within a second.
    const lines = Array.from({ length: 5000 }, (_, i) => `neigh replace 10.251.${i >> 8}.${i & 255} lladdr 02:4e:48:01:${(i >> 8).toString(16).padStart(2, '0')}:${(i & 255).toString(16).padStart(2, '0')} dev eth0 nud permanent`);
    const batch = join(BUILD_DIR, 'neigh-flood.batch');
    writeFileSync(batch, `${lines.join('\n')}\n`);
    for (let round = 0; round < 3; round++) {
      must('ip', ['-n', NS_LB, '-batch', batch]);
      must('ip', ['-n', NS_LB, 'neigh', 'flush', 'dev', 'eth0', 'nud', 'permanent']);
    }
    t.ok(await d.call('listInterfaces'), 'the watching process still answers');
    // What the flood left to tell is told; then one more change must still be seen.
    while (await d.nextEvent(1000));
    const seen = d.nextEvent(5000);
    must('ip', ['-n', NS_LB, 'neigh', 'add', '10.250.0.78', 'lladdr', '02:4e:48:00:00:78', 'dev', 'eth0', 'nud', 'permanent']);
    t.ok(await seen, 'a change after the flood is still reported');
    must('ip', ['-n', NS_LB, 'neigh', 'del', '10.250.0.78', 'dev', 'eth0']);
    await d.call('unwatch');
  });

  t.test('proxy ARP answers for the VIP only with forwarding, a route via lo and proxy_delay 0', async (t) => {
    inNs(NS_LB, 'sysctl', '-q', '-w', 'net.ipv4.conf.eth0.forwarding=1');
    await d.call('setProxyDelay', ETH0, 0);
    await d.call('addProxyNeighbor', ETH0, VIP);

    t.same(arpingFromPeer(2).replies, [], 'no answer without a route for the VIP');

    await d.call('addVipRoute', VIP);
    const answered = arpingFromPeer(5).replies;
    t.equal(answered.length, 5, `5/5 requests answered (${answered.map((r) => r.ms.toFixed(3)).join(', ')} ms)`);
    t.ok(answered.every((r) => r.mac === LB_MAC), 'answered with the LB MAC');
    t.ok(answered.every((r) => r.ms < 200), 'every answer within 200 ms');

    inNs(NS_LB, 'sysctl', '-q', '-w', 'net.ipv4.conf.eth0.forwarding=0');
    t.same(arpingFromPeer(2).replies, [], 'no answer with forwarding off');
    inNs(NS_LB, 'sysctl', '-q', '-w', 'net.ipv4.conf.eth0.forwarding=1');

    await d.call('deleteProxyNeighbor', ETH0, VIP);
    t.same(arpingFromPeer(3).replies, [], 'no answer after deleteProxyNeighbor');
    await d.call('deleteVipRoute', VIP);
  });

  t.test('close: later calls fail with a HostNetworkError', async (t) => {
    await d.call('close');
    await t.rejects(d.call('listInterfaces'), { name: 'HostNetworkError', kind: 'other' });
  });
});
