/**
 * nftables objects as plain data, their text, and the transaction that turns what the kernel
 * has into what is wanted. Pure: no I/O. The reconciler renders a `TableDecl`, plans the
 * transaction against what it last applied (or what a listing shows) and pipes the text to
 * `nft -f -`, which applies it atomically.
 */

export interface SetDecl {
  kind: 'map' | 'set';
  name: string;
  /** Declaration lines without `;`, e.g. "type ipv4_addr : verdict", "flags interval". */
  body: string[];
  /** The key type as listings report it, e.g. "ipv4_addr . inet_service : mark". */
  typeKey: string;
  /**
   * Element key text -> value text ('' for a plain set), in the order to write them.
   * null: a dynamic set that the packet path fills; nftfarm never writes or flushes it, so
   * its content (pinned flows, sessions) survives every change.
   */
  elements: Map<string, string> | null;
}

export interface ChainDecl {
  name: string;
  /** Base chains: e.g. `type filter hook ingress device "eth0" priority -200; policy accept;` */
  hook?: string;
  rules: string[];
  /**
   * What else makes the kernel's copy stale although the text is the same: `fwd to "eth0"`
   * is bound to the interface index when loaded, so a re-created interface needs a reload.
   */
  signature?: string;
}

export interface TableDecl {
  family: string;
  name: string;
  sets: SetDecl[];
  chains: ChainDecl[];
}

/** What nftfarm knows of the kernel's copy of its table. */
export interface KernelTable {
  /** Exactly what nftfarm applied last: every body, element and rule is known. */
  known: boolean;
  sets: Map<string, { typeKey: string; body: string[] | null; elements: Map<string, string> | null; dynamic: boolean }>;
  /** From a listing, rules are unknown (null) but counted (`listedRules`): a cheap check for edits. */
  chains: Map<string, { hook: string | null; rules: string[] | null; signature: string | null; listedRules?: number }>;
}

/**
 * `decl`, or the object `memo` holds under `key` when it has the very same body and elements:
 * the planner recognises an unchanged set by identity and then skips it without comparing
 * its (possibly tens of thousands of) elements.
 */
export function reuseUnchanged(memo: Map<string, SetDecl>, key: string, decl: SetDecl): SetDecl {
  const previous = memo.get(key);
  if (
    previous &&
    sameList(previous.body, decl.body) &&
    previous.elements !== null &&
    decl.elements !== null &&
    previous.elements.size === decl.elements.size &&
    [...decl.elements].every(([k, v]) => previous.elements!.get(k) === v)
  ) {
    return previous;
  }
  memo.set(key, decl);
  return decl;
}

const TAB = '\t';

/** The table as one `nft -f` file (the `nftfarm rules` output and the golden files). */
export function renderTableText(table: TableDecl): string {
  const out: string[] = [`table ${table.family} ${table.name} {`];
  const blocks: string[][] = [];
  for (const set of table.sets) {
    const lines = [`${TAB}${set.kind} ${set.name} {`, ...set.body.map((l) => `${TAB}${TAB}${l}`)];
    if (set.elements && set.elements.size > 0) {
      const items = [...set.elements].map(([k, v]) => (v === '' ? k : `${k} : ${v}`));
      lines.push(`${TAB}${TAB}elements = { ${items.join(`,\n${TAB}${TAB}${TAB}     `)} }`);
    }
    lines.push(`${TAB}}`);
    blocks.push(lines);
  }
  for (const chain of table.chains) {
    const lines = [`${TAB}chain ${chain.name} {`];
    if (chain.hook) lines.push(`${TAB}${TAB}${chain.hook}`);
    for (const rule of chain.rules) lines.push(`${TAB}${TAB}${rule}`);
    lines.push(`${TAB}}`);
    blocks.push(lines);
  }
  out.push(blocks.map((b) => b.join('\n')).join('\n\n'));
  out.push('}');
  return `${out.join('\n')}\n`;
}

/**
 * The kernel state after applying `table` (what the next incremental pass diffs against).
 * Shares the table's arrays and maps: rendered objects are never mutated, so an unchanged
 * object is recognised by identity, without comparing its elements.
 */
export function knownKernelTable(table: TableDecl): KernelTable {
  return {
    known: true,
    sets: new Map(
      table.sets.map((s) => [s.name, { typeKey: s.typeKey, body: s.body, elements: s.elements, dynamic: s.elements === null }]),
    ),
    chains: new Map(table.chains.map((c) => [c.name, { hook: c.hook ?? null, rules: c.rules, signature: c.signature ?? null }])),
  };
}

const ELEMENTS_PER_COMMAND = 1000;

export function elementCommands(verb: 'add' | 'delete', prefix: string, setName: string, items: string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < items.length; i += ELEMENTS_PER_COMMAND) {
    out.push(`${verb} element ${prefix} ${setName} { ${items.slice(i, i + ELEMENTS_PER_COMMAND).join(', ')} }`);
  }
  return out;
}

const sameList = (a: readonly string[], b: readonly string[]): boolean => a.length === b.length && a.every((x, i) => x === b[i]);

/**
 * The commands that turn `kernel` (null: no table) into `desired` (null: no table), ordered
 * so that nothing is deleted while still referenced and nothing referenced before it exists.
 * Dynamic sets are created when missing and otherwise left alone (their content is state).
 * Returns [] when nothing differs.
 */
export function planTransaction(kernel: KernelTable | null, desired: TableDecl | null, family: string, tableName: string): string[] {
  const prefix = `${family} ${tableName}`;
  if (desired === null) return kernel ? [`delete table ${prefix}`] : [];
  const current: KernelTable = kernel ?? { known: true, sets: new Map(), chains: new Map() };

  const elementDeletes: string[] = [];
  const chainFlushes: string[] = [];
  const chainDeletes: string[] = [];
  const setDeletes: string[] = [];
  const setAdds: string[] = [];
  const chainAdds: string[] = [];
  const ruleAdds: string[] = [];
  const elementAdds: string[] = [];

  const desiredSets = new Map(desired.sets.map((s) => [s.name, s]));
  const desiredChains = new Map(desired.chains.map((c) => [c.name, c]));
  const recreated = new Set<string>();

  for (const set of desired.sets) {
    const have = current.sets.get(set.name);
    // The very objects applied last time (a farm that did not change): nothing to do.
    if (have && have.body === set.body && have.elements === set.elements && have.typeKey === set.typeKey) continue;
    const addSet = () => {
      setAdds.push(`add ${set.kind} ${prefix} ${set.name} { ${set.body.map((l) => `${l}; `).join('')}}`);
      if (set.elements && set.elements.size > 0) elementAdds.push(...elementCommands('add', prefix, set.name, itemsOf(set.elements)));
    };
    if (!have) {
      addSet();
      continue;
    }
    if (set.elements === null) {
      // Dynamic: keep it (and the flows in it) unless its type changed; `add` updates timeout/size in place.
      if (have.typeKey !== set.typeKey || !have.dynamic) {
        setDeletes.push(`delete ${have.dynamic ? 'map' : set.kind} ${prefix} ${set.name}`);
        recreated.add(set.name);
        addSet();
      } else if (have.body === null || !sameList(have.body, set.body)) {
        setAdds.push(`add ${set.kind} ${prefix} ${set.name} { ${set.body.map((l) => `${l}; `).join('')}}`);
      }
      continue;
    }
    // Static sets seen only in a listing (after a restart) are re-created whole, in the same
    // transaction: their content is configuration, rendered again from the store.
    if (have.body === null || !sameList(have.body, set.body) || have.typeKey !== set.typeKey || have.dynamic) {
      setDeletes.push(`delete ${have.dynamic ? 'map' : set.kind} ${prefix} ${set.name}`);
      recreated.add(set.name);
      addSet();
      continue;
    }
    if (have.elements === null) throw new Error(`kernel view of ${set.name} has a body but no elements`);
    // Same declaration: write only the elements that differ (a changed value is delete + add).
    const removed = [...have.elements].filter(([k, v]) => set.elements!.get(k) !== v).map(([k]) => k);
    const added = [...set.elements].filter(([k, v]) => have.elements!.get(k) !== v).map(([k, v]) => (v === '' ? k : `${k} : ${v}`));
    if (removed.length > 0) elementDeletes.push(...elementCommands('delete', prefix, set.name, removed));
    if (added.length > 0) elementAdds.push(...elementCommands('add', prefix, set.name, added));
  }
  for (const [name, have] of current.sets) {
    if (desiredSets.has(name)) continue;
    setDeletes.push(`delete ${have.dynamic ? 'map' : mapOrSet(have)} ${prefix} ${name}`);
    recreated.add(name);
  }

  const referencesRecreated = (rules: readonly string[]) => rules.some((r) => [...recreated].some((n) => r.includes(`@${n} `) || r.endsWith(`@${n}`)));

  for (const chain of desired.chains) {
    const have = current.chains.get(chain.name);
    if (have && have.rules === chain.rules && have.hook === (chain.hook ?? null) && have.signature === (chain.signature ?? null) && recreated.size === 0) continue;
    const addRules = () => ruleAdds.push(...chain.rules.map((r) => `add rule ${prefix} ${chain.name} ${r}`));
    if (!have) {
      chainAdds.push(`add chain ${prefix} ${chain.name}${chain.hook ? ` { ${chain.hook} }` : ''}`);
      addRules();
      continue;
    }
    if (current.known && have.hook !== (chain.hook ?? null)) {
      // A base chain's hook cannot be changed in place (nft adds devices, refuses priorities).
      chainFlushes.push(`flush chain ${prefix} ${chain.name}`);
      chainDeletes.push(`delete chain ${prefix} ${chain.name}`);
      chainAdds.push(`add chain ${prefix} ${chain.name}${chain.hook ? ` { ${chain.hook} }` : ''}`);
      addRules();
      continue;
    }
    const stale =
      have.rules === null ||
      !sameList(have.rules, chain.rules) ||
      have.signature !== (chain.signature ?? null) ||
      referencesRecreated(chain.rules) ||
      referencesRecreated(have.rules);
    if (stale) {
      chainFlushes.push(`flush chain ${prefix} ${chain.name}`);
      addRules();
    }
  }
  for (const name of current.chains.keys()) {
    if (desiredChains.has(name)) continue;
    chainFlushes.push(`flush chain ${prefix} ${name}`);
    chainDeletes.push(`delete chain ${prefix} ${name}`);
  }

  const body = [
    ...elementDeletes,
    ...chainFlushes,
    // Sets before chains: a chain is still referenced by the jumps in a dispatch map being removed.
    ...setDeletes,
    ...chainDeletes,
    ...setAdds,
    ...chainAdds,
    ...ruleAdds,
    ...elementAdds,
  ];
  if (body.length === 0 && kernel !== null) return [];
  return [`add table ${prefix}`, ...body];
}

function itemsOf(elements: Map<string, string>): string[] {
  return [...elements].map(([k, v]) => (v === '' ? k : `${k} : ${v}`));
}

/** A listing-derived entry does not say map or set; typeKey has ' : ' only for maps. */
const mapOrSet = (have: { typeKey: string }): 'map' | 'set' => (have.typeKey.includes(' : ') ? 'map' : 'set');

/**
 * Reads the structure of nftfarm's table from `nft -t -j list ruleset` (terse: no elements,
 * a few ms even with huge maps). Returns null when the table does not exist.
 */
export function kernelTableFromListing(json: string, family: string, tableName: string): KernelTable | null {
  const parsed = JSON.parse(json) as { nftables?: Record<string, Record<string, unknown>>[] };
  let exists = false;
  const table: KernelTable = { known: false, sets: new Map(), chains: new Map() };
  for (const entry of parsed.nftables ?? []) {
    const [kind, obj] = Object.entries(entry)[0] ?? [];
    if (!obj || obj.family !== family || (kind === 'table' ? obj.name : obj.table) !== tableName) continue;
    if (kind === 'table') exists = true;
    else if (kind === 'chain') {
      table.chains.set(obj.name as string, { hook: null, rules: null, signature: null, listedRules: 0 });
    } else if (kind === 'rule') {
      const chain = table.chains.get(obj.chain as string);
      if (chain) chain.listedRules = (chain.listedRules ?? 0) + 1;
    } else if (kind === 'map' || kind === 'set') {
      const type = Array.isArray(obj.type) ? (obj.type as string[]).join(' . ') : String(obj.type);
      const typeKey = kind === 'map' ? `${type} : ${String(obj.map)}` : type;
      // 1.0.6 drops 'dynamic' from the JSON flags: nftfarm's dynamic sets are the ones with timeouts.
      const flags = (obj.flags as string[] | undefined) ?? [];
      table.sets.set(obj.name as string, { typeKey, body: null, elements: null, dynamic: flags.includes('timeout') });
    }
  }
  return exists ? table : null;
}
