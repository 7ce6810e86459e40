/**
 * The body of GET /stats/farms written straight from one counter sample, in the order and
 * shape the route's response schema gives (what Fastify's serializer wrote before): with
 * 10,000 farms, building and serializing it on the API's event loop stalled other requests.
 * Pure; runs in the observer's worker thread. Stopped farms show zeros.
 */
import { farmCounters, type CounterSample, type ListedFarm } from './farm-counters.js';

export const FARM_STATS_DESCRIPTION = 'List all farms stats';

/** `sample` null: nothing is counted (no data plane), every counter 0. */
export function farmStatsJson(farms: readonly ListedFarm[], sample: CounterSample | null): string {
  const out: string[] = [];
  for (const f of farms) {
    const c = f.running && sample ? farmCounters(f, sample) : null;
    out.push(
      `{"farmname":${JSON.stringify(f.name)},"profile":${JSON.stringify(f.profile)},"status":${JSON.stringify(f.status)},` +
        `"vip":${JSON.stringify(f.vip)},"vport":${JSON.stringify(f.vport)},"established":${c?.established ?? 0},"pending":0,` +
        `"packets":${c?.packets ?? 0},"bytes":${c?.bytes ?? 0},"new_flows":${c?.newFlows ?? 0},"dropped":${c?.dropped ?? 0}}`,
    );
  }
  return `{"description":${JSON.stringify(FARM_STATS_DESCRIPTION)},"farms":[${out.join(',')}]}`;
}
