/** A virtual port specification: `*` (every port) or a list of single ports and inclusive ranges. */
export type PortSpec = { any: true } | { any: false; ranges: PortRange[] };
export interface PortRange {
  low: number;
  high: number;
}

/** One port 1-65535 without sign or leading zeros: the grammar used in JSON schemas too. */
export const PORT_PATTERN = '(?:6553[0-5]|655[0-2][0-9]|65[0-4][0-9]{2}|6[0-4][0-9]{3}|[1-5][0-9]{4}|[1-9][0-9]{0,3})';
/** `*`, or comma separated ports and `low:high` ranges. */
export const VPORT_PATTERN = `^(?:\\*|${PORT_PATTERN}(?::${PORT_PATTERN})?(?:,${PORT_PATTERN}(?::${PORT_PATTERN})?)*)$`;

const vportRegex = new RegExp(VPORT_PATTERN);

/** Returns null when the text is not a valid vport (bad grammar, or a range with low > high). */
export function parseVport(text: string): PortSpec | null {
  if (!vportRegex.test(text)) return null;
  if (text === '*') return { any: true };
  const ranges: PortRange[] = [];
  for (const part of text.split(',')) {
    const [lowText, highText] = part.split(':');
    const low = Number(lowText);
    const high = highText === undefined ? low : Number(highText);
    if (low > high) return null;
    ranges.push({ low, high });
  }
  return { any: false, ranges };
}

/** Sorted, merged ranges: the canonical form the data plane renders. */
export function normalizeRanges(ranges: PortRange[]): PortRange[] {
  const sorted = [...ranges].sort((a, b) => a.low - b.low || a.high - b.high);
  const merged: PortRange[] = [];
  for (const r of sorted) {
    const last = merged[merged.length - 1];
    if (last && r.low <= last.high + 1) last.high = Math.max(last.high, r.high);
    else merged.push({ ...r });
  }
  return merged;
}

export function portSpecsOverlap(a: PortSpec, b: PortSpec): PortRange | 'any' | null {
  if (a.any || b.any) return 'any';
  for (const x of a.ranges) {
    for (const y of b.ranges) {
      const low = Math.max(x.low, y.low);
      const high = Math.min(x.high, y.high);
      if (low <= high) return { low, high };
    }
  }
  return null;
}

/** The port, when the spec is exactly one port; null for lists, ranges, '*' and no spec. */
export function singlePortOf(spec: PortSpec | null): number | null {
  if (!spec || spec.any || spec.ranges.length !== 1) return null;
  const [r] = spec.ranges as [PortRange];
  return r.low === r.high ? r.low : null;
}

/** True when the spec is exactly one port equal to `port`. */
export function isSinglePort(spec: PortSpec, port: number): boolean {
  return singlePortOf(spec) === port;
}
