// nftfarm's only rtnetlink client: links, addresses, the ARP table, proxy ARP entries,
// the VIP routes nftfarm owns and the per-interface proxy_delay, over the npm `netlink`
// package, in the network namespace of the current process; notifications through
// `ip monitor` (watch()).
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createRtNetlink, FlagsNew, rt, type RtNetlinkSocket } from 'netlink';
import { HostNetworkError, toHostNetworkError } from './errors.js';
import { formatIPv4, parseIPv4 } from './ipv4.js';
import { bufferToIpv6, ipFamily, ipv6ToBuffer } from '../../model/ip.js';

export { HostNetworkError, type HostNetworkErrorKind } from './errors.js';

export interface HostAddress { address: string; prefixLength: number }
/** `mac` is lower-case "aa:bb:cc:dd:ee:ff" ("" for links without a hardware address); `up` is IFF_UP. */
export interface HostInterface { name: string; index: number; mac: string; up: boolean; addresses: HostAddress[] }
export type NeighborState = 'incomplete' | 'reachable' | 'stale' | 'delay' | 'probe' | 'failed' | 'noarp' | 'permanent' | 'none';
export interface NeighborEntry { ip: string; ifindex: number; mac: string | null; state: NeighborState }

/** rtm_protocol value marking routes nftfarm owns. */
export const NFTFARM_ROUTE_PROTOCOL = 222;

export interface HostNetwork {
  /** All links sorted by ifindex, each with its IPv4 and global IPv6 addresses (IFA_LOCAL); loopback is named 'lo'. */
  listInterfaces(): Promise<HostInterface[]>;
  /** The IPv4 ARP table and the IPv6 neighbour table, without proxy entries. */
  listNeighbors(): Promise<NeighborEntry[]>;
  listProxyNeighbors(): Promise<{ ip: string; ifindex: number }[]>;
  /** Idempotent: an existing entry is success. */
  addProxyNeighbor(ifindex: number, ip: string): Promise<void>;
  /** Idempotent: a missing entry (or a vanished interface) is success. */
  deleteProxyNeighbor(ifindex: number, ip: string): Promise<void>;
  /** Main-table (or `table`) IPv4 routes whose protocol is NFTFARM_ROUTE_PROTOCOL. */
  listOwnedRoutes(table?: number): Promise<{ ip: string; prefixLength: number; ifindex: number }[]>;
  /**
   * Installs (replaces) `ip/32 dev lo proto 222` in the main table. Proxy ARP answers only when
   * the VIP has a unicast route through a device other than the one the request came in on.
   * Fails with code ENETDOWN while lo is down (fresh namespaces): see setLinkUp.
   */
  addVipRoute(ip: string, table?: number): Promise<void>;
  /** Idempotent; deletes only a route carrying NFTFARM_ROUTE_PROTOCOL, never someone else's. */
  deleteVipRoute(ip: string, table?: number): Promise<void>;
  /**
   * proxy_delay of the interface's ARP parameters, in milliseconds (NDTPA_PROXY_DELAY over
   * RTM_SETNEIGHTBL). The kernel stores jiffies, so values read back are rounded to the tick;
   * the sysctl net.ipv4.neigh.<if>.proxy_delay shows the same value in USER_HZ (1/100 s).
   */
  setProxyDelay(ifindex: number, ms: number, family?: 4 | 6): Promise<void>;
  getProxyDelay(ifindex: number, family?: 4 | 6): Promise<number>;
  /** Sets a link administratively up (IFF_UP), e.g. `lo` in a fresh namespace. */
  setLinkUp(ifindex: number): Promise<void>;
  /**
   * Calls onChange after RTNLGRP_NEIGH notifications (at least once for a burst), after lost
   * ones (receive buffer overrun), once the watch is in place and when it had to start again:
   * the caller re-reads the table. Proxy entries send no notifications. Returns the
   * unsubscribe function.
   */
  watchNeighbors?(onChange: () => void): () => void;
  /**
   * Calls onChange after link or address notifications (an interface or address added,
   * removed, up or down), as watchNeighbors does. Returns the unsubscribe function.
   */
  watchInterfaces?(onChange: () => void): () => void;
  /** Closes the sockets; later calls reject, requests in flight reject at their 5 s timeout. */
  close(): void;
}

const AF_INET = 2;
const AF_INET6 = 10;
const ARP_TABLE_NAME = 'arp_cache';
const NDISC_TABLE_NAME = 'ndisc_cache';
/** The netlink family and the address bytes of an IPv4 or IPv6 address. */
const familyOf = (ip: string): { family: number; dst: Buffer; bits: number } =>
  ipFamily(ip) === 6 ? { family: AF_INET6, dst: ipv6ToBuffer(ip), bits: 128 } : { family: AF_INET, dst: ipv4ToBuffer(ip), bits: 32 };
/** The text of a netlink address of either family (4 or 16 bytes). */
const bufferToIp = (buf: Buffer): string => (buf.length === 16 ? bufferToIpv6(buf) : bufferToIPv4(buf));
const isFamily = (f: number | undefined): boolean => f === AF_INET || f === AF_INET6;
/** The kernel gives every namespace's loopback device ifindex 1 (LOOPBACK_IFINDEX). */
const LOOPBACK_IFINDEX = 1;
const REQUEST_TIMEOUT_MS = 5000;
/** The package's RouteProtocol enum lists only well-known values; the kernel stores any u8 as given. */
const OWNED_PROTOCOL = NFTFARM_ROUTE_PROTOCOL as rt.RouteProtocol;

const NEIGHBOR_STATES: readonly Exclude<NeighborState, 'none'>[] = [
  'permanent', 'noarp', 'reachable', 'stale', 'delay', 'probe', 'failed', 'incomplete',
];

export function openHostNetwork(): HostNetwork {
  return new NetlinkHostNetwork();
}

class NetlinkHostNetwork implements HostNetwork {
  private readonly socket: RtNetlinkSocket = openSocket();
  /** The `ip monitor` of each kind of object watched (watch()). */
  private readonly monitors = new Map<string, SharedMonitor>();
  /** Tail of the request queue; never rejects. */
  private queue: Promise<unknown> = Promise.resolve();
  private closed = false;

  async listInterfaces(): Promise<HostInterface[]> {
    const [links, addrs4, addrs6] = await this.run('list interfaces', async (s) => [
      await s.getLinks(undefined, undefined, { timeout: REQUEST_TIMEOUT_MS }),
      await s.getAddresses({ family: AF_INET }, undefined, { timeout: REQUEST_TIMEOUT_MS }),
      await s.getAddresses({ family: AF_INET6 }, undefined, { timeout: REQUEST_TIMEOUT_MS }),
    ] as const);
    const byIndex = new Map<number, HostInterface>();
    for (const link of links) {
      const index = link.data.index ?? 0;
      byIndex.set(index, {
        name: link.attrs.ifname ?? '',
        index,
        mac: link.attrs.address ? formatMac(link.attrs.address) : '',
        up: link.data.flags?.up === true,
        addresses: [],
      });
    }
    for (const addr of [...addrs4, ...addrs6]) {
      if (!isFamily(addr.data.family)) continue;
      // IFA_LOCAL is the interface's own address; IFA_ADDRESS is the peer on point-to-point links.
      const raw = addr.attrs.local ?? addr.attrs.address;
      const iface = byIndex.get(addr.data.index ?? -1);
      if (raw === undefined || iface === undefined || (raw.length !== 4 && raw.length !== 16)) continue;
      const address = bufferToIp(raw);
      // Link-local IPv6 networks (fe80::/64 on every link) hold no VIP or backend.
      if (raw.length === 16 && raw[0] === 0xfe && (raw[1]! & 0xc0) === 0x80) continue;
      iface.addresses.push({ address, prefixLength: addr.data.prefixlen ?? (raw.length === 16 ? 128 : 32) });
    }
    return [...byIndex.values()].sort((a, b) => a.index - b.index);
  }

  async listNeighbors(): Promise<NeighborEntry[]> {
    const msgs = await this.run('list neighbours', async (s) => [
      ...(await s.getNeighbors({ family: AF_INET }, undefined, { timeout: REQUEST_TIMEOUT_MS })),
      ...(await s.getNeighbors({ family: AF_INET6 }, undefined, { timeout: REQUEST_TIMEOUT_MS })),
    ]);
    const entries: NeighborEntry[] = [];
    for (const m of msgs) {
      const bytes = m.data.family === AF_INET ? 4 : 16;
      if (!isFamily(m.data.family) || m.data.flags?.proxy || m.attrs.dst?.length !== bytes) continue;
      entries.push({
        ip: bufferToIp(m.attrs.dst),
        ifindex: m.data.ifindex ?? 0,
        mac: m.attrs.lladdr && m.attrs.lladdr.length > 0 ? formatMac(m.attrs.lladdr) : null,
        state: neighborState(m.data.state),
      });
    }
    return entries;
  }

  async listProxyNeighbors(): Promise<{ ip: string; ifindex: number }[]> {
    // Without NTF_PROXY in the request the kernel dumps the ARP table, not the proxy entries.
    const msgs = await this.run('list proxy neighbours', async (s) => [
      ...(await s.getNeighbors({ family: AF_INET, flags: { proxy: true } }, undefined, { timeout: REQUEST_TIMEOUT_MS })),
      ...(await s.getNeighbors({ family: AF_INET6, flags: { proxy: true } }, undefined, { timeout: REQUEST_TIMEOUT_MS })),
    ]);
    const entries: { ip: string; ifindex: number }[] = [];
    for (const m of msgs) {
      const bytes = m.data.family === AF_INET ? 4 : 16;
      if (!isFamily(m.data.family) || m.attrs.dst?.length !== bytes) continue;
      entries.push({ ip: bufferToIp(m.attrs.dst), ifindex: m.data.ifindex ?? 0 });
    }
    return entries;
  }

  async addProxyNeighbor(ifindex: number, ip: string): Promise<void> {
    const { family, dst } = familyOf(ip);
    await this.run(`add proxy neighbour ${ip} on ifindex ${ifindex}`, (s) =>
      s.newNeighbor({ family, ifindex, flags: { proxy: true } }, { dst },
        { flags: FlagsNew.CREATE | FlagsNew.EXCL, timeout: REQUEST_TIMEOUT_MS }),
    ).catch(ignoreKind('exists'));
  }

  async deleteProxyNeighbor(ifindex: number, ip: string): Promise<void> {
    const { family, dst } = familyOf(ip);
    await this.run(`delete proxy neighbour ${ip} on ifindex ${ifindex}`, (s) =>
      s.delNeighbor({ family, ifindex, flags: { proxy: true } }, { dst }, { timeout: REQUEST_TIMEOUT_MS }),
    ).catch(ignoreKind('not-found'));
  }

  async listOwnedRoutes(inTable: number = rt.RoutingTableClass.MAIN): Promise<{ ip: string; prefixLength: number; ifindex: number }[]> {
    // Without strict dump checking the kernel ignores filters in the request: filter here.
    const msgs = await this.run('list routes', async (s) => [
      ...(await s.getRoutes({ family: AF_INET }, undefined, { timeout: REQUEST_TIMEOUT_MS })),
      ...(await s.getRoutes({ family: AF_INET6 }, undefined, { timeout: REQUEST_TIMEOUT_MS })),
    ]);
    const routes: { ip: string; prefixLength: number; ifindex: number }[] = [];
    for (const m of msgs) {
      const table = m.attrs.table ?? m.data.table;
      if (!isFamily(m.data.family) || table !== inTable) continue;
      if (routeProtocolNumber(m.data.protocol) !== NFTFARM_ROUTE_PROTOCOL) continue;
      routes.push({
        ip: m.attrs.dst ? bufferToIp(m.attrs.dst) : m.data.family === AF_INET6 ? '::' : '0.0.0.0',
        prefixLength: m.data.dstLen ?? 0,
        ifindex: m.attrs.oif ?? 0,
      });
    }
    return routes;
  }

  async addVipRoute(ip: string, table: number = rt.RoutingTableClass.MAIN): Promise<void> {
    const { family, dst, bits } = familyOf(ip);
    await this.run(`add route ${ip}/${bits} dev lo`, (s) =>
      s.newRoute(
        {
          family, dstLen: bits, table,
          protocol: OWNED_PROTOCOL, scope: 'LINK', type: 'UNICAST',
        },
        { dst, oif: LOOPBACK_IFINDEX },
        { flags: FlagsNew.CREATE | FlagsNew.REPLACE, timeout: REQUEST_TIMEOUT_MS },
      ));
  }

  async deleteVipRoute(ip: string, table: number = rt.RoutingTableClass.MAIN): Promise<void> {
    const { family, dst, bits } = familyOf(ip);
    await this.run(`delete route ${ip}/${bits}`, (s) =>
      s.delRoute(
        // The kernel matches rtm_scope exactly unless it is NOWHERE (the package's default 0
        // = UNIVERSE never matches a scope-link route: ESRCH). A non-zero protocol must match.
        {
          family, dstLen: bits, table,
          protocol: OWNED_PROTOCOL, scope: 'NOWHERE',
        },
        { dst },
        { timeout: REQUEST_TIMEOUT_MS },
      ),
    ).catch(ignoreKind('not-found'));
  }

  async setProxyDelay(ifindex: number, ms: number, ipFamily: 4 | 6 = 4): Promise<void> {
    if (!Number.isInteger(ms) || ms < 0) {
      throw new HostNetworkError('other', `proxy_delay must be a non-negative integer of ms, got ${ms}`);
    }
    await this.run(`set proxy_delay of ifindex ${ifindex}`, (s) =>
      s.setNeighborTable({ family: ipFamily === 6 ? AF_INET6 : AF_INET },
        { name: ipFamily === 6 ? NDISC_TABLE_NAME : ARP_TABLE_NAME, parms: { ifindex, proxyDelay: BigInt(ms) } },
        { timeout: REQUEST_TIMEOUT_MS }));
  }

  async getProxyDelay(ifindex: number, ipFamily: 4 | 6 = 4): Promise<number> {
    // RTM_GETNEIGHTBL only works as a dump (a plain GET answers EOPNOTSUPP).
    const tables = await this.run('list neighbour tables', (s) =>
      s.getNeighborTables({ family: ipFamily === 6 ? AF_INET6 : AF_INET }, undefined, { timeout: REQUEST_TIMEOUT_MS }));
    for (const t of tables) {
      const parms = t.attrs.parms;
      if (t.attrs.name !== (ipFamily === 6 ? NDISC_TABLE_NAME : ARP_TABLE_NAME) || parms?.ifindex !== ifindex) continue;
      if (parms.proxyDelay === undefined) break;
      return Number(parms.proxyDelay);
    }
    throw new HostNetworkError('not-found', `get proxy_delay: no ARP parameters for ifindex ${ifindex}`);
  }

  async setLinkUp(ifindex: number): Promise<void> {
    await this.run(`set ifindex ${ifindex} up`, (s) =>
      s.setLink({ index: ifindex, change: { up: true }, flags: { up: true } }, undefined,
        { timeout: REQUEST_TIMEOUT_MS }));
  }

  watchNeighbors(onChange: () => void): () => void {
    return this.watch(['neigh'], onChange);
  }

  watchInterfaces(onChange: () => void): () => void {
    return this.watch(['link', 'address'], onChange);
  }

  /**
   * Notifications come through `ip monitor`, not a netlink socket of this process: when
   * notifications overflow a socket's receive buffer (a flood of ARP changes while the event
   * loop is busy), the kernel sets the socket's error, and the `netlink` package's poll
   * handler then throws from C++ and aborts the whole daemon (measured: 15,000 neighbour
   * changes in a second did). `ip monitor` reports the overflow ("netlink receive error ...
   * No buffer space available") on stderr and goes on: any output means "read again". One
   * monitor per kind of object, shared by its subscribers.
   */
  private watch(objects: string[], onChange: () => void): () => void {
    if (this.closed) throw new HostNetworkError('other', 'watch: host network is closed');
    const key = objects.join(' ');
    let shared = this.monitors.get(key);
    if (!shared) {
      const listeners = new Set<() => void>();
      const callAll = () => {
        for (const listener of [...listeners]) listener();
      };
      const entry: SharedMonitor = { listeners, ready: false, stop: () => undefined };
      entry.stop = startMonitor(objects, {
        change: callAll,
        ready: () => {
          entry.ready = true;
          callAll();
        },
      });
      this.monitors.set(key, entry);
      shared = entry;
    }
    const monitor = shared;
    const listener = () => onChange();
    monitor.listeners.add(listener);
    // Joined a monitor already in place: this subscriber's first call (see watchNeighbors).
    if (monitor.ready) {
      setImmediate(() => {
        if (monitor.listeners.has(listener)) listener();
      });
    }
    return () => {
      if (!monitor.listeners.delete(listener) || monitor.listeners.size > 0) return;
      monitor.stop();
      if (this.monitors.get(key) === monitor) this.monitors.delete(key);
    };
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    for (const monitor of this.monitors.values()) monitor.stop();
    this.monitors.clear();
    this.socket.socket.close();
  }

  /**
   * Runs one operation at a time: a second dump on the same socket while one is in progress
   * makes the kernel answer EBUSY, and the package then fails the first dump as well.
   */
  private run<T>(operation: string, f: (s: RtNetlinkSocket) => Promise<T>): Promise<T> {
    if (this.closed) {
      return Promise.reject(new HostNetworkError('other', `${operation}: host network is closed`));
    }
    const result = this.queue.then(() => f(this.socket));
    this.queue = result.catch(() => undefined);
    return result.catch((err: unknown) => {
      throw toHostNetworkError(operation, err);
    });
  }
}

/** How long a monitor that ended waits before it is started again. */
const MONITOR_RESTART_MS = 1000;
/** How long a starting monitor is waited for before the first read anyway. */
const MONITOR_READY_MS = 2000;

/**
 * `ip monitor OBJECTS` in the background, ended by a reader of stdin when it reaches its end;
 * sh ends with the monitor (so a monitor that dies is seen, and started again).
 */
// (The reader takes stdin as fd 3: an asynchronous list's own stdin is /dev/null.)
const MONITOR_SCRIPT = 'exec 3<&0; ip monitor "$@" 3<&- & m=$!; { read _ <&3; kill $m; } >/dev/null 2>&1 & exec 3<&-; wait $m';

interface SharedMonitor {
  listeners: Set<() => void>;
  /** Its socket has joined the groups once (later subscribers get their first call at once). */
  ready: boolean;
  stop: () => void;
}

/**
 * Runs `ip monitor OBJECTS`: change() after its output (and when it ended: it is started
 * again a little later), ready() once its socket has joined the groups (it shows in
 * /proc/net/netlink under the monitor's pid; after MONITOR_READY_MS at the latest), so that
 * whatever changed while it started is read again. Returns the function that stops it.
 */
function startMonitor(objects: string[], on: { change: () => void; ready: () => void }): () => void {
  let stopped = false;
  let monitor: ChildProcess | null = null;
  /** The restart, or the next look for readiness. */
  let timer: NodeJS.Timeout | undefined;
  const start = () => {
    // Through sh, which ends `ip monitor` once its stdin (a pipe from this process) closes:
    // on stop, and when the daemon ends, even by SIGKILL (else it would live on until its
    // next write).
    const child = spawn('sh', ['-c', MONITOR_SCRIPT, 'sh', ...objects], { stdio: ['pipe', 'pipe', 'pipe'] });
    monitor = child;
    const changed = () => {
      if (!stopped) on.change();
    };
    child.stdout.on('data', changed);
    child.stderr.on('data', changed);
    child.stdin.on('error', () => undefined);
    child.on('error', () => undefined); // 'close' follows (or it never came up: see below)
    child.on('close', () => {
      child.stdin.destroy();
      if (stopped || monitor !== child) return;
      clearTimeout(timer);
      monitor = null;
      // Changes may have gone unseen: read again, and watch again a little later.
      on.change();
      timer = setTimeout(start, MONITOR_RESTART_MS);
      timer.unref();
    });
    const startedAt = Date.now();
    const poll = () => {
      if (stopped || monitor !== child) return;
      if (child.pid !== undefined && !subscribed(child.pid) && Date.now() - startedAt < MONITOR_READY_MS) {
        timer = setTimeout(poll, 5);
        timer.unref();
        return;
      }
      on.ready();
    };
    poll();
  };
  start();
  return () => {
    if (stopped) return;
    stopped = true;
    clearTimeout(timer);
    monitor?.stdin?.end();
    monitor = null;
  };
}

/** Whether a child of the process (the monitor under sh) has an rtnetlink socket that joined multicast groups. */
function subscribed(shPid: number): boolean {
  let table: string;
  let children: string[];
  try {
    children = readFileSync(`/proc/${shPid}/task/${shPid}/children`, 'utf8').trim().split(/\s+/);
    table = readFileSync('/proc/net/netlink', 'utf8');
  } catch {
    return false; // not yet (or gone: then 'close' comes)
  }
  // sk Eth Pid Groups ...: a socket's port id is the pid of its process (its first socket).
  return table.split('\n').some((line) => {
    const f = line.trim().split(/\s+/);
    return f[1] === '0' && children.includes(f[2] as string) && f[3] !== undefined && /[1-9a-f]/.test(f[3]);
  });
}

/**
 * An rtnetlink socket with an 'error' listener: the package re-emits receive errors as
 * 'error' events, which crash the process unheard; a request that lost its answer times out.
 */
function openSocket(): RtNetlinkSocket {
  const socket = createRtNetlink();
  socket.socket.on('error', () => undefined);
  return socket;
}

function ignoreKind(kind: HostNetworkError['kind']): (err: unknown) => void {
  return (err: unknown) => {
    if (err instanceof HostNetworkError && err.kind === kind) return;
    throw err;
  };
}

function neighborState(state: rt.NeighborState | undefined): NeighborState {
  if (state === undefined) return 'none';
  return NEIGHBOR_STATES.find((name) => state[name] === true) ?? 'none';
}

/** The package reports known protocols by enum name ('KERNEL') and unknown ones (222) as numbers. */
function routeProtocolNumber(protocol: rt.Route['protocol']): number | undefined {
  if (protocol === undefined || typeof protocol === 'number') return protocol;
  return rt.RouteProtocol[protocol];
}

function ipv4ToBuffer(ip: string): Buffer {
  const n = parseIPv4(ip);
  if (n === null) throw new HostNetworkError('other', `not an IPv4 address: "${ip}"`);
  const buf = Buffer.alloc(4);
  buf.writeUInt32BE(n);
  return buf;
}

function bufferToIPv4(buf: Buffer): string {
  return formatIPv4(buf.readUInt32BE(0));
}

function formatMac(buf: Buffer): string {
  return [...buf].map((b) => b.toString(16).padStart(2, '0')).join(':');
}
