/**
 * What the running appliance knows beyond the stored configuration: the reconciler's
 * progress and why a backend is not used. Produced by the reconciler, read by the API.
 */

export type FarmApplyState = 'pending' | 'applied' | 'failed' | 'stopped';

export interface BackendRuntime {
  /** False when the data plane cannot send traffic to it (no MAC yet, failed check...). */
  usable: boolean;
  reason?: string;
}

export interface FarmRuntime {
  /** The farm generation this describes; older than the farm's: a change is pending. */
  generation: number;
  state: FarmApplyState;
  appliedGeneration: number | null;
  error: string | null;
  interface: string | null;
  /** A setting the data plane serves differently from its name, said plainly. */
  notice?: string | null;
  /** Keyed by backend uid. */
  backends: Map<number, BackendRuntime>;
}

export interface SystemRuntime {
  mode: 'kernel' | 'dry-run' | 'off';
  storeGeneration: number;
  appliedGeneration: number | null;
  lastPassAt: string | null;
  /** When the first pass after the start succeeded: the start's convergence. */
  firstPassAt: string | null;
  lastError: string | null;
  consecutiveFailures: number;
  passes: number;
  /** The last pass that had something to do: full or incremental, its result, its duration. */
  lastPass: { kind: 'full' | 'incremental'; result: string; ms: number } | null;
}

/** A persistence session in the kernel: client key -> backend. */
export interface LiveSession {
  /** The client key as nft writes it: "10.0.0.1", "10.0.0.1 . 80", "02:00:00:00:00:01". */
  key: string;
  /** The backend's mark (its store uid). */
  mark: number;
  /** Milliseconds before the session expires unless the client comes back. */
  expiresMs: number | null;
}

export interface DataplaneView {
  farm(farmId: number): FarmRuntime | undefined;
  system(): SystemRuntime;
  /** The farm's live persistence sessions ([] without persistence or rules). */
  sessions(farmId: number): Promise<LiveSession[]>;
  /** Forgets the farm's sessions, or only those of one backend (by uid); returns how many. */
  flushSessions(farmId: number, backendUid?: number): Promise<number>;
}

/** The system status before any reconcile pass. */
export function initialSystemRuntime(mode: SystemRuntime['mode']): SystemRuntime {
  return { mode, storeGeneration: 0, appliedGeneration: null, lastPassAt: null, firstPassAt: null, lastError: null, consecutiveFailures: 0, passes: 0, lastPass: null };
}

/** The view when no reconciler runs (API-only tests, the OpenAPI writer): nothing is known. */
export const noDataplane: DataplaneView = {
  farm: () => undefined,
  system: () => initialSystemRuntime('off'),
  sessions: async () => [],
  flushSessions: async () => 0,
};

/** Connected IPv4 networks of this host, for validating VIPs and DSR backends. */
export interface ConnectedNetwork {
  interface: string;
  /** e.g. "10.250.0.0/24" */
  network: string;
}

export interface HostView {
  /**
   * For each IP, the interface whose connected network holds it (longest prefix), or null.
   * One call for all the IPs of a request: one look at the host.
   */
  connectedNetworks(ips: readonly string[]): Promise<(ConnectedNetwork | null)[]>;
}
