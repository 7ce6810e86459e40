/**
 * What the kernel holds (as nftfarm applied it) and the transaction that moves it to new farm
 * objects. Pure. A pass hands over only the farms that changed: the planner compares their
 * old and new objects and produces element-level changes of the table-wide maps, chain and
 * set changes of the farms' own objects, and changes of the shared objects (stage chains,
 * ingress chains, VIP guards, the tables themselves) through reference counts. Nothing here
 * walks the farms that did not change.
 */
import type { ChainDecl, Element, SetDecl, TableName } from '../dataplane/nft/objects.js';
import { sameChain, sameSet } from '../dataplane/nft/objects.js';
import type { ElementOperation, Operation } from '../dataplane/nft/transaction.js';
import { renderFarm, type Contribution, type FarmObjects, type IngressNeed, type Region } from './farm-render.js';
import { isRendered, type DesiredFarm } from './desired.js';
import { ingressChainOf, ipBaseChains, tableSet, tableSets, TABLE_NAMES, TABLES } from './tables.js';
import { GUARDED_VIPS_SET, GUARDED_VIPS_SET6, SELECTION_MAP } from './names.js';

/** Elements several farms may hold at once (a VIP's guard): present while any holds it. */
const SHARED_SETS = new Set([GUARDED_VIPS_SET, GUARDED_VIPS_SET6]);

interface Counted<T> {
  value: T;
  users: number;
}

const key3 = (table: TableName, set: string, key: string) => `${table}\u0000${set}\u0000${key}`;
const key2 = (table: TableName, name: string) => `${table}\u0000${name}`;

/**
 * What nftfarm applied to the kernel: every rendered farm (as its desired state: its objects
 * are rendered again when a change needs them, which costs less than keeping them for
 * thousands of farms) and the shared objects they use.
 */
export class AppliedState {
  readonly farms = new Map<number, DesiredFarm>();
  readonly stages = new Map<string, Counted<{ table: TableName; chain: ChainDecl }>>();
  readonly ingress = new Map<string, Counted<IngressNeed> & { replyUsers: number }>();
  readonly shared = new Map<string, Counted<Contribution>>();
  readonly tableUsers: Record<TableName, number> = { netdev: 0, ip: 0 };

  tableExists(table: TableName): boolean {
    return this.tableUsers[table] > 0;
  }
}

export interface Plan {
  operations: Operation[];
  /** The kernel objects each changed farm's operations write (its chains, sets and maps), for the log. */
  touched: Map<number, string[]>;
  /** Records the plan as applied (call only after the kernel accepted the transaction). */
  commit(): void;
}

/** The tables a farm's objects live in (every rendered farm has its dispatch in netdev). */
function tablesOf(o: FarmObjects): Set<TableName> {
  const out = new Set<TableName>(['netdev']);
  for (const c of o.chains) out.add(c.table);
  return out;
}

/**
 * The transaction that takes the farms in `changes` from what `state` holds to their new
 * desired state (null: deleted). Farms without rules (stopped, with a problem) have no objects.
 */
export function planChanges(state: AppliedState, desired: ReadonlyMap<number, DesiredFarm | null>): Plan {
  const ops: Operation[] = [];
  // Old objects rendered again from what was applied (pure: the same objects), new ones now.
  const before = new Map<number, FarmObjects>();
  for (const id of desired.keys()) {
    const applied = state.farms.get(id);
    if (applied) before.set(id, renderFarm(applied));
  }
  const changes = new Map<number, FarmObjects | null>();
  for (const [id, f] of desired) changes.set(id, f && isRendered(f) ? renderFarm(f) : null);
  const old = { get: (id: number) => before.get(id) };

  // Tables: each exists while some farm uses it.
  const users = { ...state.tableUsers };
  for (const [id, next] of changes) {
    const prev = old.get(id);
    if (prev) for (const t of tablesOf(prev)) users[t]--;
    if (next) for (const t of tablesOf(next)) users[t]++;
  }
  const created = TABLE_NAMES.filter((t) => state.tableUsers[t] === 0 && users[t] > 0);
  const deleted = TABLE_NAMES.filter((t) => state.tableUsers[t] > 0 && users[t] === 0);
  const gone = new Set(deleted);
  const emit = (o: Operation) => {
    if (!gone.has(o.table === TABLES.netdev ? 'netdev' : 'ip')) ops.push(o);
  };
  for (const t of created) {
    ops.push({ op: 'add-table', table: TABLES[t] });
    for (const s of tableSets(t)) ops.push({ op: 'add-set', table: TABLES[t], set: s });
    if (t === 'ip') for (const c of ipBaseChains()) ops.push({ op: 'add-chain', table: TABLES.ip, chain: c });
  }
  for (const t of deleted) ops.push({ op: 'delete-table', table: TABLES[t] });

  const touched = new Map<number, Set<string>>();
  const touch = (farmId: number, name: string) => {
    let names = touched.get(farmId);
    if (!names) touched.set(farmId, (names = new Set()));
    names.add(name);
  };

  // The farms' own chains and sets, by name across all changed farms (a slot given back by a
  // deleted farm may be taken by a new one in the same pass).
  type Owned<T> = T & { owner: number };
  const oldChains = new Map<string, Owned<{ table: TableName; chain: ChainDecl }>>();
  const newChains = new Map<string, Owned<{ table: TableName; chain: ChainDecl }>>();
  const oldSets = new Map<string, Owned<{ table: TableName; set: SetDecl }>>();
  const newSets = new Map<string, Owned<{ table: TableName; set: SetDecl }>>();
  for (const [id, next] of changes) {
    const prev = old.get(id);
    for (const c of prev?.chains ?? []) oldChains.set(key2(c.table, c.chain.name), { ...c, owner: id });
    for (const c of next?.chains ?? []) newChains.set(key2(c.table, c.chain.name), { ...c, owner: id });
    for (const s of prev?.sets ?? []) oldSets.set(key2(s.table, s.set.name), { ...s, owner: id });
    for (const s of next?.sets ?? []) newSets.set(key2(s.table, s.set.name), { ...s, owner: id });
  }
  for (const [k, was] of oldSets) {
    const now = newSets.get(k);
    if (!now) {
      emit({ op: 'delete-set', table: TABLES[was.table], set: was.set });
      touch(was.owner, was.set.name);
    } else if (!sameSet(was.set, now.set)) {
      // A dynamic set of the same type is updated in place (its content is live state).
      if (!(was.set.dynamic && now.set.dynamic && was.set.typeKey === now.set.typeKey)) emit({ op: 'delete-set', table: TABLES[was.table], set: was.set });
      emit({ op: 'add-set', table: TABLES[now.table], set: now.set });
      touch(now.owner, now.set.name);
    }
  }
  for (const [k, now] of newSets) {
    if (oldSets.has(k)) continue;
    emit({ op: 'add-set', table: TABLES[now.table], set: now.set });
    touch(now.owner, now.set.name);
  }
  for (const [k, was] of oldChains) {
    const now = newChains.get(k);
    if (!now) {
      emit({ op: 'delete-chain', table: TABLES[was.table], chain: was.chain.name });
      touch(was.owner, was.chain.name);
    } else if (!sameChain(was.chain, now.chain)) {
      emit({ op: 'replace-rules', table: TABLES[now.table], chain: now.chain });
      touch(now.owner, now.chain.name);
    }
  }
  for (const [k, now] of newChains) {
    if (oldChains.has(k)) continue;
    emit({ op: 'add-chain', table: TABLES[now.table], chain: now.chain });
    touch(now.owner, now.chain.name);
  }

  // Stage chains: shared, counted.
  const stageDelta = new Map<string, { table: TableName; chain: ChainDecl; delta: number }>();
  const countStage = (s: { table: TableName; chain: ChainDecl }, d: number) => {
    const k = key2(s.table, s.chain.name);
    const e = stageDelta.get(k) ?? { table: s.table, chain: s.chain, delta: 0 };
    if (d > 0) e.chain = s.chain;
    e.delta += d;
    stageDelta.set(k, e);
  };
  for (const [id, next] of changes) {
    for (const s of uniqueStages(old.get(id))) countStage(s, -1);
    for (const s of uniqueStages(next ?? undefined)) countStage(s, +1);
  }
  for (const [k, e] of stageDelta) {
    const have = state.stages.get(k);
    const before = have?.users ?? 0;
    const after = before + e.delta;
    if (before === 0 && after > 0) emit({ op: 'add-chain', table: TABLES[e.table], chain: e.chain });
    else if (before > 0 && after === 0) emit({ op: 'delete-chain', table: TABLES[e.table], chain: e.chain.name });
    else if (after > 0 && have && !sameChain(have.value.chain, e.chain)) emit({ op: 'replace-rules', table: TABLES[e.table], chain: e.chain });
  }

  // Ingress chains, one per interface carrying VIPs; they dispatch replies while a stateless_dnat farm is on it.
  const ingressDelta = new Map<string, { need: IngressNeed; delta: number; replies: number }>();
  const countIngress = (need: IngressNeed, d: number) => {
    const k = ingressChainOf(need).name;
    const e = ingressDelta.get(k) ?? { need, delta: 0, replies: 0 };
    if (d > 0) e.need = need;
    e.delta += d;
    if (need.replies) e.replies += d;
    ingressDelta.set(k, e);
  };
  for (const [id, next] of changes) {
    const prev = old.get(id);
    if (prev) countIngress(prev.ingress, -1);
    if (next) countIngress(next.ingress, +1);
  }
  for (const [name, e] of ingressDelta) {
    const have = state.ingress.get(name);
    const after = (have?.users ?? 0) + e.delta;
    const replies = (have?.replyUsers ?? 0) + e.replies;
    const chain = ingressChainOf({ iface: e.need.iface, replies: replies > 0 });
    if (!have || have.users === 0) {
      if (after > 0) emit({ op: 'add-chain', table: TABLES.netdev, chain });
    } else if (after === 0) emit({ op: 'delete-chain', table: TABLES.netdev, chain: name });
    else if (!sameChain(ingressChainOf({ iface: have.value.iface, replies: have.replyUsers > 0 }), chain)) {
      // A base chain's hook cannot change in place, and it is bound to the interface it was
      // created on: a re-created interface (same name, new index) gets a new chain.
      const was = ingressChainOf(have.value);
      if (was.hook !== chain.hook || was.signature !== chain.signature) {
        emit({ op: 'delete-chain', table: TABLES.netdev, chain: name });
        emit({ op: 'add-chain', table: TABLES.netdev, chain });
      } else emit({ op: 'replace-rules', table: TABLES.netdev, chain });
    }
  }

  // Elements of the table-wide maps.
  type Groups = Map<TableName, Map<string, Element[]>>;
  const deletes: Groups = new Map();
  const adds: Groups = new Map();
  let touchedOwner = -1;
  let touchedSet = '';
  const push = (into: Groups, table: TableName, set: string, e: Element, owner?: number) => {
    // Elements come in runs of one owner and set: note each run once.
    if (owner !== undefined && (owner !== touchedOwner || set !== touchedSet)) {
      touch(owner, set);
      touchedOwner = owner;
      touchedSet = set;
    }
    let sets = into.get(table);
    if (!sets) into.set(table, (sets = new Map()));
    let group = sets.get(set);
    if (!group) sets.set(set, (group = []));
    group.push(e);
  };
  const sharedDelta = new Map<string, { c: Contribution; delta: number }>();
  if (before.size === 0) {
    // Nothing applied for these farms (a first load): every element is new.
    for (const [id, next] of changes) {
      for (const c of next?.elements ?? []) {
        if (SHARED_SETS.has(c.set)) countShared(sharedDelta, c, +1);
        else push(adds, c.table, c.set, c, id);
      }
    }
  } else {
    const oldElements = new Map<string, Owned<Contribution>>();
    const newElements = new Map<string, Owned<Contribution>>();
    for (const [id, next] of changes) {
      const prev = old.get(id);
      for (const c of prev?.elements ?? []) {
        if (SHARED_SETS.has(c.set)) countShared(sharedDelta, c, -1);
        else oldElements.set(key3(c.table, c.set, `${c.key}`), { ...c, owner: id });
      }
      for (const c of next?.elements ?? []) {
        if (SHARED_SETS.has(c.set)) countShared(sharedDelta, c, +1);
        else newElements.set(key3(c.table, c.set, `${c.key}`), { ...c, owner: id });
      }
    }
    for (const [k, was] of oldElements) {
      const now = newElements.get(k);
      if (!now || now.value !== was.value) push(deletes, was.table, was.set, was, was.owner);
    }
    for (const [k, now] of newElements) {
      const was = oldElements.get(k);
      if (!was || was.value !== now.value) push(adds, now.table, now.set, now, now.owner);
    }
  }
  for (const [k, { c, delta }] of sharedDelta) {
    const before = state.shared.get(k)?.users ?? 0;
    const after = before + delta;
    if (before === 0 && after > 0) push(adds, c.table, c.set, c);
    else if (before > 0 && after === 0) push(deletes, c.table, c.set, c);
  }
  diffRegions(before, changes, (owner, table, e, verb) => push(verb === 'add' ? adds : deletes, table, SELECTION_MAP, e, owner));

  const elementOps = (groups: Groups, op: ElementOperation['op']) => {
    for (const [table, sets] of groups) {
      // Elements of a table created in this transaction have nothing to delete.
      if (op === 'delete-elements' && created.includes(table)) continue;
      for (const [name, elements] of sets) {
        const set = tableSet(table, name);
        if (!set) throw new Error(`no table-wide set ${name} in the ${table} table`);
        emit({ op, table: TABLES[table], set, elements });
      }
    }
  };
  elementOps(deletes, 'delete-elements');
  elementOps(adds, 'add-elements');

  return {
    operations: ops,
    touched: new Map([...touched].map(([id, names]) => [id, [...names].sort()])),
    commit() {
      for (const [id, next] of changes) {
        const prev = old.get(id);
        if (prev) for (const t of tablesOf(prev)) state.tableUsers[t]--;
        if (next) for (const t of tablesOf(next)) state.tableUsers[t]++;
        const f = desired.get(id);
        if (next && f) state.farms.set(id, f);
        else state.farms.delete(id);
      }
      for (const [k, e] of stageDelta) {
        const after = (state.stages.get(k)?.users ?? 0) + e.delta;
        // Same name, same content: the newest rendering is what the kernel holds now.
        if (after <= 0) state.stages.delete(k);
        else state.stages.set(k, { value: { table: e.table, chain: e.chain }, users: after });
      }
      for (const [name, e] of ingressDelta) {
        const have = state.ingress.get(name);
        const after = (have?.users ?? 0) + e.delta;
        const replies = (have?.replyUsers ?? 0) + e.replies;
        if (after <= 0) state.ingress.delete(name);
        else state.ingress.set(name, { value: { iface: e.need.iface, replies: replies > 0 }, users: after, replyUsers: replies });
      }
      for (const [k, { c, delta }] of sharedDelta) {
        const after = (state.shared.get(k)?.users ?? 0) + delta;
        if (after <= 0) state.shared.delete(k);
        else state.shared.set(k, { value: c, users: after });
      }
    },
  };
}

function countShared(into: Map<string, { c: Contribution; delta: number }>, c: Contribution, d: number): void {
  const k = key3(c.table, c.set, `${c.key}`);
  const e = into.get(k) ?? { c, delta: 0 };
  e.delta += d;
  into.set(k, e);
}

/** A farm's stage chains, each name once. */
function uniqueStages(o: FarmObjects | undefined): { table: TableName; chain: ChainDecl }[] {
  if (!o) return [];
  const seen = new Map<string, { table: TableName; chain: ChainDecl }>();
  for (const s of o.stages) seen.set(key2(s.table, s.chain.name), s);
  return [...seen.values()];
}

/**
 * Bucket-level differences of the selection regions of the changed farms: a weight change
 * rewrites the few buckets that move, not the farm's whole region. Keys are compared across
 * farms, as a deleted farm's slot may be reused by a new farm in the same pass.
 */
function diffRegions(
  before: ReadonlyMap<number, FarmObjects>,
  changes: ReadonlyMap<number, FarmObjects | null>,
  emit: (owner: number, table: TableName, e: Element, verb: 'add' | 'delete') => void,
): void {
  type OwnedRegion = Region & { owner: number };
  const was = new Map<string, OwnedRegion>();
  const after = new Map<string, OwnedRegion>();
  for (const [id, next] of changes) {
    const prev = before.get(id)?.region;
    if (prev) was.set(key2(prev.table, String(prev.base)), { ...prev, owner: id });
    if (next?.region) after.set(key2(next.region.table, String(next.region.base)), { ...next.region, owner: id });
  }
  const walk = (was: OwnedRegion | undefined, now: OwnedRegion | undefined) => {
    const table = (was ?? now)!.table;
    const base = (was ?? now)!.base;
    const n = Math.max(was?.marks.length ?? 0, now?.marks.length ?? 0);
    for (let i = 0; i < n; i++) {
      const a = was?.marks[i] ?? 0;
      const b = now?.marks[i] ?? 0;
      if (a === b) continue;
      if (a !== 0) emit(was!.owner, table, { key: base + i, value: a }, 'delete');
      if (b !== 0) emit(now!.owner, table, { key: base + i, value: b }, 'add');
    }
  };
  for (const [k, region] of was) walk(region, after.get(k));
  for (const [k, now] of after) if (!was.has(k)) walk(undefined, now);
}
