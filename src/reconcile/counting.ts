/**
 * The objects that count a farm's new flows per backend. Packets and bytes per backend are
 * counted by the macs map itself (its `counter` flag); what nftables cannot see there is
 * which packets start a flow, so the rules that choose a backend for a flow (the flow map
 * missed) end with a lookup in a counted set of backend marks: a hit bumps that backend's
 * counter and changes nothing else.
 */
import type { SetDecl } from '../dataplane/nft/ruleset.js';
import type { DesiredFarm } from './desired.js';
import { farmNewFlowsSet } from './names.js';

/** Every backend of the farm, whatever its role: its counter survives drains, cuts and MAC changes. */
export function newFlowsSet(farm: DesiredFarm): SetDecl {
  const marks = [...new Set(farm.backends.map((b) => b.uid))].sort((a, b) => a - b);
  return {
    kind: 'set',
    name: farmNewFlowsSet(farm.farmId),
    body: ['type mark', 'counter'],
    typeKey: 'mark',
    elements: new Map(marks.map((uid) => [String(uid), ''])),
  };
}

/** Appended to a rule that has just chosen the backend (in meta mark) for a new flow. */
export const countNewFlow = (farmId: number): string => ` meta mark @${farmNewFlowsSet(farmId)}`;
