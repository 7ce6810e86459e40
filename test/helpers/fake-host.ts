/** The host for reconciler unit tests: fixtures.ts's interfaces, backends with MACs, no-op announcements. */
import type { HostNetwork } from '../../src/dataplane/netlink/host-network.js';
import { backendMac, interfaces } from './fixtures.js';

/** eth0 10.250.0.2/24; every backend address 10.250.0.21-40 has its MAC; announcements are no-ops. */
export function fakeHost(): HostNetwork {
  const ips = Array.from({ length: 20 }, (_, i) => `10.250.0.${21 + i}`);
  return {
    listInterfaces: async () => interfaces,
    listNeighbors: async () => ips.map((ip) => ({ ip, ifindex: 2, mac: backendMac(ip), state: 'reachable' as const })),
    listProxyNeighbors: async () => [],
    addProxyNeighbor: async () => {},
    deleteProxyNeighbor: async () => {},
    listOwnedRoutes: async () => [],
    addVipRoute: async () => {},
    deleteVipRoute: async () => {},
    setProxyDelay: async () => {},
    getProxyDelay: async () => 0,
    setLinkUp: async () => {},
    close: () => {},
  };
}

/** Sysctls in memory. */
export const memorySysctl = () => {
  const values = new Map<string, string>();
  return { read: (p: string) => values.get(p) ?? '0', write: (p: string, v: string) => void values.set(p, v) };
};
