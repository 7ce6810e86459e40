/**
 * The farm and backend series as text, line by line: the exposition format written the plain
 * way, as the reference that farmMetricsBytes (src/metrics/farm-metrics.ts) must match byte
 * for byte. Not used by the daemon.
 */
import { FAMILIES, labelsOf } from '../../src/metrics/farm-metrics.js';
import { farmCounters, type CounterSample, type FarmDescriptor } from '../../src/observe/farm-counters.js';

export function farmMetricsText(farms: readonly FarmDescriptor[], sample: CounterSample): string {
  const counters = farms.map((f) => farmCounters(f, sample));
  const labels = labelsOf(farms);
  const out: string[] = [];
  for (const family of FAMILIES) {
    out.push(`# HELP ${family.name} ${family.help}`, `# TYPE ${family.name} ${family.type}`);
    farms.forEach((f, i) => {
      const c = counters[i]!;
      if (family.farm) out.push(`${family.name}{${labels.farm[i]}} ${family.farm(c, f)}`);
      else f.backends.forEach((b, j) => out.push(`${family.name}{${labels.backends[i]![j]}} ${family.backend!(c, b.uid, b)}`));
    });
  }
  return `${out.join('\n')}\n`;
}
