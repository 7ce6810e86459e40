/**
 * Whole tables from farm objects, as text-ready declarations: `nftfarm rules`, the golden
 * files, and the reference a test compares the kernel with. Pure. The reconciler itself
 * never assembles whole tables: it applies differences (plan.ts).
 */
import type { ChainDecl, Element, SetDecl, TableDecl, TableName } from '../dataplane/nft/objects.js';
import { regionElements, type FarmObjects } from './farm-render.js';
import { SELECTION_MAP } from './names.js';
import { ingressChainOf, ipBaseChains, tableSets, TABLES } from './tables.js';

export type AssembledTables = Record<TableName, TableDecl | null>;

export function assembleTables(farms: readonly FarmObjects[]): AssembledTables {
  const sorted = [...farms].sort((a, b) => a.farmId - b.farmId);
  const used = new Set<TableName>();
  for (const f of sorted) {
    used.add('netdev');
    for (const c of f.chains) used.add(c.table);
  }
  const out: AssembledTables = { netdev: null, ip: null };
  for (const table of ['netdev', 'ip'] as const) {
    if (!used.has(table)) continue;
    const elements = new Map<string, Element[]>();
    const seen = new Set<string>();
    const add = (set: string, e: Element) => {
      const k = `${set}\u0000${e.key}`;
      if (seen.has(k)) return;
      seen.add(k);
      let list = elements.get(set);
      if (!list) elements.set(set, (list = []));
      list.push(e);
    };
    const stages = new Map<string, ChainDecl>();
    const ingress = new Map<string, { iface: FarmObjects['ingress']['iface']; replies: boolean }>();
    const ownSets: SetDecl[] = [];
    const ownChains: ChainDecl[] = [];
    for (const f of sorted) {
      for (const c of f.elements) if (c.table === table) add(c.set, c);
      if (f.region?.table === table) for (const e of regionElements(f.region)) add(SELECTION_MAP, e);
      for (const s of f.stages) if (s.table === table) stages.set(s.chain.name, s.chain);
      for (const s of f.sets) if (s.table === table) ownSets.push(s.set);
      for (const c of f.chains) if (c.table === table) ownChains.push(c.chain);
      if (table === 'netdev') {
        const name = ingressChainOf(f.ingress).name;
        const had = ingress.get(name);
        ingress.set(name, { iface: f.ingress.iface, replies: (had?.replies ?? false) || f.ingress.replies });
      }
    }
    for (const list of elements.values()) list.sort(elementOrder);
    const base = table === 'ip' ? [...ipBaseChains()] : [...ingress.values()].map(ingressChainOf).sort(byName);
    out[table] = {
      ...TABLES[table],
      sets: [...tableSets(table), ...ownSets],
      chains: [...base, ...[...stages.values()].sort(byName), ...ownChains],
      elements,
    };
  }
  return out;
}

const byName = (a: { name: string }, b: { name: string }): number => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0);

/** Numeric keys in numeric order, others as text: listings stay stable from run to run. */
function elementOrder(a: Element, b: Element): number {
  const x = Number(a.key);
  const y = Number(b.key);
  if (Number.isFinite(x) && Number.isFinite(y)) return x - y;
  return a.key < b.key ? -1 : a.key > b.key ? 1 : 0;
}
