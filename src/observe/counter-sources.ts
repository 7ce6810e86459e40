/**
 * Where the kernel keeps the counters of one farm: which table (family and name), and which
 * of its objects count what. The counter reader knows only these descriptions, never a mode:
 * a data-plane mode that renders its farms elsewhere (the NAT modes' `ip` table) describes
 * its objects here and every stats route and metric reads them unchanged.
 */
import type { Farm, Persistence } from '../model/farm.js';
import {
  FORWARDED_SET,
  NAT_TABLE_FAMILY,
  NAT_TABLE_NAME,
  NEW_FLOWS_SET,
  TABLE_FAMILY,
  TABLE_NAME,
  BACKEND_MACS_MAP,
  farmChain,
  farmSessionsMap,
  flowsMap,
} from '../reconcile/names.js';

/** How a persistence map's key is laid out, to show the client it holds. */
export type SessionKeyLayout = Exclude<Persistence, ''>;

export interface FarmCounterSources {
  /** nft table family ('netdev', 'ip', 'inet'...) and name. */
  family: string;
  table: string;
  /**
   * A set or map keyed by backend mark whose per-element counters count packets (and bytes)
   * sent to each backend. It may be shared by farms (only the farm's own marks are taken);
   * a farm's own map also tells whether the farm is in the kernel at all.
   */
  forwarded: string | null;
  forwardedShared: boolean;
  /**
   * A set keyed by backend mark whose per-element counters count the flows each backend was
   * chosen for. It may hold other farms' backends too (marks are store-wide): only the farm's
   * own marks are taken from it.
   */
  newFlows: string | null;
  /** A chain whose last `counter` counts the farm's packets that no backend took. */
  dropped: string | null;
  /**
   * What is established per backend: the elements of a flow map (flow -> backend mark),
   * counted by value (dsr, stateless_dnat), or the connections conntrack tracks with the
   * backend's mark (nat, dnat).
   */
  established: { kind: 'pins'; map: string } | { kind: 'conntrack' } | null;
  /** The persistence map (key -> backend mark, with expiry). */
  sessions: { map: string; layout: SessionKeyLayout } | null;
}

/** null: the farm's mode has no counters (no rules in this data plane). */
export function counterSourcesFor(farm: Farm): FarmCounterSources | null {
  const sessions = farm.persistence === '' ? null : { map: farmSessionsMap(farm.id), layout: farm.persistence };
  switch (farm.nattype) {
    case 'dsr':
    case 'stateless_dnat':
      // The table-wide macs map's per-element counters count what is forwarded to each backend;
      // the flow map of the farm's protocol holds every farm's pins (taken by backend mark).
      return {
        family: TABLE_FAMILY,
        table: TABLE_NAME,
        forwarded: BACKEND_MACS_MAP,
        forwardedShared: true,
        newFlows: NEW_FLOWS_SET,
        dropped: farmChain(farm.id),
        established: { kind: 'pins', map: flowsMap(farm.protocol) },
        sessions,
      };
    case 'nat':
    case 'dnat':
      return {
        family: NAT_TABLE_FAMILY,
        table: NAT_TABLE_NAME,
        forwarded: FORWARDED_SET,
        forwardedShared: true,
        newFlows: NEW_FLOWS_SET,
        dropped: farmChain(farm.id),
        established: { kind: 'conntrack' },
        sessions,
      };
    default:
      return null;
  }
}
