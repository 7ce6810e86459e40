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
import { isIpv6Text } from '../model/ip.js';

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
const proxyDelay6Key = (ifname: string) => `neigh6/${ifname}/proxy_delay_ms`;
const ipv6Key = (ifname: string, name: string) => `net/ipv6/conf/${ifname}/${name}`;

/**
 * IPv6 VIPs have no route through lo: the kernel turns an IPv6 route through the loopback
 * device into a reject route, which would also refuse the unicast neighbour solicitations
 * proxy NDP must answer (they take the forwarding path). The record of what nftfarm announced
 * is kept as a route in this table instead, which no rule consults.
 */
export const IPV6_VIP_RECORD_TABLE = 223;

/** A setting changed only from these values (accept_ra: 1 becomes 2, 0 stays 0). */
export interface WantedSetting {
  value: string;
  why: string;
  onlyFrom?: readonly string[];
  /** Absent on older kernels: skipped with a warning. */
  optional?: boolean;
}

/**
 * The sysctl values the farms need, with why (logged when set):
 * - forwarding on a VIP interface: proxy ARP answers only on interfaces that forward;
 * - forwarding where nat, dnat and stateless_dnat traffic comes in: the host routes it;
 * - no ICMP redirects there: on a one-armed segment traffic leaves by the interface it came
 *   in, and a redirect would tell clients and backends to bypass the load balancer. The
 *   kernel sends them when `all` or the interface says so: both are turned off.
 */
export function wantedKernelSettings(announced: readonly Announcement[], routed: readonly VipInterface[]): Map<string, WantedSetting> {
  const out = new Map<string, WantedSetting>();
  for (const a of announced.filter((x) => !isIpv6Text(x.vip))) out.set(forwardingKey(a.iface.name), { value: '1', why: 'proxy ARP for the VIPs needs forwarding' });
  // Proxy NDP, measured on this kernel: the interface must forward and proxy for multicast
  // solicitations; the unicast ones (a client re-checking its cache entry) take the forwarding
  // path, which needs proxy_ndp on `all` and forwarding on `all` or, without touching the
  // global switch, force_forwarding on the interface (Linux 6.17+). A forwarding interface
  // ignores router advertisements with accept_ra 1: it is raised to 2 (accept them anyway),
  // so a host that takes its default route by SLAAC keeps it.
  const six = [...new Map(announced.filter((x) => isIpv6Text(x.vip)).map((x) => [x.iface.name, x.iface])).values()];
  for (const i of six) {
    const why = 'proxy NDP for the IPv6 VIPs';
    out.set(ipv6Key(i.name, 'forwarding'), { value: '1', why: `${why} answers only on interfaces that forward` });
    out.set(ipv6Key(i.name, 'proxy_ndp'), { value: '1', why });
    out.set(ipv6Key(i.name, 'force_forwarding'), { value: '1', why: `${why}: unicast solicitations take the forwarding path`, optional: true });
    out.set(ipv6Key(i.name, 'accept_ra'), { value: '2', why: 'a forwarding interface ignores router advertisements unless accept_ra is 2', onlyFrom: ['1'] });
  }
  if (six.length > 0) out.set(ipv6Key('all', 'proxy_ndp'), { value: '1', why: 'proxy NDP answers unicast neighbour solicitations only with proxy_ndp on all' });
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
    const owned = new Set([
      ...(await this.net.listOwnedRoutes()).filter((r) => r.prefixLength === 32).map((r) => r.ip),
      ...(await this.net.listOwnedRoutes(IPV6_VIP_RECORD_TABLE)).filter((r) => r.prefixLength === 128).map((r) => r.ip),
    ]);
    const proxies = await this.net.listProxyNeighbors();
    for (const p of proxies) {
      // Only proxies for VIPs nftfarm announced (it holds their route) are nftfarm's to remove.
      if (owned.has(p.ip) && wantedIfindex.get(p.ip) !== p.ifindex) {
        await this.net.deleteProxyNeighbor(p.ifindex, p.ip);
        this.log.info({ vip: p.ip, ifindex: p.ifindex }, 'VIP no longer announced');
      }
    }
    for (const vip of owned) if (!wantedIfindex.has(vip)) await this.net.deleteVipRoute(vip, isIpv6Text(vip) ? IPV6_VIP_RECORD_TABLE : undefined);

    const announcedInterfaces = new Set(wanted.filter((a) => !isIpv6Text(a.vip)).map((a) => a.iface.name));
    const announcedInterfaces6 = new Set(wanted.filter((a) => isIpv6Text(a.vip)).map((a) => a.iface.name));
    const settings = wantedKernelSettings(wanted, routed);
    for (const [name, value] of this.memory.savedKernelSettings()) {
      const neigh = name.startsWith('neigh/') || name.startsWith('neigh6/');
      const ifname = name.split('/')[neigh ? 1 : 3] as string;
      const still = name.startsWith('neigh/') ? announcedInterfaces.has(ifname) : name.startsWith('neigh6/') ? announcedInterfaces6.has(ifname) : settings.has(name);
      if (still) continue;
      await this.restore(name, ifname, value);
      this.memory.forgetKernelSetting(name);
    }
  }

  /** Announces every wanted VIP. Runs after the rules for them exist. */
  async announce(wanted: readonly Announcement[], routed: readonly VipInterface[] = []): Promise<void> {
    for (const [name, { value, why, onlyFrom, optional }] of wantedKernelSettings(wanted, routed)) {
      if (optional && !fs.existsSync(`/proc/sys/${name}`) && this.sysctl === procSysctl) {
        this.log.warn({ setting: name, why }, 'this kernel lacks a setting the farms need: unicast neighbour solicitations for IPv6 VIPs go unanswered');
        continue;
      }
      const current = this.sysctl.read(name);
      if (current === value || (onlyFrom && !onlyFrom.includes(current))) continue;
      this.memory.saveKernelSetting(name, current);
      this.sysctl.write(name, value);
      this.log.info({ setting: name, from: current, to: value, why }, 'changed a kernel setting the farms need');
    }
    const interfaces = new Map(wanted.map((a) => [`${a.iface.name}|${isIpv6Text(a.vip) ? 6 : 4}`, { iface: a.iface, family: isIpv6Text(a.vip) ? (6 as const) : (4 as const) }]));
    for (const { iface, family } of interfaces.values()) {
      // The default proxy_delay answers 0-800 ms late; clients would retry their first packet.
      const delay = await this.net.getProxyDelay(iface.index, family);
      if (delay !== 0) {
        this.memory.saveKernelSetting(family === 6 ? proxyDelay6Key(iface.name) : proxyDelayKey(iface.name), String(delay));
        await this.net.setProxyDelay(iface.index, 0, family);
      }
    }
    // Only what is missing: this runs on every pass, and repairs entries someone removed.
    const routes = new Set([
      ...(await this.net.listOwnedRoutes()).map((r) => r.ip),
      ...(wanted.some((a) => isIpv6Text(a.vip)) ? (await this.net.listOwnedRoutes(IPV6_VIP_RECORD_TABLE)).map((r) => r.ip) : []),
    ]);
    const proxies = new Set((await this.net.listProxyNeighbors()).map((p) => `${p.ifindex}|${p.ip}`));
    for (const a of wanted) {
      const missingRoute = !routes.has(a.vip);
      const missingProxy = !proxies.has(`${a.iface.index}|${a.vip}`);
      if (missingRoute) await this.addRoute(a.vip);
      if (missingProxy) await this.net.addProxyNeighbor(a.iface.index, a.vip);
      if (missingRoute || missingProxy) this.log.info({ vip: a.vip, interface: a.iface.name }, isIpv6Text(a.vip) ? 'VIP announced (proxy NDP)' : 'VIP announced (proxy ARP)');
    }
  }

  private async addRoute(vip: string): Promise<void> {
    if (isIpv6Text(vip)) return this.net.addVipRoute(vip, IPV6_VIP_RECORD_TABLE);
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
      if (name.startsWith('neigh/') || name.startsWith('neigh6/')) {
        const iface = (await this.net.listInterfaces()).find((i) => i.name === ifname);
        if (iface) await this.net.setProxyDelay(iface.index, Number(value), name.startsWith('neigh6/') ? 6 : 4);
      } else if (fs.existsSync(`/proc/sys/${name}`)) {
        this.sysctl.write(name, value);
      }
      this.log.info({ setting: name, value }, 'restored a kernel setting nftfarm no longer needs');
    } catch (err) {
      this.log.warn({ err, setting: name }, 'could not restore a kernel setting (the interface may be gone)');
    }
  }
}
