/**
 * Which VIPs this node announces by BGP. A VIP is announced while at least one started farm
 * on it has rules in the kernel and a backend that can take new flows (usable by the data
 * plane: its MAC known for dsr and stateless_dnat, its health check passing, not in
 * maintenance). So a node that starts announces a VIP only once its rules and its backends'
 * MACs are in the kernel, and a farm that becomes critical, stops or is deleted is withdrawn.
 * The reconciler asks this of each farm it applies and keeps the set (Reconciler.servableVips).
 */
import { isRendered, type DesiredFarm } from '../reconcile/desired.js';

/** True when this farm, as applied, is enough for its VIP to be announced. */
export function farmServesVip(farm: DesiredFarm): boolean {
  return isRendered(farm) && farm.backends.some((b) => b.role === 'serving' || b.role === 'standby');
}

/** VIPs in numeric order (what BIRD's configuration lists): IPv4 first, then IPv6 in text order. */
export function sortVips(vips: Iterable<string>): string[] {
  const key = (ip: string) => ip.split('.').reduce((n, o) => n * 256 + Number(o), 0);
  const v6 = (ip: string) => ip.includes(':');
  return [...vips].sort((a, b) => (v6(a) !== v6(b) ? (v6(a) ? 1 : -1) : v6(a) ? (a < b ? -1 : a > b ? 1 : 0) : key(a) - key(b)));
}
