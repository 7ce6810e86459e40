// The network-namespace lab for end-to-end tests and the demo.
//
//                      <prefix>-sw: br0 (plain switch)
//        p-client        p-lb          p-b1        p-b2   ...
//           |              |             |           |
//   <prefix>-client   <prefix>-lb   <prefix>-b1  <prefix>-b2    (each: eth0 + lo)
//     10.250.0.10     10.250.0.2    10.250.0.21  10.250.0.22
//
// Nothing connects to the root namespace and there is no default route, so lab traffic cannot
// leave the lab. Every process the lab starts is recorded and killed on destroy(), on process
// exit or signal (cleanup.ts), or by the next createLab() with the same prefix after a SIGKILL.
import { spawn as spawnChild, type ChildProcess, type StdioOptions } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  BRIDGE_NAME,
  CLIENT_IP,
  HOST_IFACE,
  LAB_PREFIX_LEN,
  LAB_PREFIX_LEN6,
  ipv6ForIp,
  LB_IP,
  MAX_BACKENDS,
  backendIp,
  backendName,
  checkPrefix,
  macForIp,
  namespaceName,
  parseIpv4,
  switchPortName,
  type HostRole,
} from './topology.js';
import {
  destroyStaleLabs,
  deleteNamespacesSync,
  registerLive,
  removeState,
  unregisterLive,
  writeState,
  type LabState,
  type LiveLab,
} from './cleanup.js';
import { collectOutput, hasExited, onLines, signalRef, sleep, startTimeOf, stopStarted, tail, waitExit, type ProcRef } from './proc.js';
import { followHoldClient } from './hold-client.js';
import { parsePcap, formatFrame, type Frame } from './pcap.js';
import type { DownloadResult, HoldReady, HoldResult, HttpManyResult, UdpResult } from './results.js';

export { destroyStaleLabs, listNamespaces } from './cleanup.js';
export * from './topology.js';
export type { Frame } from './pcap.js';
export type { BackendReply, DownloadResult, HoldReady, HoldResult, HttpManyResult, UdpResult } from './results.js';

/**
 * Package root (with a trailing slash): the nearest directory above this file with a package.json,
 * from lab/ (ts, under tap) as from lab/dist/lab/ (compiled).
 */
export const PACKAGE_ROOT = findPackageRoot(fileURLToPath(new URL('./', import.meta.url)));
/** The lab's programs always run compiled: `npm run build` (or `npx tsc -p lab/tsconfig.json`) must have run. */
export const LAB_DIST = join(PACKAGE_ROOT, 'lab', 'dist', 'lab');

function findPackageRoot(dir: string): string {
  for (let d = dir; ; d = join(d, '..')) {
    if (existsSync(join(d, 'package.json'))) return join(d, '/');
    if (join(d, '..') === d) throw new Error(`no package.json above ${dir}`);
  }
}

const DEFAULT_EXEC_TIMEOUT_MS = 30_000;
const STOP_GRACE_MS = 1000;
const READY_TIMEOUT_MS = 10_000;

export interface LabOptions {
  /** Namespace name prefix, unique per test file (tap runs files in parallel). */
  prefix: string;
  /** Number of backends, default 2. */
  backends?: number;
  /**
   * Addresses on the lab's links: 'ipv4' (default, IPv6 disabled), 'ipv6' (IPv6 only: no IPv4
   * address anywhere; `ip` is the IPv6 address), 'dual' (both; `ip` IPv4, `ip6` IPv6).
   */
  family?: 'ipv4' | 'ipv6' | 'dual';
}

export interface LabHost {
  /** "client", "lb", "b1", "b2", ... */
  name: HostRole;
  /** Network namespace name, "<prefix>-<name>". */
  ns: string;
  /** Always "eth0". */
  iface: string;
  ip: string;
  /** The host's IPv6 address in 'ipv6' and 'dual' labs. */
  ip6?: string;
  mac: string;
  /** The host's veth peer inside the switch namespace. */
  switchPort: string;
}

export interface ExecOptions {
  /** Written to the command's stdin, which is then closed. */
  input?: string;
  /** Default 30 s; on expiry the command is killed with SIGKILL and `timedOut` is set. */
  timeoutMs?: number;
}

export interface ExecResult {
  /** Exit code; null when the command died of a signal. */
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  timedOut: boolean;
}

export interface LabSpawnOptions {
  /** Default: all three piped. Piped output must be consumed or the child blocks when it fills. */
  stdio?: StdioOptions;
  env?: NodeJS.ProcessEnv;
}

export interface BackendProcess {
  host: LabHost;
  child: ChildProcess;
}

export interface HoldHandle {
  child: ChildProcess;
  /** Resolves once every connection has had its first answer (or broke trying). */
  ready(): Promise<HoldReady>;
  /** Asks the client to stop, and resolves with its final count. */
  stop(): Promise<HoldResult>;
}

export interface CaptureResult {
  frames: Frame[];
  /** One line per frame (formatFrame), for diagnostics. */
  lines: string[];
  /** What tcpdump reported as "dropped by kernel" (frames missing from `frames`). */
  droppedByKernel: number;
}

export interface CaptureHandle {
  child: ChildProcess;
  /** Lets in-flight frames reach tcpdump (settleMs, default 200), stops it, decodes the capture. */
  stop(settleMs?: number): Promise<CaptureResult>;
}

export interface Lab {
  readonly prefix: string;
  readonly switchNs: string;
  readonly client: LabHost;
  readonly lb: LabHost;
  readonly backends: readonly LabHost[];
  /** client, lb, backends. */
  readonly hosts: readonly LabHost[];
  /** Every namespace of the lab, switch first. */
  readonly namespaces: readonly string[];

  /** Runs argv in a lab namespace; never throws on a non-zero exit. */
  exec(ns: string, argv: string[], opts?: ExecOptions): Promise<ExecResult>;
  /** Like exec, but throws (with stderr) unless the command exits 0. */
  execOk(ns: string, argv: string[], opts?: ExecOptions): Promise<ExecResult>;
  /** Starts argv in a lab namespace; the lab records it and kills it on destroy(). */
  spawn(ns: string, argv: string[], opts?: LabSpawnOptions): ChildProcess;
  /** SIGTERM, then SIGKILL after graceMs (default 1000); resolves once it has exited. */
  stopProcess(child: ChildProcess, graceMs?: number): Promise<void>;
  /** Every PID the lab has started so far, running or not. */
  pids(): number[];

  /** On each backend: VIP/32 on lo, arp_ignore=1 and arp_announce=2 on all and eth0 (IPv6: VIP/128 on lo). */
  configureDsrBackends(vip: string): Promise<void>;
  /** Runs backend-server on a backend; resolves once it is listening (HTTP on 0.0.0.0, or on `httpHosts`). */
  startBackendServer(host: LabHost, opts: { httpPort?: number; httpHosts?: string[]; udp?: string[] }): Promise<BackendProcess>;
  /** HTTP servers on every backend, listening on 0.0.0.0:port. */
  startHttpBackends(port: number): Promise<BackendProcess[]>;
  /** Makes a running backend-server answer `GET /health` with `status`; resolves once it has. */
  setHealthStatus(backend: BackendProcess, status: number): Promise<void>;
  /** UDP echo servers on every backend, bound to vip:port (call configureDsrBackends first). */
  startUdpBackends(vip: string, port: number): Promise<BackendProcess[]>;

  /** `count` sequential requests from the client, each on a fresh TCP connection. */
  httpMany(url: string, count: number, opts?: { timeoutMs?: number }): Promise<HttpManyResult>;
  download(url: string, opts?: { timeoutMs?: number }): Promise<DownloadResult>;
  /** `count` keep-alive connections from the client, one request per interval each. */
  startHold(host: string, port: number, count: number, opts?: { intervalMs?: number; timeoutMs?: number }): HoldHandle;
  /** `count` datagrams from one client socket; replies counted by backend and source address. */
  udp(host: string, port: number, count: number, opts?: { timeoutMs?: number }): Promise<UdpResult>;

  /** tcpdump on `iface` in `ns` with a pcap filter; resolves once tcpdump is listening. */
  capture(ns: string, iface: string, filter?: string): Promise<CaptureHandle>;

  /** Kills every process the lab started and deletes its namespaces. Idempotent. */
  destroy(): Promise<void>;
}

export async function createLab(requested: LabOptions): Promise<Lab> {
  // NFTFARM_LAB_TAG (one or two letters) keeps the labs of two checkouts testing on one machine apart.
  const opts = { ...requested, prefix: `${requested.prefix}${process.env.NFTFARM_LAB_TAG ?? ''}` };
  checkPrefix(opts.prefix);
  const count = opts.backends ?? 2;
  if (!Number.isInteger(count) || count < 1 || count > MAX_BACKENDS) {
    throw new Error(`backends must be 1..${MAX_BACKENDS} (got ${count})`);
  }
  await destroyStaleLabs(opts.prefix);
  const lab = new NetnsLab(opts.prefix, count, opts.family ?? 'ipv4');
  try {
    await lab.build();
  } catch (err) {
    await lab.destroy();
    throw err;
  }
  return lab;
}

interface Tracked {
  ref: ProcRef;
  child: ChildProcess;
}

class NetnsLab implements Lab, LiveLab {
  readonly switchNs: string;
  readonly client: LabHost;
  readonly lb: LabHost;
  readonly backends: readonly LabHost[];
  readonly hosts: readonly LabHost[];
  readonly namespaces: readonly string[];

  private readonly running = new Map<number, Tracked>();
  private readonly startedPids: number[] = [];
  private readonly owner: ProcRef;
  private destroying?: Promise<void>;

  constructor(
    readonly prefix: string,
    backendCount: number,
    readonly family: 'ipv4' | 'ipv6' | 'dual' = 'ipv4',
  ) {
    const host = (name: HostRole, ip: string): LabHost => ({
      name,
      ns: namespaceName(prefix, name),
      iface: HOST_IFACE,
      ip: family === 'ipv6' ? ipv6ForIp(ip) : ip,
      ...(family === 'ipv4' ? {} : { ip6: ipv6ForIp(ip) }),
      mac: macForIp(ip),
      switchPort: switchPortName(name),
    });
    this.switchNs = namespaceName(prefix, 'sw');
    this.client = host('client', CLIENT_IP);
    this.lb = host('lb', LB_IP);
    this.backends = Array.from({ length: backendCount }, (_, i) => host(backendName(i + 1) as HostRole, backendIp(i + 1)));
    this.hosts = [this.client, this.lb, ...this.backends];
    this.namespaces = [this.switchNs, ...this.hosts.map((h) => h.ns)];
    this.owner = { pid: process.pid, start: startTimeOf(process.pid) ?? '' };
    // Recorded before anything exists, so a crash during build() is cleaned up too.
    registerLive(this);
    this.saveState();
  }

  // ------------------------------------------------------------ building

  async build(): Promise<void> {
    const sw = this.switchNs;
    for (const ns of this.namespaces) await this.run('ip', ['netns', 'add', ns]);
    // Before any link exists, so eth0 inherits it: an IPv4-only lab keeps captures and the
    // switch's forwarding table free of IPv6 router/neighbour solicitations.
    for (const ns of this.namespaces) {
      // IPv6 labs: IPv6 on the hosts (not the switch), no duplicate address detection (fixed
      // addresses, usable at once), no router solicitations or advertisements taken.
      const six = this.family !== 'ipv4' && ns !== sw;
      await this.run('ip', ['netns', 'exec', ns, 'sysctl', '-q', '-w',
        ...(six
          ? ['net.ipv6.conf.all.disable_ipv6=0', 'net.ipv6.conf.default.disable_ipv6=0', 'net.ipv6.conf.default.accept_dad=0',
              'net.ipv6.conf.default.router_solicitations=0', 'net.ipv6.conf.default.accept_ra=0']
          : ['net.ipv6.conf.all.disable_ipv6=1', 'net.ipv6.conf.default.disable_ipv6=1'])]);
    }
    // New namespaces start with bridge-nf-call-*=1, which would push bridged frames through
    // iptables. The keys exist only while br_netfilter is loaded: -e skips unknown keys.
    await this.run('ip', ['netns', 'exec', sw, 'sysctl', '-q', '-e', '-w',
      'net.bridge.bridge-nf-call-iptables=0',
      'net.bridge.bridge-nf-call-ip6tables=0',
      'net.bridge.bridge-nf-call-arptables=0']);
    // STP off: ports forward at once instead of after listening/learning delays.
    const swCommands = [
      'link set lo up',
      `link add ${BRIDGE_NAME} type bridge stp_state 0 forward_delay 0`,
      `link set ${BRIDGE_NAME} up`,
    ];
    for (const h of this.hosts) {
      // Created from inside the switch namespace with the peer placed straight into the host
      // namespace: no interface ever appears in the root namespace, so parallel labs cannot
      // collide on veth names there.
      swCommands.push(`link add ${h.switchPort} type veth peer name ${h.iface} address ${h.mac} netns ${h.ns}`);
      swCommands.push(`link set ${h.switchPort} master ${BRIDGE_NAME} up`);
    }
    await this.run('ip', ['-n', sw, '-batch', '-'], swCommands.join('\n') + '\n');
    for (const h of this.hosts) {
      const cmds = [
        'link set lo up',
        ...(this.family === 'ipv6' ? [] : [`addr add ${h.ip}/${LAB_PREFIX_LEN} dev ${h.iface}`]),
        ...(h.ip6 ? [`addr add ${h.ip6}/${LAB_PREFIX_LEN6} dev ${h.iface} nodad`] : []),
        `link set ${h.iface} up`,
      ];
      await this.run('ip', ['-n', h.ns, '-batch', '-'], cmds.join('\n') + '\n');
    }
  }

  /** A setup command (tracked like every other process); throws unless it exits 0. */
  private async run(cmd: string, args: string[], input?: string): Promise<void> {
    const r = await collectOutput(this.track(cmd, args, 'pipe'), input, DEFAULT_EXEC_TIMEOUT_MS);
    if (r.code !== 0) throw new Error(`${cmd} ${args.join(' ')} failed (${describeExit(r)}): ${r.stderr.trim()}`);
  }

  // ------------------------------------------------------------ processes

  exec(ns: string, argv: string[], opts: ExecOptions = {}): Promise<ExecResult> {
    const child = this.spawn(ns, argv);
    return collectOutput(child, opts.input, opts.timeoutMs ?? DEFAULT_EXEC_TIMEOUT_MS);
  }

  async execOk(ns: string, argv: string[], opts: ExecOptions = {}): Promise<ExecResult> {
    const r = await this.exec(ns, argv, opts);
    if (r.code !== 0) {
      throw new Error(`${argv.join(' ')} in ${ns} failed (${describeExit(r)}): ${r.stderr.trim() || r.stdout.trim()}`);
    }
    return r;
  }

  spawn(ns: string, argv: string[], opts: LabSpawnOptions = {}): ChildProcess {
    if (!this.namespaces.includes(ns)) {
      throw new Error(`${ns} is not a namespace of lab "${this.prefix}" (${this.namespaces.join(', ')})`);
    }
    if (argv.length === 0) throw new Error('spawn: empty argv');
    // `ip netns exec` execs the command in place: the PID we record is the command's own.
    return this.track('ip', ['netns', 'exec', ns, ...argv], opts.stdio ?? 'pipe', opts.env);
  }

  private track(cmd: string, args: string[], stdio: StdioOptions, env?: NodeJS.ProcessEnv): ChildProcess {
    if (this.destroying) throw new Error(`lab "${this.prefix}" is destroyed`);
    const child = spawnChild(cmd, args, { stdio, env: env ?? process.env });
    const pid = child.pid;
    if (pid === undefined) return child; // spawn failed; 'error' follows, nothing to track
    // The start time is read now, while the process surely exists, so that a later kill by
    // PID can tell it apart from an unrelated process that reused the PID.
    const ref: ProcRef = { pid, start: startTimeOf(pid) ?? '' };
    this.startedPids.push(pid);
    this.running.set(pid, { ref, child });
    this.saveState();
    child.once('exit', () => {
      this.running.delete(pid);
      if (!this.destroying) this.saveState();
    });
    return child;
  }

  async stopProcess(child: ChildProcess, graceMs = STOP_GRACE_MS): Promise<void> {
    const tracked = child.pid === undefined ? undefined : this.running.get(child.pid);
    if (tracked) await stopStarted(tracked.ref, child, graceMs);
  }


  pids(): number[] {
    return [...this.startedPids];
  }

  /** Runs a compiled lab program (lab/dist/lab/<script>) with the current node. */
  private spawnNode(ns: string, script: string, args: string[]): ChildProcess {
    const { argv, env } = labProgram(script, args);
    // stdin stays a pipe we never close: the programs treat EOF as "the lab is gone".
    return this.spawn(ns, argv, { env, stdio: 'pipe' });
  }


  // ------------------------------------------------------------ backends

  async configureDsrBackends(vip: string): Promise<void> {
    if (vip.includes(':')) {
      // IPv6: the VIP on lo; Linux answers solicitations only for the receiving interface's addresses.
      for (const b of this.backends) await this.execOk(b.ns, ['ip', '-6', 'addr', 'replace', `${vip}/128`, 'dev', 'lo', 'nodad']);
      return;
    }
    parseIpv4(vip);
    for (const b of this.backends) {
      // `replace` keeps this idempotent for tests that reconfigure.
      await this.execOk(b.ns, ['ip', 'addr', 'replace', `${vip}/32`, 'dev', 'lo']);
      // arp_ignore=1: answer ARP only for addresses on the receiving NIC (not the VIP on lo);
      // arp_announce=2: never use the VIP as the source of our own ARP requests.
      await this.execOk(b.ns, ['sysctl', '-q', '-w',
        'net.ipv4.conf.all.arp_ignore=1', 'net.ipv4.conf.all.arp_announce=2',
        `net.ipv4.conf.${b.iface}.arp_ignore=1`, `net.ipv4.conf.${b.iface}.arp_announce=2`]);
    }
  }

  async startBackendServer(host: LabHost, opts: { httpPort?: number; httpHosts?: string[]; udp?: string[] }): Promise<BackendProcess> {
    const args = ['--name', host.name, '--exit-on-stdin-close'];
    if (opts.httpPort !== undefined) args.push('--http-port', String(opts.httpPort));
    for (const h of opts.httpHosts ?? []) args.push('--http-host', h);
    for (const bind of opts.udp ?? []) args.push('--udp', bind);
    const child = this.spawnNode(host.ns, 'backend-server.js', args);
    const stderr = tail(child.stderr!);
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => fail(`not ready after ${READY_TIMEOUT_MS} ms`), READY_TIMEOUT_MS);
      const fail = (why: string): void => {
        clearTimeout(timer);
        child.off('exit', onExit);
        void this.stopProcess(child);
        reject(new Error(`backend-server on ${host.name} ${why}: ${stderr().trim()}`));
      };
      const onExit = (code: number | null): void => fail(`exited with ${code}`);
      child.once('exit', onExit);
      onLines(child.stdout!, (line) => {
        if (line.trim() !== 'ready') return;
        clearTimeout(timer);
        child.off('exit', onExit);
        resolve();
      });
    });
    return { host, child };
  }

  startHttpBackends(port: number): Promise<BackendProcess[]> {
    // IPv6 labs listen on `::` too (IPv6-only sockets: IPv4 clients stay on 0.0.0.0).
    const hosts = this.family === 'ipv6' ? ['::'] : this.family === 'dual' ? ['0.0.0.0', '::'] : undefined;
    return Promise.all(this.backends.map((b) => this.startBackendServer(b, { httpPort: port, ...(hosts ? { httpHosts: hosts } : {}) })));
  }

  setHealthStatus(backend: BackendProcess, status: number): Promise<void> {
    const { child } = backend;
    return new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`backend-server on ${backend.host.name} did not take health ${status}`)), READY_TIMEOUT_MS);
      onLines(child.stdout!, (line) => {
        if (line.trim() !== `health ${status}`) return;
        clearTimeout(timer);
        resolve();
      });
      child.stdin!.write(`health ${status}\n`);
    });
  }

  startUdpBackends(vip: string, port: number): Promise<BackendProcess[]> {
    if (!vip.includes(':')) parseIpv4(vip);
    return Promise.all(this.backends.map((b) => this.startBackendServer(b, { udp: [`${vip}:${port}`] })));
  }

  // ------------------------------------------------------------ client traffic

  private async runClient<T>(args: string[], timeoutMs: number): Promise<T> {
    const child = this.spawnNode(this.client.ns, 'client.js', args);
    const r = await collectOutput(child, undefined, timeoutMs);
    if (r.code !== 0) throw new Error(`client ${args.join(' ')} failed (${describeExit(r)}): ${r.stderr.trim()}`);
    return lastJsonLine<T>(r.stdout);
  }

  httpMany(url: string, count: number, opts: { timeoutMs?: number } = {}): Promise<HttpManyResult> {
    const timeoutMs = opts.timeoutMs ?? 2000;
    return this.runClient(
      ['http-many', '--url', url, '--count', String(count), '--timeout-ms', String(timeoutMs)],
      count * timeoutMs + 10_000,
    );
  }

  download(url: string, opts: { timeoutMs?: number } = {}): Promise<DownloadResult> {
    const timeoutMs = opts.timeoutMs ?? 30_000;
    return this.runClient(['download', '--url', url, '--timeout-ms', String(timeoutMs)], timeoutMs + 10_000);
  }

  udp(host: string, port: number, count: number, opts: { timeoutMs?: number } = {}): Promise<UdpResult> {
    const timeoutMs = opts.timeoutMs ?? 2000;
    return this.runClient(
      ['udp', '--host', host, '--port', String(port), '--count', String(count), '--timeout-ms', String(timeoutMs)],
      count * 50 + timeoutMs + 10_000,
    );
  }

  startHold(host: string, port: number, count: number, opts: { intervalMs?: number; timeoutMs?: number } = {}): HoldHandle {
    const timeoutMs = opts.timeoutMs ?? 2000;
    const child = this.spawnNode(this.client.ns, 'client.js', [
      'hold', '--host', host, '--port', String(port), '--count', String(count),
      '--interval-ms', String(opts.intervalMs ?? 200), '--timeout-ms', String(timeoutMs),
    ]);
    return followHoldClient(child, timeoutMs, () => void this.stopProcess(child));
  }

  // ------------------------------------------------------------ capture

  async capture(ns: string, iface: string, filter = ''): Promise<CaptureHandle> {
    // Binary pcap on stdout (-w -), flushed per packet (-U), delivered without libpcap's block
    // timeout (--immediate-mode). 192 bytes cover Ethernet + IPv4 + TCP headers with options.
    const argv = ['tcpdump', '-n', '-i', iface, '-s', '192', '-U', '--immediate-mode', '-w', '-'];
    if (filter !== '') argv.push(filter);
    const child = this.spawn(ns, argv, { stdio: ['ignore', 'pipe', 'pipe'] });
    const chunks: Buffer[] = [];
    child.stdout!.on('data', (c: Buffer) => chunks.push(c));
    let stderr = '';
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => fail('not listening after 5 s'), 5000);
      const fail = (why: string): void => {
        clearTimeout(timer);
        child.off('exit', onExit);
        void this.stopProcess(child);
        reject(new Error(`tcpdump on ${ns}/${iface} ${why}: ${stderr.trim()}`));
      };
      const onExit = (code: number | null): void => fail(`exited with ${code}`);
      child.once('exit', onExit);
      child.stderr!.setEncoding('utf8').on('data', (c: string) => {
        stderr += c;
        // tcpdump says this on stderr once the socket is open and the filter attached.
        if (stderr.includes('listening on')) {
          clearTimeout(timer);
          child.off('exit', onExit);
          resolve();
        }
      });
    });
    return {
      child,
      stop: async (settleMs = 200) => {
        await sleep(settleMs);
        await this.stopProcess(child, 3000);
        const frames = parsePcap(Buffer.concat(chunks));
        const dropped = /([0-9]+) packets? dropped by kernel/.exec(stderr);
        return { frames, lines: frames.map(formatFrame), droppedByKernel: Number(dropped?.[1] ?? 0) };
      },
    };
  }

  // ------------------------------------------------------------ teardown

  destroy(): Promise<void> {
    this.destroying ??= this.teardown();
    return this.destroying;
  }

  private async teardown(): Promise<void> {
    await Promise.all([...this.running.values()].map((p) => stopStarted(p.ref, p.child, STOP_GRACE_MS)));
    // Deleted from the root namespace with plain calls: the lab refuses to start new processes
    // once destroying, and these need not be tracked (they run to completion here).
    deleteNamespacesSync([...this.namespaces].reverse());
    removeState(this.prefix);
    unregisterLive(this);
  }

  destroySync(): void {
    // Marks the lab destroyed first: exit events of the children killed below may still be
    // delivered, and must not write the state file back.
    this.destroying ??= Promise.resolve();
    for (const p of this.running.values()) signalRef(p.ref, 'SIGKILL');
    deleteNamespacesSync([...this.namespaces].reverse());
    removeState(this.prefix);
    unregisterLive(this);
  }

  private saveState(): void {
    const state: LabState = {
      prefix: this.prefix,
      owner: this.owner,
      namespaces: [...this.namespaces],
      children: [...this.running.values()].map((p) => p.ref),
    };
    writeState(state);
  }
}

function describeExit(r: ExecResult): string {
  if (r.timedOut) return 'timed out';
  return r.code !== null ? `exit ${r.code}` : `signal ${r.signal}`;
}

function lastJsonLine<T>(stdout: string): T {
  const line = stdout.trim().split('\n').pop();
  if (line === undefined || line === '') throw new Error('no result on stdout');
  return JSON.parse(line) as T;
}

/** The command line and environment of a compiled lab program (lab/dist/lab/<script>), run with the current node. */
export function labProgram(script: string, args: string[]): { argv: string[]; env: NodeJS.ProcessEnv } {
  const path = join(LAB_DIST, script);
  if (!existsSync(path)) throw new Error(`${path} is missing: run \`npm run build\` (or \`npx tsc -p lab/tsconfig.json\`) first`);
  // tap (and other runners) put their loaders in NODE_OPTIONS; the lab programs are plain
  // compiled JS and must not load test tooling in every namespace process.
  const env = { ...process.env };
  delete env.NODE_OPTIONS;
  return { argv: [process.execPath, path, ...args], env };
}
