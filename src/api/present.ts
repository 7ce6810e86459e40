/** How stored farms and backends look in ZAPI answers, with what the data plane knows. */
import type { Backend, BackendStatus, Farm, FarmStatus } from '../model/farm.js';
import type { FarmRuntime } from '../model/runtime.js';
import type { FarmDescriptor } from '../observe/farm-counters.js';

export interface BackendView {
  id: number;
  ip: string;
  port: number | null;
  weight: number;
  priority: number;
  max_conns: number;
  status: BackendStatus;
  status_reason?: string;
}

export function backendView(backend: Backend, farm: Farm, runtime: FarmRuntime | undefined): BackendView {
  const view: BackendView = {
    id: backend.id,
    ip: backend.ip,
    port: backend.port,
    weight: backend.weight,
    priority: backend.priority,
    max_conns: backend.maxConns,
    status: 'up',
  };
  if (backend.maintenance !== 'none') {
    view.status = 'maintenance';
    view.status_reason = `in maintenance (${backend.maintenance}): ${backend.maintenance === 'drain' ? 'no new flows, established ones continue' : 'its flows are cut'}`;
    return view;
  }
  const rt = farm.running ? runtime?.backends.get(backend.uid) : undefined;
  if (rt && !rt.usable) view.status = 'down';
  // Also for a backend that is up but takes no new flow (max_conns reached).
  if (rt?.reason) view.status_reason = rt.reason;
  return view;
}

/** ZEVENET's order: stopped, then no backend up, then some down, then maintenance. */
export function farmStatus(farm: Farm, backends: BackendView[]): FarmStatus {
  if (!farm.running) return 'down';
  if (!backends.some((b) => b.status === 'up')) return 'critical';
  if (backends.some((b) => b.status === 'down')) return 'problem';
  if (backends.some((b) => b.status === 'maintenance')) return 'maintenance';
  return 'up';
}

/** A persistence value as ZAPI shows it ('ip' for source IP). */
export const persistenceView = (persistence: Farm['persistence']): string => (persistence === 'srcip' ? 'ip' : persistence);

/**
 * The `dataplane` object of GET /farms/{f} and /system/status. A change the reconciler has
 * not seen yet is 'pending' (a failure stays 'failed' until a pass succeeds).
 */
export function dataplaneView(farm: Farm, runtime: FarmRuntime | undefined) {
  const current = runtime !== undefined && (runtime.generation === farm.generation || runtime.state === 'failed');
  return {
    generation: farm.generation,
    applied_generation: runtime?.appliedGeneration ?? null,
    state: current ? runtime.state : 'pending',
    error: runtime?.error ?? null,
    interface: runtime?.interface ?? null,
    notice: runtime?.notice ?? null,
  };
}

/** What the observer needs to count a farm (observe/farm-counters.ts), from the store and the data plane's view. */
export function counterDescriptor(farm: Farm, stored: readonly Backend[], runtime: FarmRuntime | undefined): FarmDescriptor {
  return {
    id: farm.id,
    slot: farm.slot,
    name: farm.name,
    nattype: farm.nattype,
    protocol: farm.protocol,
    persistence: farm.persistence,
    backends: stored.map((b) => ({ uid: b.uid, id: b.id, ip: b.ip, up: backendView(b, farm, runtime).status === 'up' })),
  };
}
