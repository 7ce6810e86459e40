import type { ConnectedNetwork, HostView } from '../model/runtime.js';
import type { HostNetwork } from './netlink/host-network.js';
import { findConnectedInterface, formatIPv4, parseIPv4, prefixMask } from './netlink/ipv4.js';

/** The API's read-only view of this host's connected networks, answered from netlink. */
export function netlinkHostView(net: HostNetwork): HostView {
  return {
    async connectedNetworks(ips: readonly string[]): Promise<(ConnectedNetwork | null)[]> {
      const interfaces = await net.listInterfaces();
      return ips.map((ip) => {
        const match = findConnectedInterface(interfaces, ip);
        if (!match) return null;
        const base = formatIPv4(((parseIPv4(match.address.address) as number) & prefixMask(match.address.prefixLength)) >>> 0);
        return { interface: match.iface.name, network: `${base}/${match.address.prefixLength}` };
      });
    },
  };
}
