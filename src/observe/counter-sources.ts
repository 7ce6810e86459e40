/**
 * Where the kernel keeps the counters of one farm: which table (family and name), and which
 * of its objects count what. The counter reader knows only these descriptions, never a mode:
 * a data-plane mode that renders its farms elsewhere (the NAT modes' `ip` table) describes
 * its objects here and every stats route and metric reads them unchanged.
 */
import type { Farm } from '../model/farm.js';
import type { SessionKeyLayout } from '../dataplane/sessions.js';
import {
  FARM_DROPS_SET,
  FORWARDED_SET,
  NAT_TABLE_FAMILY,
  NAT_TABLE_NAME,
  NEW_FLOWS_SET,
  TABLE_FAMILY,
  TABLE_NAME,
  BACKEND_MACS_MAP,
  farmSessionsMap,
  flowsMap,
} from '../reconcile/names.js';


export interface FarmCounterSources {
  /** nft table family ('netdev', 'ip', 'inet'...) and name. */
  family: string;
  table: string;
  /**
   * A table-wide map or set keyed by backend mark whose per-element counters count packets
   * (and bytes) sent to each backend. Marks are store-wide: only the farm's own are taken.
   */
  forwarded: string;
  /** A table-wide set keyed by backend mark whose per-element counters count the flows each backend was chosen for. */
  newFlows: string;
  /**
   * A table-wide set keyed by farm slot whose per-element counters count the packets each farm
   * dropped for want of a backend; the farm's element says whether it is in the kernel at all.
   */
  dropped: { set: string; slot: number };
  /**
   * What is established per backend: the elements of a flow map (flow -> backend mark),
   * counted by value (dsr, stateless_dnat), or the connections conntrack tracks with the
   * backend's mark (nat, dnat).
   */
  established: { kind: 'pins'; map: string } | { kind: 'conntrack' };
  /** The persistence map (key -> backend mark, with expiry). */
  sessions: { map: string; layout: SessionKeyLayout } | null;
}

/** Where each mode's farms keep their counters. */
export function counterSourcesFor(farm: Pick<Farm, 'slot' | 'nattype' | 'protocol' | 'persistence'>): FarmCounterSources {
  const sessions = farm.persistence === '' ? null : { map: farmSessionsMap(farm.slot), layout: farm.persistence };
  const dropped = { set: FARM_DROPS_SET, slot: farm.slot };
  switch (farm.nattype) {
    case 'dsr':
    case 'stateless_dnat':
      // The table-wide macs map's per-element counters count what is forwarded to each backend;
      // the flow map of the farm's protocol holds every farm's pins (taken by backend mark).
      return {
        family: TABLE_FAMILY,
        table: TABLE_NAME,
        forwarded: BACKEND_MACS_MAP,
        newFlows: NEW_FLOWS_SET,
        dropped,
        established: { kind: 'pins', map: flowsMap(farm.protocol) },
        sessions,
      };
    case 'nat':
    case 'dnat':
      return {
        family: NAT_TABLE_FAMILY,
        table: NAT_TABLE_NAME,
        forwarded: FORWARDED_SET,
        newFlows: NEW_FLOWS_SET,
        dropped,
        established: { kind: 'conntrack' },
        sessions,
      };
  }
}
