// End-to-end test of the namespace lab itself: topology, real traffic, capture, and cleanup on
// every way a test process can end. Needs root and a prior `npm run build` (the lab's programs run from lab/dist/).
import t from 'tap';
// These tests check the lab's own names: they run with the prefixes exactly as written.
delete process.env.NFTFARM_LAB_TAG;
import { spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import {
  CLIENT_IP,
  CLIENT_MAC,
  LAB_DIST,
  LAB_VIP,
  PACKAGE_ROOT,
  createLab,
  destroyStaleLabs,
  listNamespaces,
  type Lab,
} from '../../lab/lab.js';
import { stateFile } from '../../lab/cleanup.js';

// One prefix per test file: tap runs files in parallel. The crash tests use their own.
const PREFIX = 'nflab';
/** The prefix a lab asked for as `prefix` really has: createLab appends NFTFARM_LAB_TAG. */
const tagged = (prefix: string): string => `${prefix}${process.env.NFTFARM_LAB_TAG ?? ''}`;

/** Alive as the kernel sees it; a zombie has already exited. */
function pidAlive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2)[0] !== 'Z';
  } catch {
    return false;
  }
}

async function labNamespaces(prefix: string): Promise<string[]> {
  return (await listNamespaces()).filter((ns) => ns.startsWith(`${tagged(prefix)}-`));
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

async function waitUntil(what: () => boolean, ms: number): Promise<boolean> {
  for (const end = Date.now() + ms; Date.now() < end; await sleep(50)) if (what()) return true;
  return what();
}

t.test('lab', async (t) => {
  const lab = await createLab({ prefix: PREFIX, backends: 2 });
  t.teardown(() => lab.destroy());
  const [b1, b2] = lab.backends;
  if (!b1 || !b2) throw new Error('expected two backends');

  t.test('topology: one switch, one eth0 per host, fixed addresses, no way out', async (t) => {
    t.same(
      (await labNamespaces(PREFIX)).sort(),
      ['b1', 'b2', 'client', 'lb', 'sw'].map((h) => `${tagged(PREFIX)}-${h}`),
    );
    t.same(lab.hosts.map((h) => [h.name, h.ip, h.mac]), [
      ['client', '10.250.0.10', '02:00:0a:fa:00:0a'],
      ['lb', '10.250.0.2', '02:00:0a:fa:00:02'],
      ['b1', '10.250.0.21', '02:00:0a:fa:00:15'],
      ['b2', '10.250.0.22', '02:00:0a:fa:00:16'],
    ]);
    for (const h of lab.hosts) {
      const links = JSON.parse((await lab.execOk(h.ns, ['ip', '-j', 'addr', 'show'])).stdout) as {
        ifname: string;
        address: string;
        flags: string[];
        addr_info: { family: string; local: string; prefixlen: number }[];
      }[];
      t.same(links.map((l) => l.ifname).sort(), ['eth0', 'lo'], `${h.name}: only lo and eth0`);
      const eth0 = links.find((l) => l.ifname === 'eth0')!;
      t.equal(eth0.address, h.mac, `${h.name}: eth0 MAC`);
      t.same(
        eth0.addr_info.map((a) => `${a.family} ${a.local}/${a.prefixlen}`),
        [`inet ${h.ip}/24`],
        `${h.name}: one IPv4 address, no IPv6`,
      );
      t.ok(eth0.flags.includes('LOWER_UP'), `${h.name}: eth0 carrier up`);
      t.ok(links.find((l) => l.ifname === 'lo')!.flags.includes('UP'), `${h.name}: lo up`);
      const routes = (await lab.execOk(h.ns, ['ip', 'route', 'show'])).stdout;
      t.notMatch(routes, /default/, `${h.name}: no default route`);
    }
    const ports = JSON.parse((await lab.execOk(lab.switchNs, ['ip', '-j', 'link', 'show', 'master', 'br0'])).stdout) as {
      ifname: string;
    }[];
    t.same(ports.map((p) => p.ifname).sort(), ['p-b1', 'p-b2', 'p-client', 'p-lb']);
    const brnf = await lab.exec(lab.switchNs, ['cat', '/proc/sys/net/bridge/bridge-nf-call-iptables']);
    if (brnf.code === 0) t.equal(brnf.stdout.trim(), '0', 'bridge-nf-call-iptables off in the switch');
    const rootLinks = JSON.parse(await new Promise<string>((resolve, reject) => {
      const p = spawn('ip', ['-j', 'link', 'show'], { stdio: ['ignore', 'pipe', 'inherit'] });
      let out = '';
      p.stdout.on('data', (c: Buffer) => (out += c.toString()));
      p.on('error', reject);
      p.on('close', () => resolve(out));
    })) as { ifname: string }[];
    t.notOk(rootLinks.some((l) => l.ifname.startsWith('p-')), 'no switch port in the root namespace');
  });

  t.test('refuses a second live lab with the same prefix', async (t) => {
    await t.rejects(createLab({ prefix: PREFIX }), /live in this process/);
    t.ok(existsSync(stateFile(tagged(PREFIX))), 'the live lab keeps its state file');
  });

  t.test('refuses a namespace that is not the lab\'s', async (t) => {
    t.throws(() => lab.spawn('nflabx-sw', ['true']), /not a namespace of lab/);
  });

  t.test('exec reports failures instead of throwing; execOk throws with stderr', async (t) => {
    const r = await lab.exec(lab.client.ns, ['sh', '-c', 'echo out; echo err >&2; exit 3']);
    t.match(r, { code: 3, stdout: 'out\n', stderr: 'err\n', timedOut: false });
    t.equal((await lab.exec(lab.client.ns, ['cat'], { input: 'abc' })).stdout, 'abc');
    const slow = await lab.exec(lab.client.ns, ['sleep', '5'], { timeoutMs: 200 });
    t.match(slow, { code: null, signal: 'SIGKILL', timedOut: true });
    await t.rejects(lab.execOk(lab.client.ns, ['sh', '-c', 'echo nope >&2; exit 1']), /nope/);
  });

  t.test('HTTP from the client reaches each backend on its own address', async (t) => {
    await lab.startHttpBackends(80);
    for (const b of lab.backends) {
      const r = await lab.httpMany(`http://${b.ip}/`, 10);
      t.match(r, { ok: 10, failed: 0, byBackend: { [b.name]: 10 } }, `${b.name} answers all`);
      t.same(Object.keys(r.byBackend), [b.name]);
      const sample = r.samples[0]!;
      t.equal(sample.local, `${b.ip}:80`);
      t.match(sample.client, new RegExp(`^${CLIENT_IP.replaceAll('.', '\\.')}:[0-9]+$`));
      const ports = new Set(r.samples.map((s) => s.client));
      t.equal(ports.size, r.samples.length, 'every request used a fresh connection');
    }
  });

  t.test('a 3 MB download arrives whole', async (t) => {
    const r = await lab.download(`http://${b1.ip}/bytes/3145728`);
    t.match(r, { ok: true, status: 200, bytes: 3145728, expected: 3145728 });
  });

  t.test('hold keeps connections on one backend and reports no break', async (t) => {
    const hold = lab.startHold(b1.ip, 80, 5);
    t.match(await hold.ready(), { event: 'ready', opened: 5, broken: 0, byBackend: { b1: 5 } });
    await sleep(700);
    const r = await hold.stop();
    t.match(r, { opened: 5, broken: 0, errors: [], byBackend: { b1: 5 } });
    t.ok(r.requests >= 5 * 2, `several requests per connection in 700 ms (got ${r.requests})`);
  });

  t.test('hold counts connections broken by a dying backend', async (t) => {
    const server = await lab.startBackendServer(b2, { httpPort: 8080 });
    const hold = lab.startHold(b2.ip, 8080, 4);
    t.match(await hold.ready(), { opened: 4, broken: 0, byBackend: { b2: 4 } });
    await lab.stopProcess(server.child);
    await sleep(300);
    const r = await hold.stop();
    t.equal(r.broken, 4, 'every connection is broken');
    t.equal(r.errors.length, 4);
    t.match(r.errors[0], /closed by peer|reset|EPIPE|ended/);
  });

  t.test('UDP echo from a backend bound to its own address, seen by a capture', async (t) => {
    await lab.startBackendServer(b1, { udp: [`${b1.ip}:9000`] });
    const cap = await lab.capture(b1.ns, 'eth0', 'udp port 9000');
    const r = await lab.udp(b1.ip, 9000, 5);
    t.match(r, { sent: 5, received: 5, byBackend: { b1: 5 }, from: { [`${b1.ip}:9000`]: 5 }, errors: [] });
    t.equal(r.samples[0]?.local, `${b1.ip}:9000`);
    const { frames, lines, droppedByKernel } = await cap.stop();
    t.equal(droppedByKernel, 0);
    const requests = frames.filter((f) => f.udp?.dstPort === 9000);
    const replies = frames.filter((f) => f.udp?.srcPort === 9000);
    t.equal(requests.length, 5, 'five requests captured');
    t.equal(replies.length, 5, 'five replies captured');
    t.match(requests[0], { srcMac: CLIENT_MAC, dstMac: b1.mac, ipv4: { src: CLIENT_IP, dst: b1.ip } });
    t.match(replies[0], { srcMac: b1.mac, dstMac: CLIENT_MAC, ipv4: { src: b1.ip, dst: CLIENT_IP } });
    t.equal(frames.length, 10, `nothing else matched the filter:\n${lines.join('\n')}`);
  });

  t.test('DSR backends hold the VIP without answering ARP for it', async (t) => {
    await lab.configureDsrBackends(LAB_VIP);
    for (const b of lab.backends) {
      const lo = (await lab.execOk(b.ns, ['ip', '-o', '-4', 'addr', 'show', 'dev', 'lo'])).stdout;
      t.match(lo, `inet ${LAB_VIP}/32`, `${b.name}: VIP on lo`);
      const sysctl = (await lab.execOk(b.ns, ['sysctl', '-n',
        'net.ipv4.conf.all.arp_ignore', 'net.ipv4.conf.all.arp_announce',
        'net.ipv4.conf.eth0.arp_ignore', 'net.ipv4.conf.eth0.arp_announce'])).stdout;
      t.same(sysctl.trim().split('\n'), ['1', '2', '1', '2'], `${b.name}: ARP sysctls`);
    }
    await lab.startUdpBackends(LAB_VIP, 53);

    // No LB yet: ARP for the VIP goes unanswered, so nothing reaches a backend.
    const arp = await lab.capture(lab.client.ns, 'eth0', 'arp');
    const unanswered = await lab.udp(LAB_VIP, 53, 3, { timeoutMs: 1000 });
    t.match(unanswered, { received: 0 });
    const { frames } = await arp.stop();
    t.ok(frames.some((f) => f.arp?.op === 1 && f.arp.targetIp === LAB_VIP), 'client asked who-has VIP');
    t.notOk(frames.some((f) => f.arp?.op === 2 && f.arp.senderIp === LAB_VIP), 'no backend claimed the VIP');

    // Point the client's neighbour entry for the VIP at b2, as the LB's MAC rewrite would:
    // b2 answers from the VIP (its UDP socket is bound to it), straight to the client.
    await lab.execOk(lab.client.ns, ['ip', 'neigh', 'replace', LAB_VIP, 'lladdr', b2.mac, 'dev', 'eth0', 'nud', 'permanent']);
    t.teardown(() => lab.exec(lab.client.ns, ['ip', 'neigh', 'del', LAB_VIP, 'dev', 'eth0']));
    const r = await lab.udp(LAB_VIP, 53, 5);
    t.match(r, { received: 5, byBackend: { b2: 5 }, from: { [`${LAB_VIP}:53`]: 5 } });
    t.equal(r.samples[0]?.local, `${LAB_VIP}:53`);
  });

  t.test('destroy kills every process the lab started and deletes its namespaces', async (t) => {
    const pids = lab.pids();
    t.ok(pids.length > 10, `the lab started processes (${pids.length})`);
    t.ok(pids.some(pidAlive), 'some (the servers) are running before destroy');
    await lab.destroy();
    await lab.destroy(); // idempotent
    t.same(await labNamespaces(PREFIX), []);
    t.same(pids.filter(pidAlive), [], 'no started PID is alive');
    t.notOk(existsSync(stateFile(tagged(PREFIX))), 'state file removed');
    t.throws(() => lab.spawn(lab.client.ns, ['true']), /destroyed/);
  });
});

// ------------------------------------------------------------------ crashes

/**
 * Runs a child node process that builds a lab from the compiled code, runs `before`, prints
 * the lab's PIDs and namespaces as one JSON line, then runs `after` (the misbehaviour).
 */
function crashChild(prefix: string, before: string, after: string): {
  info: Promise<{ pids: number[]; namespaces: string[] }>;
  exit: Promise<{ code: number | null; signal: NodeJS.Signals | null; stderr: string }>;
  pid: number;
} {
  const script = `
    import { createLab } from ${JSON.stringify(pathToFileURL(join(LAB_DIST, 'lab.js')).href)};
    const lab = await createLab({ prefix: ${JSON.stringify(prefix)} });
    await lab.startHttpBackends(80);
    ${before}
    console.log(JSON.stringify({ pids: lab.pids(), namespaces: lab.namespaces }));
    ${after}
  `;
  const env = { ...process.env };
  delete env.NODE_OPTIONS; // keep tap's loaders out of the child
  const child = spawn(process.execPath, ['--input-type=module', '-e', script], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
  const info = new Promise<{ pids: number[]; namespaces: string[] }>((resolve, reject) => {
    child.stdout.on('data', (c: Buffer) => {
      stdout += c.toString();
      if (stdout.includes('\n')) resolve(JSON.parse(stdout.split('\n')[0]!) as { pids: number[]; namespaces: string[] });
    });
    child.on('close', () => reject(new Error(`child printed no lab info: ${stderr}`)));
  });
  info.catch(() => undefined);
  const exit = new Promise<{ code: number | null; signal: NodeJS.Signals | null; stderr: string }>((resolve) =>
    child.on('close', (code, signal) => resolve({ code, signal, stderr })),
  );
  return { info, exit, pid: child.pid! };
}

t.test('a lab whose test throws is still cleaned up', async (t) => {
  const prefix = 'nflabx';
  const c = crashChild(prefix, '', `throw new Error('test failed on purpose');`);
  const { pids, namespaces } = await c.info;
  t.equal(namespaces.length, 5);
  const { code, stderr } = await c.exit;
  t.equal(code, 1);
  t.match(stderr, /test failed on purpose/);
  t.same(await labNamespaces(prefix), [], 'namespaces deleted by the exit hook');
  t.same(pids.filter(pidAlive), [], 'its processes are gone');
  t.notOk(existsSync(stateFile(tagged(prefix))));
});

t.test('a lab whose process gets SIGTERM is cleaned up, and the process still dies of it', async (t) => {
  const prefix = 'nflabt';
  const c = crashChild(prefix, '', 'setInterval(() => {}, 1000);');
  const { pids } = await c.info;
  t.equal((await labNamespaces(prefix)).length, 5);
  process.kill(c.pid, 'SIGTERM');
  const { signal } = await c.exit;
  t.equal(signal, 'SIGTERM');
  t.same(await labNamespaces(prefix), []);
  t.same(pids.filter(pidAlive), []);
  t.notOk(existsSync(stateFile(tagged(prefix))));
});

t.test('after a SIGKILL, the next run cleans up: servers exit, destroyStaleLabs does the rest', async (t) => {
  const other: Lab = await createLab({ prefix: 'nflabo', backends: 1 });
  t.teardown(() => other.destroy());
  const prefix = 'nflabk';
  // `sleep` ignores stdin: after the SIGKILL only the state file can find it.
  const c = crashChild(prefix, `lab.spawn(lab.lb.ns, ['sleep', '600'], { stdio: 'ignore' });`, 'setInterval(() => {}, 1000);');
  const { pids } = await c.info;
  const sleepPid = pids[pids.length - 1]!;
  process.kill(c.pid, 'SIGKILL');
  await c.exit;
  t.equal((await labNamespaces(prefix)).length, 5, 'nothing could clean up');
  t.ok(existsSync(stateFile(tagged(prefix))), 'the state file is left for the next run');
  // The backend servers treat EOF on stdin (their parent is gone) as the end.
  t.ok(await waitUntil(() => pids.filter(pidAlive).length === 1, 3000), 'orphaned servers exited');
  t.ok(pidAlive(sleepPid), 'the sleep is still running');

  const removed = await destroyStaleLabs(tagged(prefix));
  t.same(removed.pids, [sleepPid], 'killed exactly the recorded process still running');
  t.ok(await waitUntil(() => !pidAlive(sleepPid), 2000), 'the sleep is gone');
  t.same(removed.namespaces.sort(), ['b1', 'b2', 'client', 'lb', 'sw'].map((h) => `${tagged(prefix)}-${h}`));
  t.same(await labNamespaces(prefix), []);
  t.notOk(existsSync(stateFile(tagged(prefix))));

  t.equal((await labNamespaces('nflabo')).length, 4, 'a lab with another prefix is untouched');
  await other.startHttpBackends(80);
  t.match(await other.httpMany(`http://${other.backends[0]!.ip}/`, 3), { ok: 3 }, 'and still works');
});

t.test('a tap test file that times out still cleans up its lab (tap kills it with SIGALRM)', async (t) => {
  const prefix = 'nflabh';
  const labUrl = pathToFileURL(join(LAB_DIST, 'lab.js')).href;
  // A project of its own (package.json, run from there): the inner tap keeps its .tap/ there,
  // instead of clearing the outer run's .tap/processinfo while that run writes to it (CI
  // failed once with ENOTEMPTY on that rmdir). Imports still resolve from our node_modules.
  const dir = t.testdir({
    'package.json': JSON.stringify({ name: 'hang', type: 'module', private: true }),
    'hang.test.mjs': `
      import t from 'tap';
      import { createLab } from ${JSON.stringify(labUrl)};
      t.test('hangs', async () => {
        const lab = await createLab({ prefix: ${JSON.stringify(prefix)} });
        await lab.startHttpBackends(80);
        console.error('LABPIDS ' + JSON.stringify(lab.pids()));
        await new Promise(() => {});
      });
    `,
  });
  // A clean environment: no loaders, and nothing telling the inner tap it runs under ours.
  const env = Object.fromEntries(
    Object.entries(process.env).filter(([k]) => k !== 'NODE_OPTIONS' && !k.startsWith('TAP')),
  );
  const tapBin = join(PACKAGE_ROOT, 'node_modules', 'tap', 'dist', 'esm', 'run.mjs');
  const inner = spawn(process.execPath, [tapBin, '--timeout=3', '--disable-coverage', '-R', 'tap', join(dir, 'hang.test.mjs')], {
    cwd: dir,
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  inner.stdout.on('data', (c: Buffer) => (output += c.toString()));
  inner.stderr.on('data', (c: Buffer) => (output += c.toString()));
  const code = await new Promise<number | null>((resolve) => inner.on('close', resolve));
  t.not(code, 0, 'the inner run fails');
  t.match(output, /not ok \d+ - timeout!/, 'because tap timed the file out');
  t.ok(existsSync(join(dir, '.tap')), "the inner tap kept its state in its own project, not in ours");
  const pidsLine = /LABPIDS (\[[0-9,]*\])/.exec(output);
  t.ok(pidsLine, 'the lab was up before the timeout');
  const pids = JSON.parse(pidsLine?.[1] ?? '[]') as number[];
  t.same(await labNamespaces(prefix), [], 'namespaces deleted');
  t.same(pids.filter(pidAlive), [], 'processes gone');
  t.notOk(existsSync(stateFile(tagged(prefix))));
});
