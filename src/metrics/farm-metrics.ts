/**
 * Farm and backend series in the Prometheus text format, written straight from one counter
 * sample: with 10,000 farms these are hundreds of thousands of lines, which a client
 * library's registry (labels hashed, values boxed) took seconds to produce. Pure; runs in
 * the observer's worker thread. Counters are inbound only under DSR.
 */
import { farmCounters, type CounterSample, type FarmCounters, type FarmDescriptor } from '../observe/farm-counters.js';

const INBOUND = '(inbound only: under DSR the load balancer never sees replies)';

/** Label values escaped as the exposition format asks (backslash, quote, newline). */
export const escapeLabel = (v: string): string => v.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');

export interface Family {
  name: string;
  help: string;
  type: 'counter' | 'gauge';
  farm?: (c: FarmCounters | null, f: FarmDescriptor) => number;
  backend?: (c: FarmCounters | null, uid: number, b: FarmDescriptor['backends'][number]) => number;
}

export const FAMILIES: Family[] = [
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

export interface Labels {
  farm: string[];
  backends: string[][];
}

/** Label strings by farm list: the observer keeps one list while no farm changes, so scrapes share them. */
const labelsByList = new WeakMap<readonly FarmDescriptor[], Labels>();

export function labelsOf(farms: readonly FarmDescriptor[]): Labels {
  let labels = labelsByList.get(farms);
  if (!labels) {
    const farm = farms.map((f) => `farm="${escapeLabel(f.name)}"`);
    labels = { farm, backends: farms.map((f, i) => f.backends.map((b) => `${farm[i]},backend="${b.id}",ip="${b.ip}"`)) };
    labelsByList.set(farms, labels);
  }
  return labels;
}

interface EncodedLabels {
  /** Every farm's label bytes (`farm="..."`), one after another, and where each ends. */
  farm: Buffer;
  farmEnds: Uint32Array;
  /** Every backend's, in list order. */
  backend: Buffer;
  backendEnds: Uint32Array;
}

const encodedByList = new WeakMap<readonly FarmDescriptor[], EncodedLabels>();

function encode(strings: string[]): [Buffer, Uint32Array] {
  const bytes = Buffer.from(strings.join(''));
  const ends = new Uint32Array(strings.length);
  let end = 0;
  strings.forEach((s, i) => (ends[i] = end += Buffer.byteLength(s)));
  return [bytes, ends];
}

function encodedLabelsOf(farms: readonly FarmDescriptor[]): EncodedLabels {
  let encoded = encodedByList.get(farms);
  if (!encoded) {
    const labels = labelsOf(farms);
    const [farm, farmEnds] = encode(labels.farm);
    const [backend, backendEnds] = encode(labels.backends.flat());
    encoded = { farm, farmEnds, backend, backendEnds };
    encodedByList.set(farms, encoded);
  }
  return encoded;
}

/** The longest text of a number (`-1.7976931348623157e+308`). */
const NUMBER_MAX = 24;
const [NL, OPEN, CLOSE, SPACE] = [0x0a, 0x7b, 0x7d, 0x20];

function copy(out: Uint8Array, at: number, from: Uint8Array, start: number, end: number): number {
  for (let i = start; i < end; i++) out[at++] = from[i]!;
  return at;
}

function writeNumber(out: Buffer, at: number, v: number): number {
  if (!Number.isSafeInteger(v) || v < 0) return at + out.write(String(v), at, 'latin1');
  let digits = 1;
  for (let x = v; x >= 10; x = Math.floor(x / 10)) digits++;
  for (let i = at + digits - 1, x = v; i >= at; i--, x = Math.floor(x / 10)) out[i] = 0x30 + (x % 10);
  return at + digits;
}

/**
 * The exposition text's UTF-8 (test/helpers/farm-metrics-text.ts writes it line by line, as
 * the unit test's reference), written straight into one buffer: no string per
 * line, and the label bytes kept while the farm list does not change. The buffer has an
 * ArrayBuffer of its own (it is transferred to the API's thread) and may be longer than the text.
 */
export function farmMetricsBytes(farms: readonly FarmDescriptor[], sample: CounterSample): Buffer {
  const counters = farms.map((f) => farmCounters(f, sample));
  const labels = encodedLabelsOf(farms);
  const backends = labels.backendEnds.length;
  const heads = FAMILIES.map((f) => Buffer.from(`# HELP ${f.name} ${f.help}\n# TYPE ${f.name} ${f.type}\n`));
  const names = FAMILIES.map((f) => Buffer.from(f.name));
  let size = 0;
  FAMILIES.forEach((f, k) => {
    const lines = f.farm ? farms.length : backends;
    size += heads[k]!.length + lines * (names[k]!.length + 4 + NUMBER_MAX) + (f.farm ? labels.farm.length : labels.backend.length);
  });
  const out = Buffer.allocUnsafeSlow(size);
  let at = 0;
  FAMILIES.forEach((family, k) => {
    at = copy(out, at, heads[k]!, 0, heads[k]!.length);
    const name = names[k]!;
    let b = 0;
    farms.forEach((f, i) => {
      const c = counters[i]!;
      if (family.farm) {
        at = copy(out, at, name, 0, name.length);
        out[at++] = OPEN;
        at = copy(out, at, labels.farm, i ? labels.farmEnds[i - 1]! : 0, labels.farmEnds[i]!);
        out[at++] = CLOSE;
        out[at++] = SPACE;
        at = writeNumber(out, at, family.farm(c, f));
        out[at++] = NL;
        return;
      }
      for (const backend of f.backends) {
        at = copy(out, at, name, 0, name.length);
        out[at++] = OPEN;
        at = copy(out, at, labels.backend, b ? labels.backendEnds[b - 1]! : 0, labels.backendEnds[b]!);
        out[at++] = CLOSE;
        out[at++] = SPACE;
        at = writeNumber(out, at, family.backend!(c, backend.uid, backend));
        out[at++] = NL;
        b++;
      }
    });
  });
  return out.subarray(0, at);
}
