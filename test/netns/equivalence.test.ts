/**
 * Incremental passes leave exactly the kernel state a fresh full load gives. A reconciler in
 * one network namespace follows random sequences of store changes (farms created, deleted,
 * stopped, switched between modes; backends added, removed, re-weighted, drained, cut;
 * persistence, algorithms, ports), one incremental pass each, against the real kernel. At
 * checkpoints, a second reconciler cold-starts on a copy of the same store in a twin
 * namespace, and the two kernels' listings must be equal.
 */
import { spawn, spawnSync, type ChildProcessWithoutNullStreams } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import readline from 'node:readline';
import { fileURLToPath } from 'node:url';
import t from 'tap';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const DIST = path.resolve(HERE, '../../dist');
const DRIVER = path.join(HERE, 'fixtures/equivalence-driver.mjs');

const run = (argv: string[], input?: string) => {
  const r = spawnSync(argv[0]!, argv.slice(1), { encoding: 'utf8', input });
  if (r.status !== 0) throw new Error(`${argv.join(' ')}: ${r.stderr}`);
  return r.stdout;
};

/** A namespace with eth0 (10.250.0.2/24, fixed MAC) and permanent MACs for the backends 10.250.0.21-40. */
function hostNamespace(t: Tap.Test, name: string): string {
  const peer = `${name}-p`;
  for (const ns of [name, peer]) spawnSync('ip', ['netns', 'del', ns]);
  t.teardown(() => {
    for (const ns of [name, peer]) spawnSync('ip', ['netns', 'del', ns]);
  });
  run(['ip', 'netns', 'add', name]);
  run(['ip', 'netns', 'add', peer]);
  run(['ip', 'link', 'add', 'eth0', 'netns', name, 'address', '02:00:0a:fa:00:02', 'type', 'veth', 'peer', 'name', 'eth0', 'netns', peer]);
  for (const ns of [name, peer]) for (const dev of ['lo', 'eth0']) run(['ip', '-n', ns, 'link', 'set', dev, 'up']);
  run(['ip', '-n', name, 'addr', 'add', '10.250.0.2/24', 'dev', 'eth0']);
  for (let i = 21; i <= 40; i++) {
    run(['ip', '-n', name, 'neigh', 'replace', `10.250.0.${i}`, 'lladdr', `02:00:0a:fa:00:${i.toString(16)}`, 'nud', 'permanent', 'dev', 'eth0']);
  }
  return name;
}

/** nftfarm's tables as nft lists them, in an order-free form: blocks and elements sorted, counter values dropped. */
function listing(ns: string): string {
  const out: string[] = [];
  for (const [family, name] of [['netdev', 'nftfarm'], ['inet', 'nftfarm']] as const) {
    const r = spawnSync('ip', ['netns', 'exec', ns, 'nft', 'list', 'table', family, name], { encoding: 'utf8' });
    if (r.status !== 0) {
      out.push(`(no table ${family} ${name})`);
      continue;
    }
    const body = r.stdout
      .replace(/counter packets \d+ bytes \d+/g, 'counter')
      .replace(/^table [^\n]*\n/, '')
      .replace(/\n}\n?$/, '');
    const blocks = body.split('\n\n').map((block) =>
      block
        .trim()
        // Elements list in hash order, which depends on the history of the set.
        .replace(/elements = \{([^}]*)\}/, (_m, items: string) => `elements = { ${items.split(',').map((i) => i.trim()).sort().join(', ')} }`),
    );
    out.push(`table ${family} ${name}\n${blocks.sort().join('\n\n')}`);
  }
  return out.join('\n\n');
}

function cleanEnv(): NodeJS.ProcessEnv {
  const env = { ...process.env };
  delete env.NODE_OPTIONS;
  return env;
}

for (const seed of [20261204, 7]) {
  t.test(`seed ${seed}: 120 random changes, compared with a fresh full load every 20`, async (t) => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'nfeq-'));
    t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
    const live = hostNamespace(t, `nfeqa${seed % 97}`);
    const fresh = hostNamespace(t, `nfeqb${seed % 97}`);
    const db = path.join(dir, 'live.db');
    const child: ChildProcessWithoutNullStreams = spawn('ip', ['netns', 'exec', live, process.execPath, DRIVER, DIST, 'live', db, String(seed), '120', '20'], { env: cleanEnv() });
    let stderr = '';
    child.stderr.on('data', (d) => (stderr += d));
    t.teardown(() => {
      if (child.exitCode === null) child.kill('SIGKILL');
    });
    const exited = new Promise<number | null>((resolve) => child.on('exit', resolve));
    let checkpoints = 0;
    for await (const line of readline.createInterface({ input: child.stdout })) {
      const report = JSON.parse(line) as { checkpoint?: number; error?: string; farms?: number; changes?: string[] };
      if (report.error) {
        t.fail(`a pass failed at step: ${line}`);
        break;
      }
      checkpoints++;
      const copy = path.join(dir, `fresh-${report.checkpoint}.db`);
      fs.copyFileSync(`${db}.ckpt`, copy);
      spawnSync('ip', ['netns', 'exec', fresh, 'nft', 'flush', 'ruleset']);
      const full = spawnSync('ip', ['netns', 'exec', fresh, process.execPath, DRIVER, DIST, 'full', copy], { encoding: 'utf8', env: cleanEnv(), timeout: 60_000 });
      t.equal(full.status, 0, `the fresh full load ran ${full.stderr}`);
      const a = listing(live);
      const b = listing(fresh);
      if (!t.equal(a, b, `step ${report.checkpoint} (${report.farms} farms): the incremental kernel equals a fresh load`)) t.comment(JSON.stringify(report.changes));
      child.stdin.write('go on\n');
    }
    t.equal(await exited, 0, `the live driver finished ${stderr.slice(-2000)}`);
    t.equal(checkpoints, 6, 'six checkpoints compared');
  });
}
