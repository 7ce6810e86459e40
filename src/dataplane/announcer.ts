/**
 * Makes this host answer ARP for the VIPs of running farms, with a proxy neighbour entry per
 * VIP and what the kernel needs for it to answer (checked on this kernel): forwarding on the
 * interface, a unicast route for the VIP through another device (lo), proxy_delay 0.
 * The VIP routes carry nftfarm's route protocol: they are the record of what nftfarm
 * announced, so a restart (even after kill -9) finds and removes what is no longer wanted.
 */
import fs from 'node:fs';
import type { Logger } from 'pino';
import type { Announcement, VipInterface } from '../reconcile/desired.js';
import { HostNetworkError, type HostNetwork } from './netlink/host-network.js';

/** Where the settings nftfarm changes are kept, with their value from before. */
export interface SettingsMemory {
  savedKernelSettings(): Map<string, string>;
  saveKernelSetting(name: string, value: string): void;
  forgetKernelSetting(name: string): void;
}

export interface Sysctl {
  read(path: string): string;
  write(path: string, value: string): void;
}

export const procSysctl: Sysctl = {
  read: (p) => fs.readFileSync(`/proc/sys/${p}`, 'utf8').trim(),
  write: (p, v) => fs.writeFileSync(`/proc/sys/${p}`, `${v}\n`),
};

const LOOPBACK_IFINDEX = 1;
const forwardingKey = (ifname: string) => `net/ipv4/conf/${ifname}/forwarding`;
const redirectsKey = (ifname: string) => `net/ipv4/conf/${ifname}/send_redirects`;
const proxyDelayKey = (ifname: string) => `neigh/${ifname}/proxy_delay_ms`;

/**
 * The sysctl values the farms need, with why (logged when set):
 * - forwarding on a VIP interface: proxy ARP answers only on interfaces that forward;
 * - forwarding where nat, dnat and stateless_dnat traffic comes in: the host routes it;
 * - no ICMP redirects there: on a one-armed segment traffic leaves by the interface it came
 *   in, and a redirect would tell clients and backends to bypass the load balancer. The
 *   kernel sends them when `all` or the interface says so: both are turned off.
 */
export function wantedKernelSettings(announced: readonly Announcement[], routed: readonly VipInterface[]): Map<string, { value: string; why: string }> {
  const out = new Map<string, { value: string; why: string }>();
  for (const a of announced) out.set(forwardingKey(a.iface.name), { value: '1', why: 'proxy ARP for the VIPs needs forwarding' });
  for (const i of routed) {
    out.set(forwardingKey(i.name), { value: '1', why: 'nat, dnat and stateless_dnat farms route through this interface' });
    out.set(redirectsKey(i.name), { value: '0', why: 'a one-armed load balancer must not send ICMP redirects' });
  }
  if (routed.length > 0) out.set(redirectsKey('all'), { value: '0', why: 'a one-armed load balancer must not send ICMP redirects' });
  return out;
}

export class VipAnnouncer {
  constructor(
    private readonly net: HostNetwork,
    private readonly memory: SettingsMemory,
    private readonly log: Logger,
    private readonly sysctl: Sysctl = procSysctl,
  ) {}

  /** Withdraws what is no longer wanted. Runs before the rules for those VIPs go away. */
  async retract(wanted: readonly Announcement[], routed: readonly VipInterface[] = []): Promise<void> {
    const wantedIfindex = new Map(wanted.map((a) => [a.vip, a.iface.index]));
    const owned = new Set((await this.net.listOwnedRoutes()).filter((r) => r.prefixLength === 32).map((r) => r.ip));
    const proxies = await this.net.listProxyNeighbors();
    for (const p of proxies) {
      // Only proxies for VIPs nftfarm announced (it holds their route) are nftfarm's to remove.
      if (owned.has(p.ip) && wantedIfindex.get(p.ip) !== p.ifindex) {
        await this.net.deleteProxyNeighbor(p.ifindex, p.ip);
        this.log.info({ vip: p.ip, ifindex: p.ifindex }, 'VIP no longer announced');
      }
    }
    for (const vip of owned) if (!wantedIfindex.has(vip)) await this.net.deleteVipRoute(vip);

    const announcedInterfaces = new Set(wanted.map((a) => a.iface.name));
    const settings = wantedKernelSettings(wanted, routed);
    for (const [name, value] of this.memory.savedKernelSettings()) {
      const ifname = name.split('/')[name.startsWith('neigh/') ? 1 : 3] as string;
      if (name.startsWith('neigh/') ? announcedInterfaces.has(ifname) : settings.has(name)) continue;
      await this.restore(name, ifname, value);
      this.memory.forgetKernelSetting(name);
    }
  }

  /** Announces every wanted VIP. Runs after the rules for them exist. */
  async announce(wanted: readonly Announcement[], routed: readonly VipInterface[] = []): Promise<void> {
    for (const [name, { value, why }] of wantedKernelSettings(wanted, routed)) {
      const current = this.sysctl.read(name);
      if (current === value) continue;
      this.memory.saveKernelSetting(name, current);
      this.sysctl.write(name, value);
      this.log.info({ setting: name, from: current, to: value, why }, 'changed a kernel setting the farms need');
    }
    const interfaces = new Map(wanted.map((a) => [a.iface.name, a.iface]));
    for (const iface of interfaces.values()) {
      // The default proxy_delay answers 0-800 ms late; clients would retry their first packet.
      const delay = await this.net.getProxyDelay(iface.index);
      if (delay !== 0) {
        this.memory.saveKernelSetting(proxyDelayKey(iface.name), String(delay));
        await this.net.setProxyDelay(iface.index, 0);
      }
    }
    // Only what is missing: this runs on every pass, and repairs entries someone removed.
    const routes = new Set((await this.net.listOwnedRoutes()).map((r) => r.ip));
    const proxies = new Set((await this.net.listProxyNeighbors()).map((p) => `${p.ifindex}|${p.ip}`));
    for (const a of wanted) {
      const missingRoute = !routes.has(a.vip);
      const missingProxy = !proxies.has(`${a.iface.index}|${a.vip}`);
      if (missingRoute) await this.addRoute(a.vip);
      if (missingProxy) await this.net.addProxyNeighbor(a.iface.index, a.vip);
      if (missingRoute || missingProxy) this.log.info({ vip: a.vip, interface: a.iface.name }, 'VIP announced (proxy ARP)');
    }
  }

  private async addRoute(vip: string): Promise<void> {
    try {
      await this.net.addVipRoute(vip);
    } catch (err) {
      // A route through lo needs lo up; a fresh network namespace starts with it down.
      if (!(err instanceof HostNetworkError && err.code === 'ENETDOWN')) throw err;
      this.log.warn('the loopback interface was down: setting it up for the VIP routes');
      await this.net.setLinkUp(LOOPBACK_IFINDEX);
      await this.net.addVipRoute(vip);
    }
  }

  private async restore(name: string, ifname: string, value: string): Promise<void> {
    try {
      if (name.startsWith('neigh/')) {
        const iface = (await this.net.listInterfaces()).find((i) => i.name === ifname);
        if (iface) await this.net.setProxyDelay(iface.index, Number(value));
      } else if (fs.existsSync(`/proc/sys/${name}`)) {
        this.sysctl.write(name, value);
      }
      this.log.info({ setting: name, value }, 'restored a kernel setting nftfarm no longer needs');
    } catch (err) {
      this.log.warn({ err, setting: name }, 'could not restore a kernel setting (the interface may be gone)');
    }
  }
}
