/**
 * nftables objects as plain data, and their text. Pure: no I/O. The renderer produces these,
 * the planner turns differences between two sets of them into a Transaction, and the kernel
 * writer applies a Transaction atomically (`nft -f`, or netlink batches for elements only).
 */

/** nftfarm's two tables. */
export type TableName = 'netdev' | 'ip';

export interface TableRef {
  family: string;
  name: string;
}

export interface SetDecl {
  kind: 'map' | 'set';
  name: string;
  /** Declaration lines without `;`, e.g. "type ipv4_addr : verdict", "flags interval". */
  body: string[];
  /** The key (and data) type in nft's type names, e.g. "ipv4_addr . inet_service : mark". */
  typeKey: string;
  /** A dynamic set filled by the packet path (pins, sessions): never written or flushed by nftfarm. */
  dynamic: boolean;
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

/**
 * One element: key text, and value text for a map ('' for a plain set). Numbers stand for
 * themselves (marks, bucket keys): thousands of them are written at a cold start, and the
 * netlink writer takes them as they are.
 */
export interface Element {
  key: string | number;
  value: string | number;
}

/** A whole table as text: `nftfarm rules`, the golden files, a full load. */
export interface TableDecl {
  family: string;
  name: string;
  sets: SetDecl[];
  chains: ChainDecl[];
  /** Elements of the static sets, by set name, in the order to write them. */
  elements: Map<string, Element[]>;
}

const TAB = '\t';

export const elementText = (e: Element): string => (e.value === '' ? `${e.key}` : `${e.key} : ${e.value}`);

/** The table as one `nft -f` file. */
export function renderTableText(table: TableDecl): string {
  const out: string[] = [`table ${table.family} ${table.name} {`];
  const blocks: string[][] = [];
  for (const set of table.sets) {
    const lines = [`${TAB}${set.kind} ${set.name} {`, ...set.body.map((l) => `${TAB}${TAB}${l}`)];
    const elements = table.elements.get(set.name) ?? [];
    if (elements.length > 0) lines.push(`${TAB}${TAB}elements = { ${elements.map(elementText).join(`,\n${TAB}${TAB}${TAB}     `)} }`);
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

export const sameList = (a: readonly string[], b: readonly string[]): boolean => a.length === b.length && a.every((x, i) => x === b[i]);

export const sameChain = (a: ChainDecl, b: ChainDecl): boolean =>
  a === b || (a.name === b.name && (a.hook ?? null) === (b.hook ?? null) && (a.signature ?? null) === (b.signature ?? null) && sameList(a.rules, b.rules));

export const sameSet = (a: SetDecl, b: SetDecl): boolean =>
  a === b || (a.name === b.name && a.kind === b.kind && a.typeKey === b.typeKey && a.dynamic === b.dynamic && sameList(a.body, b.body));
