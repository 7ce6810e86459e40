/**
 * Farm and backend series in the Prometheus text format, written straight from one counter
 * sample: with 10,000 farms these are hundreds of thousands of lines, which a client
 * library's registry (labels hashed, values boxed) took seconds to produce. Pure; runs in
 * the observer's worker thread. Counters are inbound only under DSR.
 */
import { farmCounters, type CounterSample, type FarmCounters, type FarmDescriptor } from '../observe/farm-counters.js';

const INBOUND = '(inbound only: under DSR the load balancer never sees replies)';

/** Label values escaped as the exposition format asks (backslash, quote, newline). */
const escape = (v: string): string => v.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');

interface Family {
  name: string;
  help: string;
  type: 'counter' | 'gauge';
  farm?: (c: FarmCounters | null, f: FarmDescriptor) => number;
  backend?: (c: FarmCounters | null, uid: number, b: FarmDescriptor['backends'][number]) => number;
}

const FAMILIES: Family[] = [
  { name: 'nftfarm_farm_packets_total', help: `Packets that reached the farm ${INBOUND}`, type: 'counter', farm: (c) => c?.packets ?? 0 },
  { name: 'nftfarm_farm_bytes_total', help: `Bytes that reached the farm, IP header included ${INBOUND}`, type: 'counter', farm: (c) => c?.bytes ?? 0 },
  { name: 'nftfarm_farm_new_flows_total', help: 'Flows the farm balanced to a backend', type: 'counter', farm: (c) => c?.newFlows ?? 0 },
  { name: 'nftfarm_farm_dropped_packets_total', help: 'Packets of the farm that no backend could take', type: 'counter', farm: (c) => c?.dropped ?? 0 },
  { name: 'nftfarm_farm_established_flows', help: 'Flows pinned or tracked for the farm now', type: 'gauge', farm: (c) => c?.established ?? 0 },
  { name: 'nftfarm_farm_sessions', help: 'Persistence sessions of the farm now', type: 'gauge', farm: (c) => c?.sessions ?? 0 },
  { name: 'nftfarm_backend_packets_total', help: `Packets sent to the backend ${INBOUND}`, type: 'counter', backend: (c, uid) => c?.backends.get(uid)?.packets ?? 0 },
  { name: 'nftfarm_backend_bytes_total', help: `Bytes sent to the backend, IP header included ${INBOUND}`, type: 'counter', backend: (c, uid) => c?.backends.get(uid)?.bytes ?? 0 },
  { name: 'nftfarm_backend_new_flows_total', help: 'Flows the backend was chosen for', type: 'counter', backend: (c, uid) => c?.backends.get(uid)?.newFlows ?? 0 },
  { name: 'nftfarm_backend_established_flows', help: 'Flows pinned to or tracked for the backend now', type: 'gauge', backend: (c, uid) => c?.backends.get(uid)?.established ?? 0 },
  { name: 'nftfarm_backend_up', help: 'Whether the backend can take new flows (1) or not (0)', type: 'gauge', backend: (_c, _uid, b) => (b.up ? 1 : 0) },
];

interface Labels {
  farm: string[];
  backends: string[][];
}

/** Label strings by farm list: the observer keeps one list while no farm changes, so scrapes share them. */
const labelsByList = new WeakMap<readonly FarmDescriptor[], Labels>();

function labelsOf(farms: readonly FarmDescriptor[]): Labels {
  let labels = labelsByList.get(farms);
  if (!labels) {
    const farm = farms.map((f) => `farm="${escape(f.name)}"`);
    labels = { farm, backends: farms.map((f, i) => f.backends.map((b) => `${farm[i]},backend="${b.id}",ip="${b.ip}"`)) };
    labelsByList.set(farms, labels);
  }
  return labels;
}

/** The farm and backend series of every farm given, from one sample. */
export function farmMetricsText(farms: readonly FarmDescriptor[], sample: CounterSample): string {
  const counters = farms.map((f) => farmCounters(f, sample));
  const labels = labelsOf(farms);
  const out: string[] = [];
  for (const family of FAMILIES) {
    out.push(`# HELP ${family.name} ${family.help}`, `# TYPE ${family.name} ${family.type}`);
    farms.forEach((f, i) => {
      const c = counters[i]!;
      if (family.farm) out.push(`${family.name}{${labels.farm[i]}} ${family.farm(c, f)}`);
      else {
        const backendLabels = labels.backends[i]!;
        f.backends.forEach((b, j) => out.push(`${family.name}{${backendLabels[j]}} ${family.backend!(c, b.uid, b)}`));
      }
    });
  }
  return `${out.join('\n')}\n`;
}
