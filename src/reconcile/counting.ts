/**
 * The objects that count new flows per backend. Packets and bytes per backend are counted by
 * each farm's macs map itself (its `counter` flag); what nftables cannot see there is which
 * packets start a flow, so the rules that choose a backend for a flow (the flow map missed)
 * end with a lookup in a counted set of backend marks: a hit bumps that backend's counter and
 * changes nothing else.
 */
import type { SetDecl } from '../dataplane/nft/ruleset.js';
import type { DesiredFarm } from './desired.js';
import { NEW_FLOWS_SET } from './names.js';

/** The last set rendered; rendering stays a function of its input (equal input, equal output). */
let last: { marks: number[]; decl: SetDecl } | null = null;

/**
 * Every backend of every rendered farm, whatever its role: a counter survives drains, cuts
 * and MAC changes, and starts from 0 only for a new backend. Declared before the farms' sets,
 * so the kernel finds it first in its set list.
 */
export function newFlowsSet(farms: readonly DesiredFarm[]): SetDecl {
  const marks = farms.flatMap((f) => f.backends.map((b) => b.uid));
  // The same marks as last time: the same object, which the transaction planner skips
  // without comparing its (tens of thousands of) elements.
  if (last && last.marks.length === marks.length && last.marks.every((m, i) => m === marks[i])) return last.decl;
  const decl: SetDecl = {
    kind: 'set',
    name: NEW_FLOWS_SET,
    body: ['type mark', 'counter'],
    typeKey: 'mark',
    elements: new Map([...marks].sort((x, y) => x - y).map((uid) => [String(uid), ''])),
  };
  last = { marks, decl };
  return decl;
}

/** Appended to a rule that has just chosen the backend (in meta mark) for a new flow. */
export const COUNT_NEW_FLOW = ` meta mark @${NEW_FLOWS_SET}`;
