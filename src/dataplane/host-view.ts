import type { ConnectedNetwork, HostView } from '../model/runtime.js';
import type { HostInterface, HostNetwork } from './netlink/host-network.js';
import { findConnectedInterface, formatIPv4, parseIPv4, prefixMask } from './netlink/ipv4.js';
import { ipFamily, ipv6Network } from '../model/ip.js';

/**
 * The API's read-only view of this host's connected networks, answered from netlink. The
 * interfaces are read once and kept until the kernel says a link or an address changed
 * (or, without notifications, for a second): a write request does not pay for a dump.
 */
export function netlinkHostView(net: HostNetwork): HostView & { close(): void } {
  let cached: Promise<HostInterface[]> | null = null;
  let readAt = 0;
  const watching = net.watchInterfaces?.(() => (cached = null));
  const interfaces = (): Promise<HostInterface[]> => {
    if (!cached || (!watching && Date.now() - readAt > 1000)) {
      readAt = Date.now();
      const read = net.listInterfaces();
      cached = read;
      // A failed read is not kept.
      read.catch(() => {
        if (cached === read) cached = null;
      });
    }
    return cached;
  };
  return {
    async connectedNetworks(ips: readonly string[]): Promise<(ConnectedNetwork | null)[]> {
      const list = await interfaces();
      return ips.map((ip) => {
        const match = findConnectedInterface(list, ip);
        if (!match) return null;
        if (ipFamily(ip) === 6) return { interface: match.iface.name, network: ipv6Network(match.address.address, match.address.prefixLength) };
        const base = formatIPv4(((parseIPv4(match.address.address) as number) & prefixMask(match.address.prefixLength)) >>> 0);
        return { interface: match.iface.name, network: `${base}/${match.address.prefixLength}` };
      });
    },
    close: () => watching?.(),
  };
}
