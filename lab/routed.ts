// A routed lab for the BGP/ECMP tests and bench (issue 12): a client subnet behind a router,
// and a load-balancer subnet holding the router, the nftfarm nodes and the backends.
//
//   <p>-client 10.251.0.10 --- eth1 10.251.0.1 <p>-rt (BIRD 2, ECMP) eth0 10.250.0.1
//                                                  |
//                      <p>-sw: br0 (plain switch) -+- <p>-n1 10.250.0.2, <p>-n2 .3, <p>-n3 .4
//                                                  +- <p>-b1 10.250.0.21, <p>-b2 .22, <p>-b3 .23
//
// Backends route everything through the router (their replies to the client cross it, never
// a node); the nodes need no route: the router reaches them, DSR sends by MAC. Nothing
// connects to the root namespace. Every process the lab starts is recorded (PID + start
// time) and killed on destroy(); a crashed run's leftovers are removed by the next run with
// the same prefix. (Kept apart from lab.ts, which builds one L2 segment.)
import { spawn as spawnChild, type ChildProcess, type StdioOptions } from 'node:child_process';
import { existsSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { labProgram, PACKAGE_ROOT, type ExecResult, type HoldHandle, type Lab, type LabHost } from './lab.js';
import { checkPrefix, macForIp } from './topology.js';
import { deleteNamespacesSync, listNamespaces, readState, registerLive, removeState, unregisterLive, writeState, type LiveLab } from './cleanup.js';
import { collectOutput, hasExited, onLines, signalRef, startTimeOf, stopStarted, tail, waitExit, type ProcRef } from './proc.js';
import { followHoldClient } from './hold-client.js';
import type { HttpManyResult } from './results.js';

export const ROUTER_IP = '10.250.0.1';
export const ROUTER_CLIENT_IP = '10.251.0.1';
export const ROUTED_CLIENT_IP = '10.251.0.10';
export const ROUTER_ASN = 65000;
export const NODE_ASN = 65010;
const NODE_IPS = ['10.250.0.2', '10.250.0.3', '10.250.0.4'];
const BACKEND_IPS = ['10.250.0.21', '10.250.0.22', '10.250.0.23'];

export interface RoutedHost extends LabHost {}

/** The held connections of a routed lab: the same handle as the plain lab's. */
export type RoutedHold = HoldHandle;

export interface RoutedLab {
  readonly prefix: string;
  readonly router: RoutedHost;
  readonly client: RoutedHost;
  readonly nodes: readonly RoutedHost[];
  readonly backends: readonly RoutedHost[];
  exec(ns: string, argv: string[], opts?: { input?: string; timeoutMs?: number }): Promise<ExecResult>;
  execOk(ns: string, argv: string[], opts?: { input?: string; timeoutMs?: number }): Promise<ExecResult>;
  spawn(ns: string, argv: string[], opts?: { stdio?: StdioOptions; env?: NodeJS.ProcessEnv }): ChildProcess;
  stopProcess(child: ChildProcess, graceMs?: number): Promise<void>;
  /** The lab seen as a one-node Lab whose load balancer is `node`, for startLabDaemon(). */
  asLab(node: RoutedHost): Lab;
  /** VIPs on every backend's lo, ARP for them suppressed (DSR). */
  configureDsrBackends(vips: string[]): Promise<void>;
  /** backend-server on every backend (HTTP on `port`); resolves once all listen. */
  startHttpBackends(port: number): Promise<{ host: RoutedHost; child: ChildProcess }[]>;
  setHealthStatus(backend: { host: RoutedHost; child: ChildProcess }, status: number): Promise<void>;
  /** BIRD in the router namespace: BGP with `peers`, ECMP (merge paths) into the kernel. */
  startRouterBird(peers: readonly RoutedHost[], holdTime: number): Promise<ChildProcess>;
  /** The next hops the router's kernel has for `vip`/32 ([] when it has no route). */
  routerPaths(vip: string): Promise<string[]>;
  httpMany(url: string, count: number, opts?: { timeoutMs?: number }): Promise<HttpManyResult>;
  startHold(host: string, port: number, count: number, opts?: { intervalMs?: number; timeoutMs?: number }): RoutedHold;
  destroy(): Promise<void>;
}

const ROLES = ['sw', 'rt', 'client', 'n1', 'n2', 'n3', 'b1', 'b2', 'b3'];

export async function createRoutedLab(requested: { prefix: string }): Promise<RoutedLab> {
  const prefix = `${requested.prefix}${process.env.NFTFARM_LAB_TAG ?? ''}`;
  checkPrefix(prefix);
  await removeStale(prefix);
  const lab = new Routed(prefix);
  try {
    await lab.build();
  } catch (err) {
    await lab.destroy();
    throw err;
  }
  return lab;
}

/** Kills what a crashed run recorded (if still those processes) and deletes its namespaces. */
async function removeStale(prefix: string): Promise<void> {
  const state = readState(prefix);
  if (state) {
    if (state.owner.pid !== process.pid && existsSync(`/proc/${state.owner.pid}`) && startTimeOf(state.owner.pid) === state.owner.start) {
      throw new Error(`lab prefix "${prefix}" is in use by live process ${state.owner.pid}`);
    }
    for (const child of state.children) signalRef(child, 'SIGKILL');
  }
  const mine = new Set(ROLES.map((r) => `${prefix}-${r}`));
  deleteNamespacesSync((await listNamespaces()).filter((ns) => mine.has(ns)));
  removeState(prefix);
}

class Routed implements RoutedLab, LiveLab {
  readonly router: RoutedHost;
  readonly client: RoutedHost;
  readonly nodes: RoutedHost[];
  readonly backends: RoutedHost[];
  private readonly namespaces: string[];
  private readonly running = new Map<number, { ref: ProcRef; child: ChildProcess }>();
  private readonly owner: ProcRef = { pid: process.pid, start: startTimeOf(process.pid) ?? '' };
  private destroying?: Promise<void>;
  private readonly birdDir: string;

  constructor(readonly prefix: string) {
    const host = (name: string, ip: string): RoutedHost => ({ name: name as LabHost['name'], ns: `${prefix}-${name}`, iface: 'eth0', ip, mac: macForIp(ip), switchPort: `p-${name}` });
    this.router = host('rt', ROUTER_IP);
    this.client = host('client', ROUTED_CLIENT_IP);
    this.nodes = NODE_IPS.map((ip, i) => host(`n${i + 1}`, ip));
    this.backends = BACKEND_IPS.map((ip, i) => host(`b${i + 1}`, ip));
    this.namespaces = ROLES.map((r) => `${prefix}-${r}`);
    this.birdDir = join('/run/nftfarm-lab', `${prefix}-bird`);
    registerLive(this);
    this.save();
  }

  async build(): Promise<void> {
    for (const ns of this.namespaces) await this.run(['ip', 'netns', 'add', ns]);
    for (const ns of this.namespaces) {
      await this.run(['ip', 'netns', 'exec', ns, 'sysctl', '-q', '-w', 'net.ipv6.conf.all.disable_ipv6=1', 'net.ipv6.conf.default.disable_ipv6=1']);
    }
    const sw = `${this.prefix}-sw`;
    await this.run(['ip', 'netns', 'exec', sw, 'sysctl', '-q', '-e', '-w', 'net.bridge.bridge-nf-call-iptables=0', 'net.bridge.bridge-nf-call-arptables=0']);
    const swCommands = ['link set lo up', 'link add br0 type bridge stp_state 0 forward_delay 0', 'link set br0 up'];
    for (const h of [this.router, ...this.nodes, ...this.backends]) {
      swCommands.push(`link add ${h.switchPort} type veth peer name eth0 address ${h.mac} netns ${h.ns}`, `link set ${h.switchPort} master br0 up`);
    }
    await this.run(['ip', '-n', sw, '-batch', '-'], `${swCommands.join('\n')}\n`);
    // The client's link goes straight to the router.
    await this.run(['ip', '-n', this.router.ns, 'link', 'add', 'eth1', 'address', macForIp(ROUTER_CLIENT_IP), 'type', 'veth', 'peer', 'name', 'eth0', 'address', this.client.mac, 'netns', this.client.ns]);
    for (const h of [this.router, this.client, ...this.nodes, ...this.backends]) {
      await this.run(['ip', '-n', h.ns, '-batch', '-'], `link set lo up\naddr add ${h.ip}/24 dev eth0\nlink set eth0 up\n`);
    }
    await this.run(['ip', '-n', this.router.ns, '-batch', '-'], `addr add ${ROUTER_CLIENT_IP}/24 dev eth1\nlink set eth1 up\n`);
    await this.run(['ip', 'netns', 'exec', this.router.ns, 'sysctl', '-q', '-w', 'net.ipv4.ip_forward=1', 'net.ipv4.fib_multipath_hash_policy=1', 'net.ipv4.conf.all.rp_filter=0', 'net.ipv4.conf.eth0.send_redirects=0', 'net.ipv4.conf.all.send_redirects=0']);
    await this.run(['ip', '-n', this.client.ns, 'route', 'add', 'default', 'via', ROUTER_CLIENT_IP]);
    for (const b of this.backends) await this.run(['ip', '-n', b.ns, 'route', 'add', 'default', 'via', ROUTER_IP]);
  }

  private async run(argv: string[], input?: string): Promise<void> {
    const r = await collectOutput(this.track(argv[0] as string, argv.slice(1), 'pipe'), input, 30_000);
    if (r.code !== 0) throw new Error(`${argv.join(' ')} failed: ${r.stderr.trim()}`);
  }

  exec(ns: string, argv: string[], opts: { input?: string; timeoutMs?: number } = {}): Promise<ExecResult> {
    return collectOutput(this.spawn(ns, argv), opts.input, opts.timeoutMs ?? 30_000);
  }

  async execOk(ns: string, argv: string[], opts: { input?: string; timeoutMs?: number } = {}): Promise<ExecResult> {
    const r = await this.exec(ns, argv, opts);
    if (r.code !== 0) throw new Error(`${argv.join(' ')} in ${ns} failed: ${r.stderr.trim() || r.stdout.trim()}`);
    return r;
  }

  spawn(ns: string, argv: string[], opts: { stdio?: StdioOptions; env?: NodeJS.ProcessEnv } = {}): ChildProcess {
    if (!this.namespaces.includes(ns)) throw new Error(`${ns} is not a namespace of lab ${this.prefix}`);
    return this.track('ip', ['netns', 'exec', ns, ...argv], opts.stdio ?? 'pipe', opts.env);
  }

  private track(cmd: string, args: string[], stdio: StdioOptions, env?: NodeJS.ProcessEnv): ChildProcess {
    if (this.destroying) throw new Error(`lab ${this.prefix} is destroyed`);
    const child = spawnChild(cmd, args, { stdio, env: env ?? process.env });
    const pid = child.pid;
    if (pid === undefined) return child;
    this.running.set(pid, { ref: { pid, start: startTimeOf(pid) ?? '' }, child });
    this.save();
    child.once('exit', () => {
      this.running.delete(pid);
      if (!this.destroying) this.save();
    });
    return child;
  }

  async stopProcess(child: ChildProcess, graceMs = 1000): Promise<void> {
    const tracked = child.pid === undefined ? undefined : this.running.get(child.pid);
    if (tracked) await stopStarted(tracked.ref, child, graceMs);
  }


  asLab(node: RoutedHost): Lab {
    const view = {
      prefix: `${this.prefix}-${node.name}`,
      lb: node,
      exec: (ns: string, argv: string[], opts?: { input?: string; timeoutMs?: number }) => this.exec(ns, argv, opts),
      spawn: (ns: string, argv: string[], opts?: { stdio?: StdioOptions; env?: NodeJS.ProcessEnv }) => this.spawn(ns, argv, opts),
    };
    return view as unknown as Lab;
  }

  async configureDsrBackends(vips: string[]): Promise<void> {
    for (const b of this.backends) {
      for (const vip of vips) await this.execOk(b.ns, ['ip', 'addr', 'replace', `${vip}/32`, 'dev', 'lo']);
      await this.execOk(b.ns, ['sysctl', '-q', '-w', 'net.ipv4.conf.all.arp_ignore=1', 'net.ipv4.conf.all.arp_announce=2', 'net.ipv4.conf.eth0.arp_ignore=1', 'net.ipv4.conf.eth0.arp_announce=2']);
    }
  }

  private spawnNode(ns: string, script: string, args: string[]): ChildProcess {
    const { argv, env } = labProgram(script, args);
    return this.spawn(ns, argv, { env, stdio: 'pipe' });
  }

  startHttpBackends(port: number): Promise<{ host: RoutedHost; child: ChildProcess }[]> {
    return Promise.all(
      this.backends.map(
        (host) =>
          new Promise<{ host: RoutedHost; child: ChildProcess }>((resolve, reject) => {
            const child = this.spawnNode(host.ns, 'backend-server.js', ['--name', host.name, '--exit-on-stdin-close', '--http-port', String(port)]);
            const stderr = tail(child.stderr!);
            const timer = setTimeout(() => reject(new Error(`backend ${host.name} not ready: ${stderr()}`)), 10_000);
            onLines(child.stdout!, (line) => {
              if (line.trim() !== 'ready') return;
              clearTimeout(timer);
              resolve({ host, child });
            });
          }),
      ),
    );
  }

  setHealthStatus(backend: { host: RoutedHost; child: ChildProcess }, status: number): Promise<void> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`${backend.host.name} did not take health ${status}`)), 10_000);
      onLines(backend.child.stdout!, (line) => {
        if (line.trim() !== `health ${status}`) return;
        clearTimeout(timer);
        resolve();
      });
      backend.child.stdin!.write(`health ${status}\n`);
    });
  }

  async startRouterBird(peers: readonly RoutedHost[], holdTime: number): Promise<ChildProcess> {
    mkdirSync(this.birdDir, { recursive: true });
    const conf = join(this.birdDir, 'bird.conf');
    const socket = join(this.birdDir, 'bird.ctl');
    const lines = [
      'log stderr all;',
      `router id ${ROUTER_IP};`,
      'protocol device { scan time 10; }',
      // ECMP: the BGP routes of the nodes (same attributes) merged into one multipath route.
      'protocol kernel { ipv4 { import none; export all; }; merge paths on; }',
    ];
    for (const p of peers) {
      lines.push(
        `protocol bgp ${p.name} { local ${ROUTER_IP} as ${ROUTER_ASN}; neighbor ${p.ip} as ${NODE_ASN}; hold time ${holdTime}; keepalive time ${Math.max(1, Math.floor(holdTime / 3))};`,
        '  connect retry time 1; error wait time 1, 5; graceful restart off;',
        '  ipv4 { import all; export none; }; }',
      );
    }
    writeFileSync(conf, `${lines.join('\n')}\n`);
    const child = this.spawn(this.router.ns, ['bird', '-f', '-c', conf, '-s', socket, '-P', join(this.birdDir, 'bird.pid')], { stdio: ['ignore', 'ignore', 'pipe'] });
    const stderr = tail(child.stderr!);
    const deadline = Date.now() + 10_000;
    while (!existsSync(socket)) {
      if (hasExited(child) || Date.now() > deadline) throw new Error(`router bird did not start: ${stderr()}`);
      await new Promise((r) => setTimeout(r, 50));
    }
    return child;
  }

  async routerPaths(vip: string): Promise<string[]> {
    const r = await this.exec(this.router.ns, ['ip', '-4', 'route', 'show', 'exact', `${vip}/32`]);
    return [...r.stdout.matchAll(/via (\d+\.\d+\.\d+\.\d+)/g)].map((m) => m[1] as string).sort();
  }

  private async runClient<T>(args: string[], timeoutMs: number): Promise<T> {
    const r = await collectOutput(this.spawnNode(this.client.ns, 'client.js', args), undefined, timeoutMs);
    if (r.code !== 0) throw new Error(`client ${args.join(' ')} failed: ${r.stderr.trim()}`);
    const last = r.stdout.trim().split('\n').pop() ?? '';
    return JSON.parse(last) as T;
  }

  httpMany(url: string, count: number, opts: { timeoutMs?: number } = {}): Promise<HttpManyResult> {
    const timeoutMs = opts.timeoutMs ?? 2000;
    return this.runClient(['http-many', '--url', url, '--count', String(count), '--timeout-ms', String(timeoutMs)], count * timeoutMs + 10_000);
  }

  startHold(host: string, port: number, count: number, opts: { intervalMs?: number; timeoutMs?: number } = {}): RoutedHold {
    const timeoutMs = opts.timeoutMs ?? 2000;
    const child = this.spawnNode(this.client.ns, 'client.js', ['hold', '--host', host, '--port', String(port), '--count', String(count), '--interval-ms', String(opts.intervalMs ?? 200), '--timeout-ms', String(timeoutMs)]);
    return followHoldClient(child, timeoutMs, () => void this.stopProcess(child));
  }

  destroy(): Promise<void> {
    this.destroying ??= this.teardown();
    return this.destroying;
  }

  private async teardown(): Promise<void> {
    await Promise.all([...this.running.values()].map((p) => stopStarted(p.ref, p.child, 1000)));
    this.cleanup();
  }

  destroySync(): void {
    this.destroying ??= Promise.resolve();
    for (const p of this.running.values()) signalRef(p.ref, 'SIGKILL');
    this.cleanup();
  }

  private cleanup(): void {
    deleteNamespacesSync([...this.namespaces].reverse());
    rmSync(this.birdDir, { recursive: true, force: true });
    removeState(this.prefix);
    unregisterLive(this);
  }

  private save(): void {
    writeState({ prefix: this.prefix, owner: this.owner, namespaces: [...this.namespaces], children: [...this.running.values()].map((p) => p.ref) });
  }
}

export { PACKAGE_ROOT };
