/**
 * A Transaction: the kernel changes of one reconcile pass, as typed operations. Pure. The
 * kernel writer applies one Transaction atomically; as nft text its operations are ordered
 * so that nothing is deleted while still referenced and nothing is referenced before it
 * exists (element deletes, chain flushes, set deletes, chain deletes, set adds, chain adds,
 * rule adds, element adds).
 */
import { elementText, type ChainDecl, type Element, type SetDecl, type TableRef } from './objects.js';

export type Operation =
  | { op: 'add-table'; table: TableRef }
  | { op: 'delete-table'; table: TableRef }
  | { op: 'add-set'; table: TableRef; set: SetDecl }
  | { op: 'delete-set'; table: TableRef; set: SetDecl }
  | { op: 'add-chain'; table: TableRef; chain: ChainDecl }
  /** Replace a chain's rules (flush, then add them). */
  | { op: 'replace-rules'; table: TableRef; chain: ChainDecl }
  | { op: 'delete-chain'; table: TableRef; chain: string }
  | ElementOperation;

export interface ElementOperation {
  op: 'add-elements' | 'delete-elements' | 'flush-set';
  table: TableRef;
  /** The set: its name, and its key and data types and flags (the netlink encoding needs them). */
  set: SetDecl;
  elements: Element[];
}

export const isElementOperation = (o: Operation): o is ElementOperation => o.op === 'add-elements' || o.op === 'delete-elements' || o.op === 'flush-set';

/** Order of the phases in an `nft -f` file. */
const PHASE: Record<Operation['op'], number> = {
  'add-table': 0,
  'delete-elements': 1,
  'flush-set': 1,
  'replace-rules': 2,
  'delete-set': 3,
  'delete-chain': 4,
  'add-set': 5,
  'add-chain': 6,
  'add-elements': 8,
  'delete-table': 9,
};
/** Rules come after every chain exists (phase 7): a rule may jump to a chain added in the same file. */
const RULES_PHASE = 7;

const ELEMENTS_PER_COMMAND = 1000;
const prefixOf = (t: TableRef): string => `${t.family} ${t.name}`;

/** The operations as nft commands, in an order the kernel accepts. */
export function transactionText(operations: readonly Operation[]): string {
  const phases: string[][] = Array.from({ length: 10 }, () => []);
  for (const o of operations) {
    const p = prefixOf(o.table);
    const out = phases[PHASE[o.op]]!;
    switch (o.op) {
      case 'add-table':
        out.push(`add table ${p}`);
        break;
      case 'delete-table':
        out.push(`delete table ${p}`);
        break;
      case 'add-set':
        out.push(`add ${o.set.kind} ${p} ${o.set.name} { ${o.set.body.map((l) => `${l}; `).join('')}}`);
        break;
      case 'delete-set':
        out.push(`delete ${o.set.kind} ${p} ${o.set.name}`);
        break;
      case 'add-chain':
        out.push(`add chain ${p} ${o.chain.name}${o.chain.hook ? ` { ${o.chain.hook} }` : ''}`);
        phases[RULES_PHASE]!.push(...o.chain.rules.map((r) => `add rule ${p} ${o.chain.name} ${r}`));
        break;
      case 'replace-rules':
        out.push(`flush chain ${p} ${o.chain.name}`);
        phases[RULES_PHASE]!.push(...o.chain.rules.map((r) => `add rule ${p} ${o.chain.name} ${r}`));
        break;
      case 'delete-chain':
        // A chain must be empty to be deleted; its rules may reference sets deleted here too.
        phases[PHASE['replace-rules']]!.push(`flush chain ${p} ${o.chain}`);
        out.push(`delete chain ${p} ${o.chain}`);
        break;
      case 'flush-set':
        out.push(`flush ${o.set.kind} ${p} ${o.set.name}`);
        break;
      case 'add-elements':
      case 'delete-elements':
        out.push(...elementCommands(o.op === 'add-elements' ? 'add' : 'delete', p, o.set.name, o.elements));
        break;
    }
  }
  const lines = phases.flat();
  return lines.length === 0 ? '' : `${lines.join('\n')}\n`;
}

/** `add element` / `delete element` commands, a thousand elements each. */
export function elementCommands(verb: 'add' | 'delete', prefix: string, setName: string, elements: readonly Element[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < elements.length; i += ELEMENTS_PER_COMMAND) {
    // A delete names keys only: the value of a map element is not part of its identity.
    const items = elements.slice(i, i + ELEMENTS_PER_COMMAND).map((e) => (verb === 'delete' ? `${e.key}` : elementText(e)));
    out.push(`${verb} element ${prefix} ${setName} { ${items.join(', ')} }`);
  }
  return out;
}
