/** Plain store snapshots and host facts for pure renderer tests. */
import type { Backend, Farm } from '../../src/model/farm.js';
import type { Snapshot } from '../../src/store/store.js';
import type { HostFacts } from '../../src/reconcile/desired.js';
import type { HostInterface } from '../../src/dataplane/netlink/host-network.js';

export const LB_MAC = '02:00:0a:fa:00:02';

export const interfaces: HostInterface[] = [
  { name: 'lo', index: 1, mac: '', up: true, addresses: [{ address: '127.0.0.1', prefixLength: 8 }] },
  { name: 'eth0', index: 2, mac: LB_MAC, up: true, addresses: [{ address: '10.250.0.2', prefixLength: 24 }, { address: 'fd00:250::2', prefixLength: 64 }] },
];

/**
 * Backend i (1-based) is 10.250.0.(20+i) with MAC 02:00:0a:fa:00:(20+i in hex); on IPv6 it is
 * fd00:250::(20+i) (the same digits) with the same MAC.
 */
export const backendMac = (ip: string): string | null => {
  if (ip.startsWith('fd00:250::')) return backendMac(`10.250.0.${ip.slice('fd00:250::'.length)}`);
  const last = Number(ip.split('.')[3]);
  if (!ip.startsWith('10.250.0.') || last < 21 || last > 40) return null;
  return `02:00:0a:fa:00:${last.toString(16).padStart(2, '0')}`;
};

export function facts(overrides: Partial<HostFacts> = {}): HostFacts {
  return { interfaces, macOf: (_ifindex, ip) => backendMac(ip), ...overrides };
}

/** Farm `id` gets the data-plane slot `id` unless told otherwise (as in a store without deletions). */
export function farm(id: number, fields: Partial<Farm> = {}): Farm {
  return {
    id,
    slot: id,
    name: `farm${id}`,
    profile: 'l4xnat',
    vip: '10.250.0.100',
    vport: '80',
    protocol: 'tcp',
    nattype: 'dsr',
    algorithm: 'weight',
    persistence: '',
    ttl: 60,
    running: true,
    generation: 1,
    ...fields,
  };
}

/** `uid` is the store-wide backend number: the data plane's mark. */
export function backend(uid: number, farmId: number, id: number, ip: string, fields: Partial<Backend> = {}): Backend {
  return { uid, farmId, id, ip, port: null, weight: 1, priority: 1, maxConns: 0, maintenance: 'none', ...fields };
}

export function snapshot(entries: { farm: Farm; backends?: Backend[] }[], generation = 1): Snapshot {
  return { generation, farms: entries.map((e) => ({ farm: e.farm, backends: e.backends ?? [], healthCheck: null })) };
}
