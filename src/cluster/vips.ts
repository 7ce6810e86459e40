/**
 * Which VIPs this node announces by BGP. Pure: a function of the stored farms and of what the
 * reconciler reports (the DataplaneView), so it can be ported onto any reconciler that keeps
 * that view.
 *
 * A VIP is announced while at least one started farm on it
 * - has rules in the kernel (the reconciler applied some generation of it), and
 * - has a backend that can take new flows: usable by the data plane (its MAC is known for dsr
 *   and stateless_dnat, its health check passes) and not in maintenance.
 * So a node that starts announces a VIP only once its rules and its backends' MACs are in the
 * kernel, and a farm that becomes critical, stops or is deleted is withdrawn.
 */
import type { DataplaneView } from '../model/runtime.js';
import type { Snapshot } from '../store/store.js';

export function vipsToAnnounce(snapshot: Pick<Snapshot, 'farms'>, dataplane: Pick<DataplaneView, 'farm'>): string[] {
  const vips = new Set<string>();
  for (const { farm, backends } of snapshot.farms) {
    if (!farm.running || vips.has(farm.vip)) continue;
    const runtime = dataplane.farm(farm.id);
    if (!runtime || runtime.appliedGeneration === null || runtime.state === 'stopped') continue;
    const canTakeNewFlows = backends.some((b) => b.maintenance === 'none' && runtime.backends.get(b.uid)?.usable === true);
    if (canTakeNewFlows) vips.add(farm.vip);
  }
  const key = (ip: string) => ip.split('.').reduce((n, o) => n * 256 + Number(o), 0);
  return [...vips].sort((a, b) => key(a) - key(b));
}
