/**
 * The objects that count new flows per backend. Packets and bytes per backend are counted by
 * each farm's macs map itself (its `counter` flag); what nftables cannot see there is which
 * packets start a flow, so the rules that choose a backend for a flow (the flow map missed)
 * end with a lookup in a counted set of backend marks: a hit bumps that backend's counter and
 * changes nothing else.
 */
import type { SetDecl } from '../dataplane/nft/ruleset.js';
import type { DesiredFarm } from './desired.js';
import { FORWARDED_SET, NEW_FLOWS_SET } from './names.js';

/** The last set rendered per name; rendering stays a function of its input (equal input, equal output). */
const last = new Map<string, { marks: number[]; decl: SetDecl }>();

/**
 * A counted set of every backend of the given farms, whatever its role: a counter survives
 * drains, cuts and MAC changes, and starts from 0 only for a new backend. Declared before
 * the farms' sets, so the kernel finds it first in its set list.
 */
function countedMarks(name: string, farms: readonly DesiredFarm[]): SetDecl {
  const marks = farms.flatMap((f) => f.backends.map((b) => b.uid));
  // The same marks as last time: the same object, which the transaction planner skips
  // without comparing its (tens of thousands of) elements.
  const previous = last.get(name);
  if (previous && previous.marks.length === marks.length && previous.marks.every((m, i) => m === marks[i])) return previous.decl;
  const decl: SetDecl = {
    kind: 'set',
    name,
    body: ['type mark', 'counter'],
    typeKey: 'mark',
    elements: new Map([...marks].sort((x, y) => x - y).map((uid) => [String(uid), ''])),
  };
  last.set(name, { marks, decl });
  return decl;
}

/** New flows per backend, for the farms of one table. */
export const newFlowsSet = (farms: readonly DesiredFarm[]): SetDecl => countedMarks(NEW_FLOWS_SET, farms);

/**
 * Packets and bytes sent to each backend of the conntrack modes (nat, dnat): their chains
 * see only a connection's first packet, so a filter chain on the forward hook counts every
 * packet of the original direction by its connection mark here.
 */
export const forwardedSet = (farms: readonly DesiredFarm[]): SetDecl => countedMarks(FORWARDED_SET, farms);

/** Appended to a rule that has just chosen the backend (in `mark`) for a new flow. */
export const countNewFlow = (mark: 'meta mark' | 'ct mark'): string => ` ${mark} @${NEW_FLOWS_SET}`;
