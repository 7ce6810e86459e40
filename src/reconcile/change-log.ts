/**
 * What one applied pass changed, farm by farm, for the log: each farm whose generation the
 * kernel did not hold yet (or that is gone), and the nftables objects the transaction
 * touched for it.
 */
import type { FarmRuntime } from '../model/runtime.js';
import type { DesiredState } from './desired.js';

export interface FarmChange {
  farmId: number;
  farm: string | null;
  generation: number | null;
  deleted: boolean;
  /** Objects written for this farm: its own, and the dispatch maps whose verdicts jump to it. */
  objects: string[];
}

const FARM_REF = /\bfarm_(\d+)(?!\d)/g;

/** `commands` are the transaction's lines (`add element netdev nftfarm NAME { ... }`...). */
export function farmChanges(
  previous: ReadonlyMap<number, FarmRuntime>,
  state: DesiredState,
  commands: readonly string[],
  tablePrefixes: readonly string[],
): FarmChange[] {
  const changes = new Map<number, FarmChange>();
  for (const f of state.farms) {
    if (previous.get(f.farmId)?.generation !== f.generation) {
      changes.set(f.farmId, { farmId: f.farmId, farm: f.name, generation: f.generation, deleted: false, objects: [] });
    }
  }
  const present = new Set(state.farms.map((f) => f.farmId));
  for (const id of previous.keys()) if (!present.has(id)) changes.set(id, { farmId: id, farm: null, generation: null, deleted: true, objects: [] });
  if (changes.size === 0) return [];

  const objects = new Map<number, Set<string>>();
  for (const command of commands) {
    const tablePrefix = tablePrefixes.find((p) => command.includes(`${p} `));
    if (!tablePrefix) continue;
    const at = command.indexOf(tablePrefix);
    const name = command.slice(at + tablePrefix.length + 1).split(/[\s{]/, 1)[0];
    if (!name) continue;
    for (const m of command.matchAll(FARM_REF)) {
      const id = Number(m[1]);
      let set = objects.get(id);
      if (!set) objects.set(id, (set = new Set()));
      set.add(name);
    }
  }
  for (const [id, names] of objects) {
    const change = changes.get(id);
    if (change) change.objects = [...names].sort();
  }
  return [...changes.values()].sort((a, b) => a.farmId - b.farmId);
}
