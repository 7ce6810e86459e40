/**
 * The objects that count per backend. Packets and bytes per backend are counted by the
 * table-wide MAC map (dsr, stateless_dnat) or by the forwarded set below (nat, dnat); what
 * nftables cannot see there is which packets start a flow, so the rules that choose a backend
 * for a flow end with a lookup in a counted set of backend marks: a hit bumps that backend's
 * counter and changes nothing else.
 */
import { reuseUnchanged, type SetDecl } from '../dataplane/nft/ruleset.js';
import type { DesiredFarm } from './desired.js';
import { FORWARDED_SET, NEW_FLOWS_SET } from './names.js';

/**
 * A counted set of every backend of the given farms, whatever its role: a counter survives
 * drains, cuts and MAC changes, and starts from 0 only for a new backend. The same object as
 * last time (kept in `memo`) while the marks do not change.
 */
function countedMarks(name: string, farms: readonly DesiredFarm[], memo: Map<string, SetDecl>): SetDecl {
  const marks = farms.flatMap((f) => f.backends.map((b) => b.uid)).sort((x, y) => x - y);
  const decl: SetDecl = { kind: 'set', name, body: ['type mark', 'counter'], typeKey: 'mark', elements: new Map(marks.map((uid) => [String(uid), ''])) };
  return reuseUnchanged(memo, name, decl);
}

/** New flows per backend. The same object in both tables: they hold the same marks. */
export const newFlowsSet = (farms: readonly DesiredFarm[], memo: Map<string, SetDecl>): SetDecl => countedMarks(NEW_FLOWS_SET, farms, memo);

/**
 * Packets and bytes sent to each backend of the conntrack modes (nat, dnat): their chains
 * see only a connection's first packet, so a filter chain on the forward hook counts every
 * packet of the original direction by its connection mark here.
 */
export const forwardedSet = (farms: readonly DesiredFarm[], memo: Map<string, SetDecl>): SetDecl => countedMarks(FORWARDED_SET, farms, memo);

/** Appended to a rule that has just chosen the backend (in `mark`) for a new flow. */
export const countNewFlow = (mark: 'meta mark' | 'ct mark'): string => ` ${mark} @${NEW_FLOWS_SET}`;
