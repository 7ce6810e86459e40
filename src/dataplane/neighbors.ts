/**
 * Backend MAC addresses, from the kernel's ARP table. nftfarm never talks to DSR backends
 * over IP itself, so it asks the kernel to resolve them: a datagram to the discard port makes
 * the kernel ARP for the address (on a miss) or revalidate a stale entry (which follows a
 * backend whose MAC changed). The last MAC seen is remembered across restarts, so flows
 * pinned to a backend survive a restart even when the kernel has forgotten the entry.
 */
import dgram from 'node:dgram';
import type { Logger } from 'pino';
import type { HostInterface, HostNetwork, NeighborEntry } from './netlink/host-network.js';

export interface NeighborMemory {
  knownNeighbors(): { interface: string; ip: string; mac: string }[];
  rememberNeighbor(iface: string, ip: string, mac: string): void;
}

/** States in which the kernel's MAC is current. FAILED/INCOMPLETE entries hold none. */
const VALID_STATES = new Set(['reachable', 'stale', 'delay', 'probe', 'permanent', 'noarp']);
const validMac = (e: NeighborEntry): string | null => (e.mac && VALID_STATES.has(e.state) ? e.mac : null);
const DISCARD_PORT = 9;
/** How often an unresolved backend is asked for again. */
const MISS_PROBE_INTERVAL_MS = 1000;
/** How often a resolved but stale entry is revalidated. */
const STALE_PROBE_INTERVAL_MS = 30_000;

export interface Lookup {
  mac: string | null;
  /** From the kernel now, or only remembered. */
  source: 'kernel' | 'remembered' | 'none';
}

export class NeighborTable {
  private entries = new Map<string, NeighborEntry>();
  private readonly remembered = new Map<string, string>();
  private readonly lastProbe = new Map<string, number>();
  private socket: dgram.Socket | null = null;
  /** IPv6 backends are probed from a socket of their family (the kernel then solicits them). */
  private socket6: dgram.Socket | null = null;

  constructor(
    private readonly net: HostNetwork,
    private readonly memory: NeighborMemory,
    private readonly log: Logger,
  ) {
    for (const n of memory.knownNeighbors()) this.remembered.set(`${n.interface}|${n.ip}`, n.mac);
  }

  /**
   * Reads the kernel's ARP table (one netlink dump), remembers the MACs it shows, and returns
   * the addresses whose answer (`lookup`) changed: only farms with those backends need a pass.
   * An entry that appears, goes stale or disappears with the MAC already remembered changes
   * no answer (after a start, the kernel resolving backends the store remembered woke every
   * farm that uses them: 10,000 farms re-planned for nothing, 1.6 s).
   */
  async refresh(interfaces: readonly { index: number; name: string }[]): Promise<Set<string>> {
    const names = new Map(interfaces.map((i) => [i.index, i.name]));
    const entries = await this.net.listNeighbors();
    const fresh = new Map(entries.map((e) => [`${e.ifindex}|${e.ip}`, e]));
    const keyed = new Map<string, { ifindex: number; ip: string }>();
    for (const e of [...this.entries.values(), ...entries]) keyed.set(`${e.ifindex}|${e.ip}`, e);
    const answer = ({ ifindex, ip }: { ifindex: number; ip: string }) => this.lookup(ifindex, names.get(ifindex) ?? '', ip).mac;
    const before = new Map([...keyed].map(([k, e]) => [k, answer(e)]));
    this.entries = fresh;
    for (const e of entries) {
      const mac = validMac(e);
      const ifname = names.get(e.ifindex);
      if (!mac || ifname === undefined) continue;
      const key = `${ifname}|${e.ip}`;
      if (this.remembered.get(key) === mac) continue;
      if (this.remembered.has(key)) this.log.info({ ip: e.ip, interface: ifname, from: this.remembered.get(key), to: mac }, 'backend MAC address changed');
      this.remembered.set(key, mac);
      this.memory.rememberNeighbor(ifname, e.ip, mac);
    }
    const changed = new Set<string>();
    for (const [k, e] of keyed) if (answer(e) !== before.get(k)) changed.add(e.ip);
    return changed;
  }

  /** The MAC to send to: the kernel's current one, or the last one remembered. Reads only. */
  lookup(ifindex: number, ifname: string, ip: string): Lookup {
    const entry = this.entries.get(`${ifindex}|${ip}`);
    const mac = entry ? validMac(entry) : null;
    if (mac) return { mac, source: 'kernel' };
    const remembered = this.remembered.get(`${ifname}|${ip}`);
    return remembered ? { mac: remembered, source: 'remembered' } : { mac: null, source: 'none' };
  }

  /** `macOf` for the desired state: the MAC to send to for an IP on an interface, or null. */
  macLookup(interfaces: readonly HostInterface[]): (ifindex: number, ip: string) => string | null {
    const names = new Map(interfaces.map((i) => [i.index, i.name]));
    return (ifindex, ip) => this.lookup(ifindex, names.get(ifindex) ?? '', ip).mac;
  }

  /** Asks the kernel to resolve or revalidate the backends that need it; rate-limited per IP. */
  probe(backends: readonly { ifindex: number; ip: string }[], now = Date.now()): void {
    for (const { ifindex, ip } of backends) {
      const entry = this.entries.get(`${ifindex}|${ip}`);
      const valid = entry && entry.mac && VALID_STATES.has(entry.state);
      const interval = !valid ? MISS_PROBE_INTERVAL_MS : entry.state === 'stale' ? STALE_PROBE_INTERVAL_MS : Infinity;
      const last = this.lastProbe.get(ip) ?? -Infinity;
      if (now - last < interval) continue;
      this.lastProbe.set(ip, now);
      this.send(ip);
    }
  }

  close(): void {
    this.socket?.close();
    this.socket = null;
    this.socket6?.close();
    this.socket6 = null;
  }

  private send(ip: string): void {
    const v6 = ip.includes(':');
    let socket = v6 ? this.socket6 : this.socket;
    if (!socket) {
      socket = dgram.createSocket(v6 ? 'udp6' : 'udp4');
      socket.on('error', (err) => this.log.debug({ err }, 'neighbour probe socket error'));
      socket.unref();
      if (v6) this.socket6 = socket;
      else this.socket = socket;
    }
    socket.send(Buffer.alloc(0), DISCARD_PORT, ip, (err) => {
      if (err) this.log.debug({ err, ip }, 'neighbour probe not sent');
    });
  }
}
