/**
 * The netlink element writer against the real kernel, in a throwaway namespace: every map
 * type nftfarm uses is written by the writer into one map and by `nft` into its twin (same
 * declaration, name + "_nft"), and the two listings must be identical; where strace is
 * installed, the element bytes are also compared with what nft itself sends. Then: deletes,
 * value changes, flushes, failing batches (nothing applied, the failing operation named),
 * the size limit, many batches in a row, concurrent commits.
 *
 * The writer runs in a driver process inside the namespace (a netlink socket belongs to the
 * namespace it was opened in), compiled from src/ for this run.
 */
import t, { type Test } from 'tap';
import { spawn, spawnSync, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { nftNamespace, type NftNamespace } from '../helpers/netns.js';

const HERE = dirname(fileURLToPath(import.meta.url));
const ROOT = resolve(HERE, '../..');
const SRC_DIR = join(ROOT, 'src/dataplane/netlink');
const BUILD_DIR = join(ROOT, 'node_modules/.cache', `nftfarm-nfel-${process.pid}`);
const TAG = process.env.NFTFARM_LAB_TAG ?? '';

// ----- the maps -------------------------------------------------------------------------

type Scalar = number | string;
type Value = Scalar | Scalar[];
type Verdict = { verdict: string; chain?: string };
interface Entry { key: Value; keyEnd?: Value; data?: Value | Verdict; timeoutMs?: number }
interface MapDecl { family: 'netdev' | 'ip'; table: string; name: string; body: string; key: string | string[]; data?: string | string[]; set?: boolean }

const TABLE = `nfel${TAG}`;
const V4_PORT_PROTO = ['ipv4_addr', 'inet_proto', 'inet_service'];
const FLOW = ['ipv4_addr', 'ipv4_addr', 'inet_service', 'inet_service'];
const decl = (family: MapDecl['family'], name: string, body: string, key: MapDecl['key'], data?: MapDecl['data']): MapDecl =>
  ({ family, table: TABLE, name, body, key, ...(data === undefined ? { set: true } : { data }) });

const M = {
  marks: decl('netdev', 'marks', 'type mark : mark;', 'mark', 'mark'),
  macs: decl('netdev', 'macs', 'type mark : ether_addr; counter;', 'mark', 'ether_addr'),
  newFlows: decl('netdev', 'new_flows', 'type mark; counter;', 'mark'),
  addrs: decl('netdev', 'addrs', 'type mark : ipv4_addr;', 'mark', 'ipv4_addr'),
  ports: decl('netdev', 'ports', 'type mark : inet_service;', 'mark', 'inet_service'),
  endpoints: decl('netdev', 'endpoints', 'type mark : ipv4_addr . inet_service;', 'mark', ['ipv4_addr', 'inet_service']),
  vips: decl('netdev', 'vips', 'type ipv4_addr . inet_proto . inet_service : verdict;', V4_PORT_PROTO, 'verdict'),
  vipRanges: decl('netdev', 'vip_ranges', 'type ipv4_addr . inet_proto . inet_service : verdict; flags interval;', V4_PORT_PROTO, 'verdict'),
  flows: decl('netdev', 'flows', 'type ipv4_addr . ipv4_addr . inet_service . inet_service : mark; size 65536; flags dynamic,timeout; timeout 900s;', FLOW, 'mark'),
  macSessions: decl('netdev', 'mac_sessions', 'type ether_addr : mark; size 1024; flags dynamic,timeout; timeout 300s;', 'ether_addr', 'mark'),
  buckets: decl('netdev', 'buckets', 'typeof numgen inc mod 16381 : meta mark;', 'mark', 'mark'),
  protos: decl('netdev', 'protos', 'type inet_proto : mark;', 'inet_proto', 'mark'),
  services: decl('netdev', 'services', 'type inet_service;', 'inet_service'),
  ipVips: decl('ip', 'vips', 'type ipv4_addr . inet_proto . inet_service : verdict;', V4_PORT_PROTO, 'verdict'),
  v6: decl('ip', 'v6', 'type ipv6_addr : mark; flags timeout;', 'ipv6_addr', 'mark'),
  sessions: decl('ip', 'sessions', 'type ipv4_addr . inet_service : mark; size 1024; flags dynamic,timeout; timeout 60s;', ['ipv4_addr', 'inet_service'], 'mark'),
  big: decl('netdev', 'big', 'type mark : mark;', 'mark', 'mark'),
};
const ALL = Object.values(M);
const twin = (m: MapDecl): MapDecl => ({ ...m, name: `${m.name}_nft` });
const jump = (chain: string): Verdict => ({ verdict: 'jump', chain });

/** The first elements of each map: every type, verdict kind, timeout and a range. */
const FIRST: [MapDecl, Entry[]][] = [
  [M.marks, [{ key: 1, data: 2 }, { key: 0x40000400, data: 7 }, { key: 0xffffffff, data: 0 }]],
  [M.macs, [{ key: 1, data: '02:00:0a:fa:00:15' }, { key: 2, data: '02:00:0a:fa:00:16' }]],
  [M.newFlows, [{ key: 1 }, { key: 2 }, { key: 0x80000000 }]],
  [M.addrs, [{ key: 3, data: '10.250.0.23' }, { key: 5, data: '255.255.255.255' }]],
  [M.ports, [{ key: 3, data: 8080 }, { key: 4, data: 65535 }]],
  [M.endpoints, [{ key: 1, data: ['10.250.0.21', 8080] }, { key: 12, data: ['10.250.0.21', 3869] }]],
  [M.vips, [
    { key: ['10.250.0.100', 'tcp', 80], data: jump('farm_1') },
    { key: ['10.250.0.101', 'udp', 53], data: { verdict: 'goto', chain: 'farm_2' } },
    { key: ['10.250.0.102', 'sctp', 3868], data: { verdict: 'accept' } },
    { key: ['10.250.0.103', 'tcp', 1], data: { verdict: 'drop' } },
  ]],
  [M.vipRanges, [
    { key: ['10.250.0.101', 'tcp', 8000], keyEnd: ['10.250.0.101', 'tcp', 8100], data: jump('farm_2') },
    { key: ['10.250.0.21', 'udp', 5353], keyEnd: ['10.250.0.21', 'udp', 5353], data: jump('farm_1') },
  ]],
  [M.flows, [
    { key: ['10.250.0.10', '10.250.0.100', 40000, 80], data: 1 },
    { key: ['10.250.0.10', '10.250.0.100', 40001, 80], data: 2, timeoutMs: 30_000 },
  ]],
  [M.macSessions, [{ key: '02:00:00:00:00:01', data: 4 }, { key: '02:00:00:00:00:02', data: 5, timeoutMs: 60_000 }]],
  [M.buckets, [{ key: 0, data: 0x40000000 }, { key: 16380, data: 0x40000001 }]],
  [M.protos, [{ key: 'udp', data: 4 }, { key: 6, data: 5 }]],
  [M.services, [{ key: 443 }, { key: 80 }]],
  [M.ipVips, [{ key: ['10.250.0.104', 'tcp', 443], data: jump('farm_3') }]],
  [M.v6, [{ key: '2001:db8::1', data: 4, timeoutMs: 60_000 }, { key: '::ffff:10.0.0.1', data: 5 }]],
  [M.sessions, [{ key: ['10.250.0.10', 5000], data: 1 }]],
];

function ruleset(tableName: string, withTwins: boolean): string {
  const out: string[] = [];
  for (const family of ['netdev', 'ip'] as const) {
    const chains = family === 'netdev' ? ['farm_1', 'farm_2'] : ['farm_3'];
    const maps = ALL.filter((m) => m.family === family).flatMap((m) => (withTwins ? [m, twin(m)] : [m]));
    out.push(`table ${family} ${tableName} {`, ...chains.map((c) => `\tchain ${c} { }`),
      ...maps.map((m) => `\t${m.set ? 'set' : 'map'} ${m.name} { ${m.body} }`), '}');
  }
  return `${out.join('\n')}\n`;
}

// ----- operations, for the writer (driver JSON) and as nft commands -----------------------

interface Op { kind: 'add' | 'delete' | 'flush'; map: MapDecl; entries?: Entry[] }

const driverOps = (ops: Op[]) => ops.map(({ kind, map, entries }) => ({
  kind, spec: { family: map.family, table: map.table, set: map.name, key: map.key, ...(map.data ? { data: map.data } : {}) },
  entries: kind === 'flush' ? undefined : kind === 'delete' ? (entries ?? []).map(({ key, keyEnd }) => ({ key, keyEnd })) : entries,
}));

const fmtData = (d: Value | Verdict): string =>
  Array.isArray(d) ? d.join(' . ') : typeof d === 'object' ? `${d.verdict}${d.chain ? ` ${d.chain}` : ''}` : String(d);
const fmtKey = (key: Value, end?: Value): string => {
  const k = Array.isArray(key) ? key : [key];
  const e = end === undefined ? k : Array.isArray(end) ? end : [end];
  return k.map((v, i) => (e[i] === v ? String(v) : `${v}-${e[i]}`)).join(' . ');
};
const fmtEntry = (e: Entry, withData: boolean): string =>
  `${fmtKey(e.key, e.keyEnd)}${withData && e.timeoutMs ? ` timeout ${e.timeoutMs / 1000}s` : ''}${withData && e.data !== undefined ? ` : ${fmtData(e.data)}` : ''}`;

/** The same operations as an nft script, on the given maps (the twins, usually). */
function nftScript(ops: Op[], target: (m: MapDecl) => MapDecl = twin): string {
  return `${ops.map(({ kind, map, entries }) => {
    const m = target(map);
    const where = `${m.family} ${m.table} ${m.name}`;
    if (kind === 'flush') return `flush ${m.set ? 'set' : 'map'} ${where}`;
    return `${kind} element ${where} { ${(entries ?? []).map((e) => fmtEntry(e, kind === 'add')).join(', ')} }`;
  }).join('\n')}\n`;
}

/** The elements of one map as `nft -j` lists them, without the seconds left (which tick). */
function listing(ns: NftNamespace, m: MapDecl): string[] {
  const r = ns.nft(['-j', 'list', m.set ? 'set' : 'map', m.family, m.table, m.name]);
  if (r.status !== 0) throw new Error(`nft list ${m.name}: ${r.stderr}`);
  const objects = (JSON.parse(r.stdout) as { nftables: Record<string, { elem?: unknown[] }>[] }).nftables;
  const obj = objects.find((o) => 'map' in o || 'set' in o) ?? {};
  const elems = (obj.map ?? obj.set)?.elem ?? [];
  return elems.map((e) => JSON.stringify(e, (k, v: unknown) => (k === 'expires' ? undefined : v))).sort();
}

// ----- the driver -----------------------------------------------------------------------

interface DriverError { name?: string; message: string; code?: string; kind?: string; opIndex?: number | null; failures?: { opIndex: number | null; code: string }[]; applied?: false | 'unknown' }
interface CommitResult { generation: number | null; messages: number; bytes: number }

class Driver {
  private readonly child: ChildProcessWithoutNullStreams;
  private nextId = 1;
  private readonly pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: DriverError) => void }>();

  constructor(ns: string) {
    this.child = spawn('ip', ['netns', 'exec', ns, process.execPath, join(HERE, 'fixtures/nft-elements-driver.mjs'), join(BUILD_DIR, 'dataplane', 'netlink')], {
      env: { ...process.env, NODE_OPTIONS: '' }, // tap's preloads are not for the driver
    });
    this.child.stderr.on('data', (d: Buffer) => process.stderr.write(`[driver] ${d.toString()}`));
    createInterface({ input: this.child.stdout }).on('line', (line) => {
      const msg = JSON.parse(line) as { id: number; ok: boolean; value?: unknown; error?: DriverError };
      const p = this.pending.get(msg.id);
      this.pending.delete(msg.id);
      if (msg.ok) p?.resolve(msg.value);
      else p?.reject(msg.error ?? { message: 'unknown error' });
    });
  }

  call<T = unknown>(method: string, ...args: unknown[]): Promise<T> {
    const id = this.nextId++;
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject({ message: `driver call ${method} timed out` });
      }, 60_000);
      this.pending.set(id, {
        resolve: (v) => { clearTimeout(timer); resolve(v as T); },
        reject: (e) => { clearTimeout(timer); reject(e); },
      });
      this.child.stdin.write(`${JSON.stringify({ id, method, args })}\n`);
    });
  }

  commit(ops: Op[], options?: { ifGeneration?: number }): Promise<CommitResult> {
    return this.call<CommitResult>('commit', driverOps(ops), options);
  }

  /** The commit's error (the test fails if it succeeds). */
  async commitError(ops: Op[], options?: { ifGeneration?: number }): Promise<DriverError> {
    try {
      await this.commit(ops, options);
    } catch (err) {
      return err as DriverError;
    }
    throw new Error('the commit was expected to fail');
  }

  stop(): void {
    this.child.stdin.end();
    setTimeout(() => this.child.kill('SIGKILL'), 2000).unref();
  }
}

/** Compiles only the netlink modules, so the test never runs a stale dist/. */
function compileModules(): void {
  rmSync(BUILD_DIR, { recursive: true, force: true });
  mkdirSync(BUILD_DIR, { recursive: true });
  writeFileSync(join(BUILD_DIR, 'package.json'), '{"type":"module"}\n');
  const files = [...readdirSync(SRC_DIR).filter((f) => f.endsWith('.ts')).map((f) => join(SRC_DIR, f)), join(ROOT, 'src/dataplane/nft/netlink-rules.ts')];
  const r = spawnSync(process.execPath, [join(ROOT, 'node_modules/typescript/bin/tsc'),
    '--module', 'nodenext', '--moduleResolution', 'nodenext', '--target', 'es2022',
    '--strict', '--skipLibCheck', '--types', 'node', '--rootDir', join(ROOT, 'src'), '--outDir', BUILD_DIR, ...files], { encoding: 'utf8' });
  // rootDir is src/: the element encoder imports the address helpers of src/model.
  if (r.status !== 0) throw new Error(`tsc failed: ${r.stdout}${r.stderr}`);
}

// ----- nft's own bytes (strace) -----------------------------------------------------------

interface Message { type: number; flags: number; family: number; attrs: Map<number, Buffer> }

function parseMessages(datagram: Buffer): Message[] {
  const out: Message[] = [];
  for (let at = 0; at + 20 <= datagram.length;) {
    const len = datagram.readUInt32LE(at);
    if (len < 20) break;
    const attrs = new Map<number, Buffer>();
    for (let a = at + 20; a + 4 <= at + len;) {
      const alen = datagram.readUInt16LE(a);
      if (alen < 4) break;
      attrs.set(datagram.readUInt16LE(a + 2) & 0x3fff, datagram.subarray(a + 4, a + alen));
      a += (alen + 3) & ~3;
    }
    out.push({ type: datagram.readUInt16LE(at + 4), flags: datagram.readUInt16LE(at + 6), family: datagram[at + 16] as number, attrs });
    at += (len + 3) & ~3;
  }
  return out;
}

/** Each element of a NFTA_SET_ELEM_LIST_ELEMENTS nest, as hex, sorted. */
function elementsOf(nest: Buffer | undefined): string[] {
  const out: string[] = [];
  for (let a = 0; nest && a + 4 <= nest.length;) {
    const alen = nest.readUInt16LE(a);
    if (alen < 4) break;
    out.push(nest.subarray(a, a + ((alen + 3) & ~3)).toString('hex'));
    a += (alen + 3) & ~3;
  }
  return out.sort();
}

/** The element messages nft sends for this script (strace -e write dumps each sendmsg). */
function nftMessages(ns: NftNamespace, script: string): Message[] {
  const dir = join(BUILD_DIR, 'strace');
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'in.nft'), script);
  const r = spawnSync('ip', ['netns', 'exec', ns.ns, 'strace', '-qq', '-e', 'trace=sendmsg', '-e', 'write=all', '-e', 'verbose=none',
    '-o', join(dir, 'out.txt'), 'nft', '-f', join(dir, 'in.nft')], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`nft under strace: ${r.stderr}`);
  const messages: Message[] = [];
  for (const call of readFileSync(join(dir, 'out.txt'), 'utf8').split(/^sendmsg\(/m).slice(1)) {
    const hex = call.split('\n').filter((l) => l.startsWith(' | ')).map((l) => l.slice(10, 59).match(/[0-9a-f]{2}/g)?.join('') ?? '').join('');
    messages.push(...parseMessages(Buffer.from(hex, 'hex')));
  }
  return messages.filter((m) => m.type === ((10 << 8) | 12) || m.type === ((10 << 8) | 14));
}

// ----- the tests ----------------------------------------------------------------------------

const canRun = process.getuid?.() === 0 && spawnSync('nft', ['--version']).status === 0;
t.ok(canRun, 'root and nft are available (these tests build a network namespace)');

t.test('the nft element writer against the kernel', { skip: !canRun }, async (t) => {
  compileModules();
  const ns = nftNamespace(t, `nfel${TAG}`);
  const loaded = ns.nft(['-f', '-'], ruleset(TABLE, true) + ruleset(`${TABLE}_bytes`, false));
  t.equal(loaded.status, 0, `the test ruleset loads ${loaded.stderr}`);
  const d = new Driver(ns.ns);
  t.teardown(() => {
    d.stop();
    rmSync(BUILD_DIR, { recursive: true, force: true });
  });

  /** Writer on the maps, nft on the twins; returns nft's result. */
  const both = async (ops: Op[]) => {
    const written = await d.commit(ops);
    const r = ns.nft(['-f', '-'], nftScript(ops));
    if (r.status !== 0) throw new Error(`nft refused what the writer applied: ${r.stderr}\n${nftScript(ops)}`);
    return written;
  };
  const sameAsTwins = (t: Test, maps: MapDecl[], label: string) => {
    for (const m of maps) t.same(listing(ns, m), listing(ns, twin(m)), `${label}: ${m.family} ${m.name} holds what nft made of the same elements`);
  };
  const snapshot = () => new Map(ALL.filter((m) => m !== M.big).map((m) => [m.name + m.family, listing(ns, m)]));

  t.test('every type, as nft writes it', async (t) => {
    const result = await both(FIRST.map(([map, entries]) => ({ kind: 'add', map, entries })));
    t.equal(result.messages, FIRST.length, 'one message per set');
    t.type(result.generation, 'number', 'a commit that changed something returns the new generation');
    t.equal(await d.call('generation'), (result.generation as number) + 1, 'GETGEN agrees (nft has committed once since)');
    sameAsTwins(t, FIRST.map(([m]) => m), 'first elements');
    t.match(listing(ns, M.vipRanges).join(), /8000.*8100/, 'the range is a range');
    t.match(listing(ns, M.flows).join(), /"timeout":30/, 'the element timeout is kept');
  });

  const strace = spawnSync('strace', ['-V']).status === 0;
  t.test('the element bytes are those nft sends', { skip: strace ? false : 'strace is not installed (apt-get install strace): the listings still compare the results' }, async (t) => {
    const bytesTable = (m: MapDecl): MapDecl => ({ ...m, table: `${TABLE}_bytes` });
    const cases: Op[][] = [
      ...FIRST.map(([map, entries]): Op[] => [{ kind: 'add', map, entries }]),
      [{ kind: 'delete', map: M.marks, entries: [{ key: 1 }, { key: 0x40000400 }] }],
      [{ kind: 'delete', map: M.vipRanges, entries: [{ key: ['10.250.0.101', 'tcp', 8000], keyEnd: ['10.250.0.101', 'tcp', 8100] }] }],
      [{ kind: 'flush', map: M.macs }],
    ];
    for (const ops of cases) {
      const label = nftScript(ops, bytesTable).trim();
      const theirs = nftMessages(ns, nftScript(ops, bytesTable));
      const ours = parseMessages(Buffer.from(await d.call<string>('encode', driverOps(ops.map((o) => ({ ...o, map: bytesTable(o.map) })))), 'hex'))
        .filter((m) => m.type === ((10 << 8) | 12) || m.type === ((10 << 8) | 14));
      t.equal(ours.length, theirs.length, `${label}: as many messages`);
      ours.forEach((mine, i) => {
        const nft = theirs[i] as Message;
        t.same({ type: mine.type, flags: mine.flags & ~0x4, family: mine.family }, { type: nft.type, flags: nft.flags, family: nft.family },
          `${label}: type, family, flags (ours add NLM_F_ACK)`);
        for (const a of [1, 2]) t.same(mine.attrs.get(a), nft.attrs.get(a), `${label}: table and set names`);
        t.same(elementsOf(mine.attrs.get(3)), elementsOf(nft.attrs.get(3)), `${label}: every element, byte for byte`);
        t.same([...mine.attrs.keys()].filter((k) => k !== 4).sort(), [...nft.attrs.keys()].filter((k) => k !== 4).sort(),
          `${label}: the same attributes (but nft's NFTA_SET_ELEM_LIST_SET_ID)`);
      });
    }
  });

  t.test('delete, change values (delete + add in one batch), flush', async (t) => {
    await both([
      { kind: 'delete', map: M.marks, entries: [{ key: 1 }] },
      { kind: 'delete', map: M.vips, entries: [{ key: ['10.250.0.103', 'tcp', 1] }] },
      { kind: 'delete', map: M.vipRanges, entries: [{ key: ['10.250.0.21', 'udp', 5353], keyEnd: ['10.250.0.21', 'udp', 5353] }] },
      { kind: 'delete', map: M.flows, entries: [{ key: ['10.250.0.10', '10.250.0.100', 40001, 80] }] },
      { kind: 'delete', map: M.v6, entries: [{ key: '::ffff:10.0.0.1' }] },
    ]);
    sameAsTwins(t, [M.marks, M.vips, M.vipRanges, M.flows, M.v6], 'after deletes');

    const before = await d.call<number>('generation');
    const changed = await d.commit([
      { kind: 'delete', map: M.marks, entries: [{ key: 0x40000400 }] },
      { kind: 'add', map: M.marks, entries: [{ key: 0x40000400, data: 8 }] },
      { kind: 'delete', map: M.macs, entries: [{ key: 1 }] },
      { kind: 'add', map: M.macs, entries: [{ key: 1, data: '02:00:0a:fa:00:99' }] },
      { kind: 'delete', map: M.vips, entries: [{ key: ['10.250.0.100', 'tcp', 80] }] },
      { kind: 'add', map: M.vips, entries: [{ key: ['10.250.0.100', 'tcp', 80], data: { verdict: 'goto', chain: 'farm_2' } }] },
    ]);
    t.equal(changed.generation, before + 1, 'six operations, one commit');
    t.match(listing(ns, M.marks).join(), /1073742848,8\]/, 'the new value is in place');
    ns.nft(['-f', '-'], nftScript([
      { kind: 'delete', map: M.marks, entries: [{ key: 0x40000400 }] }, { kind: 'add', map: M.marks, entries: [{ key: 0x40000400, data: 8 }] },
      { kind: 'delete', map: M.macs, entries: [{ key: 1 }] }, { kind: 'add', map: M.macs, entries: [{ key: 1, data: '02:00:0a:fa:00:99' }] },
      { kind: 'delete', map: M.vips, entries: [{ key: ['10.250.0.100', 'tcp', 80] }] },
      { kind: 'add', map: M.vips, entries: [{ key: ['10.250.0.100', 'tcp', 80], data: { verdict: 'goto', chain: 'farm_2' } }] },
    ]));
    sameAsTwins(t, [M.marks, M.macs, M.vips], 'after value changes');

    const same = await d.commit([{ kind: 'add', map: M.marks, entries: [{ key: 0x40000400, data: 8 }] }]);
    t.same(same, { generation: null, messages: 1, bytes: same.bytes }, 'adding an identical element succeeds, changes nothing, bumps no generation');

    await both([{ kind: 'flush', map: M.newFlows }, { kind: 'flush', map: M.flows }, { kind: 'flush', map: M.macs }]);
    sameAsTwins(t, [M.newFlows, M.flows, M.macs], 'after flushes');
    t.same(listing(ns, M.macs), [], 'flushed');
    await both([{ kind: 'add', map: M.macs, entries: [{ key: 9, data: '02:00:0a:fa:00:09' }] }, { kind: 'add', map: M.newFlows, entries: [{ key: 9 }] }]);
    sameAsTwins(t, [M.macs, M.newFlows], 'counted maps refilled');
  });

  t.test('farm chains written as netlink rules are what nft makes of the same text', async (t) => {
    const prep = ns.nft(['-f', '-'], ['pin_x', 'serve_x', 'count_drop'].map((c) => `add chain netdev ${TABLE} ${c}\n`).join(''));
    t.equal(prep.status, 0, `jump targets ${prep.stderr}`);
    // The rules a DSR farm's chain holds (farm-render.ts), and the other verdict forms.
    const rules = (mark: number, offset: string) => [
      'jump pin_x',
      `meta mark 0 meta mark set jhash ip saddr . ip daddr . th sport . th dport mod 64 seed 0x6e667466 offset 0x${offset}`,
      'jump serve_x',
      `meta mark set ${mark} jump count_drop`,
      'goto serve_x',
      `meta mark set ${mark} goto count_drop`,
    ];
    const cases = [
      { chain: 'chain_a', rules: rules(1449, '805a9000') },
      { chain: 'chain_b', rules: rules(4294967295, '00000000') },
      { chain: 'chain_c', rules: [] as string[] },
      // A stateless_dnat farm's replies chain.
      { chain: 'chain_r', rules: ['ip saddr set 10.250.0.100 accept', 'ip saddr set 255.255.255.255 accept'] },
    ];
    const genBefore = await d.call<number>('generation');
    const result = await d.call<{ generation: number; messages: number }>('commitChains', cases.map((c) => ({ family: 'netdev', table: TABLE, ...c })));
    t.equal(result.generation, genBefore + 1, 'one commit');
    t.equal(result.messages, 4 + 14, 'a message per chain and per rule');
    const viaNft = ns.nft(['-f', '-'], cases.map((c) => [`add chain netdev ${TABLE} nft_${c.chain}`, ...c.rules.map((r) => `add rule netdev ${TABLE} nft_${c.chain} ${r}`)].join('\n')).join('\n') + '\n');
    t.equal(viaNft.status, 0, `nft writes the same text ${viaNft.stderr}`);
    for (const c of cases) {
      const listed = (name: string, debug: boolean) =>
        ns.nft([...(debug ? ['--debug=netlink'] : []), 'list', 'chain', 'netdev', TABLE, name]).stdout.replaceAll(name, 'CHAIN').replace(/# handle \d+/g, '').replace(/CHAIN( \d+)+$/gm, 'CHAIN');
      t.equal(listed(c.chain, false), listed(`nft_${c.chain}`, false), `${c.chain}: the same rules listed`);
      t.equal(listed(c.chain, true), listed(`nft_${c.chain}`, true), `${c.chain}: the same expressions, registers and lengths (nft --debug=netlink)`);
    }
    t.match(ns.nft(['list', 'chain', 'netdev', TABLE, 'chain_a']).stdout, /jhash ip saddr \. ip daddr \. th sport \. th dport mod 64 seed 0x6e667466 offset 2153418752/);

    // A batch with a failing chain (a jump to a chain that does not exist) applies none of them.
    const err = await d.call('commitChains', [
      { family: 'netdev', table: TABLE, chain: 'chain_d', rules: ['jump serve_x'] },
      { family: 'netdev', table: TABLE, chain: 'chain_e', rules: ['jump serve_x', 'jump missing_chain', 'jump serve_x'] },
    ]).then(() => null, (e: DriverError) => e);
    t.match(err, { name: 'NftBatchError', code: 'ENOENT', opIndex: 1, applied: false });
    t.match(err.message, /operation 1 \(add chain netdev nfel\w* chain_e with 3 rules\): ENOENT/);
    const chains = ns.nft(['list', 'chains', 'netdev']).stdout;
    t.notMatch(chains, /chain_d|chain_e/, 'neither chain exists');
    t.equal(await d.call('generation'), genBefore + 2, 'no commit (nft committed once)');
    t.match(await d.call('info'), { staleReplies: 0 }, 'no reply left over');
  });

  t.test('a failing batch changes nothing and names the operation', async (t) => {
    const before = snapshot();
    const genBefore = await d.call<number>('generation');
    const err = await d.commitError([
      { kind: 'add', map: M.marks, entries: [{ key: 50, data: 1 }] },
      { kind: 'delete', map: M.macs, entries: [{ key: 999 }] },
      { kind: 'add', map: M.macs, entries: [{ key: 7, data: '02:00:0a:fa:00:07' }] },
    ]);
    t.match(err, { name: 'NftBatchError', code: 'ENOENT', kind: 'not-found', opIndex: 1, applied: false, failures: [{ opIndex: 1, code: 'ENOENT' }] });
    t.match(err.message, /operation 1 \(delete netdev nfel\w* macs, 1 element\): ENOENT/);
    t.same(snapshot(), before, 'every map as before');
    t.equal(await d.call('generation'), genBefore, 'no commit happened');

    const clash = await d.commitError([
      { kind: 'add', map: M.marks, entries: [{ key: 51, data: 1 }] },
      { kind: 'add', map: M.marks, entries: [{ key: 0x40000400, data: 9 }] },
      { kind: 'delete', map: M.ports, entries: [{ key: 77 }] },
    ]);
    t.match(clash, { code: 'EEXIST', kind: 'exists', opIndex: 1, failures: [{ opIndex: 1, code: 'EEXIST' }, { opIndex: 2, code: 'ENOENT' }] },
      'an existing key with another value is EEXIST; the kernel reports every failure of the batch');

    const missingSet = await d.commitError([{ kind: 'add', map: { ...M.marks, name: 'nope' }, entries: [{ key: 1, data: 1 }] }]);
    t.match(missingSet, { code: 'ENOENT', opIndex: 0 }, 'a missing set');
    const tables = ns.nft(['list', 'tables']).stdout;
    const missingTable = await d.commitError([{ kind: 'flush', map: { ...M.marks, table: 'nope' } }]);
    t.match(missingTable, { code: 'ENOENT', opIndex: 0 }, 'a missing table');
    t.equal(ns.nft(['list', 'tables']).stdout, tables, 'the generation marker did not leave a table behind');
    t.same(snapshot(), before, 'still every map as before');

    const next = await d.commit([{ kind: 'add', map: M.marks, entries: [{ key: 50, data: 1 }] }]);
    t.equal(next.generation, genBefore + 1, 'the socket works again at once');
    t.match(await d.call('info'), { staleReplies: 0 }, 'no reply was left over for a later request');
    await d.commit([{ kind: 'delete', map: M.marks, entries: [{ key: 50 }] }]);
  });

  t.test('ifGeneration: the batch applies only to the generation it was planned on', async (t) => {
    const gen = await d.call<number>('generation');
    const ops: Op[] = [{ kind: 'add', map: M.ports, entries: [{ key: 20, data: 2020 }] }];
    const err = await d.commitError(ops, { ifGeneration: gen - 1 });
    t.match(err, { code: 'ERESTART', opIndex: null, applied: false });
    t.notMatch(listing(ns, M.ports).join(), /2020/, 'not applied');
    t.equal((await d.commit(ops, { ifGeneration: gen })).generation, gen + 1, 'applied on the current generation');
  });

  t.test('the size limit: an over-size batch is refused before sending, a batch at the limit applies', async (t) => {
    const info = await d.call<{ maxBatchBytes: number }>('info');
    const wmemMax = Number(ns.run(['cat', '/proc/sys/net/core/wmem_max']));
    const rmemMax = Number(ns.run(['cat', '/proc/sys/net/core/rmem_max']));
    t.ok(info.maxBatchBytes <= 2 * wmemMax - 32 && info.maxBatchBytes > 0.9 * Math.min(2 * wmemMax, 2 * rmemMax),
      `maxBatchBytes ${info.maxBatchBytes} follows wmem_max ${wmemMax} and rmem_max ${rmemMax}`);
    const spec = { family: 'netdev', table: TABLE, set: 'big', key: 'mark', data: 'mark' };
    const gen = (count: number) => [{ kind: 'add', spec, first: 1, count }];
    // 28 bytes per mark : mark element, and about 0.2% of message headers: the largest count that fits.
    let count = Math.floor((info.maxBatchBytes / 28) * 0.997);
    while ((await d.call<number>('batchBytesGenerated', gen(count))) > info.maxBatchBytes) count -= 500;
    const genBefore = await d.call<number>('generation');
    const over = await d.call('commitGenerated', gen(count + 2000)).then(() => null, (e: DriverError) => e);
    t.match(over, { code: 'EMSGSIZE', applied: false }, 'refused');
    t.equal(await d.call('generation'), genBefore, 'nothing was committed');
    t.equal(await d.call('count', 'netdev', TABLE, 'big'), 0, 'nothing was written');

    const fits = await d.call<CommitResult>('commitGenerated', gen(count));
    t.ok(fits.bytes <= info.maxBatchBytes && fits.bytes > info.maxBatchBytes - 30_000, `a batch of ${fits.bytes} bytes (${count} elements) applies`);
    t.equal(await d.call('count', 'netdev', TABLE, 'big'), count, 'all of it');

    const allFail = await d.call('commitGenerated', [{ kind: 'delete', spec, first: 10_000_000, count: Math.floor(count * 1.6) }]).then(() => null, (e: DriverError) => e);
    t.match(allFail, { code: 'ENOENT', opIndex: 0, applied: false }, 'a batch at the limit whose every message fails: every error echo fits the receive buffer');
    t.ok((allFail as DriverError).failures!.length > 200, `${(allFail as DriverError).failures!.length} failures reported`);
    await d.commit([{ kind: 'flush', map: M.big }]);
    t.equal(await d.call('count', 'netdev', TABLE, 'big'), 0);
  });

  t.test('many batches in a row, and concurrent commits', async (t) => {
    const keys = [101, 102, 103, 104, 105, 106, 107, 108];
    await both([{ kind: 'add', map: M.marks, entries: keys.map((key) => ({ key, data: 0 })) }]);
    const first = await d.call<number>('generation');
    for (let round = 1; round <= 200; round++) {
      const r = await d.commit([
        { kind: 'delete', map: M.marks, entries: keys.map((key) => ({ key })) },
        { kind: 'add', map: M.marks, entries: keys.map((key) => ({ key, data: round })) },
      ]);
      if (r.generation !== first + round) t.fail(`round ${round}: generation ${r.generation}, expected ${first + round}`);
    }
    ns.nft(['-f', '-'], nftScript([
      { kind: 'delete', map: M.marks, entries: keys.map((key) => ({ key })) },
      { kind: 'add', map: M.marks, entries: keys.map((key) => ({ key, data: 200 })) },
    ]));
    sameAsTwins(t, [M.marks], 'after 200 batches');

    const before = await d.call<number>('generation');
    const results = await d.call<{ ok: boolean; value?: CommitResult }[]>('concurrent',
      Array.from({ length: 20 }, (_, i) => driverOps([{ kind: 'add', map: M.ports, entries: [{ key: 1000 + i, data: i + 1 }] }])));
    t.ok(results.every((r) => r.ok), 'twenty commits fired at once all apply');
    t.same(results.map((r) => r.value?.generation), Array.from({ length: 20 }, (_, i) => before + 1 + i), 'one after the other, in call order');
    t.match(await d.call('info'), { staleReplies: 0 });
  });

  t.test('a pipelined writer over a socket in a helper process (a first load): batches queued at once apply in order, a failing one alone is refused', async (t) => {
    const spec = { family: M.big.family, table: TABLE, set: M.big.name, key: 'mark', data: 'mark' };
    await d.commit([{ kind: 'flush', map: M.big }]);
    const before = await d.call<number>('generation');
    // 30 batches of 2,000 elements; the 11th deletes keys that are not there (ENOENT).
    const batches = Array.from({ length: 30 }, (_, i) =>
      i === 10 ? [{ kind: 'delete', spec, first: 900_000, count: 5 }] : [{ kind: 'add', spec, first: 1 + i * 2000, count: 2000, dataOffset: 7 }]);
    const results = await d.call<{ ok: boolean; value?: CommitResult; error?: { code: string; opIndex: number | null; applied: unknown } }[]>('pipelinedGenerated', batches);
    t.equal(results.filter((r) => r.ok).length, 29, 'every other batch applied');
    t.match(results[10], { ok: false, error: { code: 'ENOENT', opIndex: 0, applied: false } }, 'the failing batch names its operation; nothing of it applied');
    const generations = results.filter((r) => r.ok).map((r) => r.value?.generation);
    t.same(generations, Array.from({ length: 29 }, (_, i) => before + 1 + i), 'one commit each, in the order they were queued');
    t.equal(await d.call('count', 'netdev', TABLE, M.big.name), 29 * 2000, 'every element of the applied batches is in');
    await d.commit([{ kind: 'flush', map: M.big }]);
  });

  t.test('the helper process holds batches back while their replies could overflow its receive buffer (an overflow aborts it)', async (t) => {
    const spec = { family: M.big.family, table: TABLE, set: M.big.name, key: 'mark', data: 'mark' };
    await d.commit([{ kind: 'flush', map: M.big }]);
    const before = await d.call<number>('generation');
    // 30 batches of 100 one-element operations: 100 messages, each acked, per batch; all the
    // acks together take megabytes of a receive buffer of a few hundred kilobytes.
    const batches = Array.from({ length: 30 }, (_, i) => Array.from({ length: 100 }, (_, j) => ({ kind: 'add', spec, first: 1 + i * 100 + j, count: 1, dataOffset: 7 })));
    const results = await d.call<{ ok: boolean; value?: CommitResult; error?: { message: string } }[]>('pipelinedGenerated', batches, { recvBufferBytes: 128 * 1024 });
    t.same(results.filter((r) => !r.ok).map((r) => r.error?.message), [], 'no batch failed (the helper is alive to the end)');
    t.same(results.map((r) => r.value?.generation), Array.from({ length: 30 }, (_, i) => before + 1 + i), 'one commit each, in order');
    t.equal(await d.call('count', 'netdev', TABLE, M.big.name), 3000, 'every element is in');
    await d.commit([{ kind: 'flush', map: M.big }]);
  });
});
