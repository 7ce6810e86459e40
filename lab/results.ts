// JSON shapes exchanged between the lab programs (backend-server.js, client.js) and lab.ts.

/** What backend-server answers on `GET /` and echoes over UDP. */
export interface BackendReply {
  backend: string;
  /** Remote address as the backend saw it, "ip:port". */
  client: string;
  /** Local address the request arrived on, "ip:port" (the VIP under DSR). */
  local: string;
  /** UDP only: the datagram received, as text. */
  echo?: string;
}

export interface HttpManyResult {
  ok: number;
  failed: number;
  byBackend: Record<string, number>;
  /** The first few failures, "#<n>: <message>". */
  errors: string[];
  /** The first few parsed bodies. */
  samples: BackendReply[];
  ms: number;
}

export interface DownloadResult {
  ok: boolean;
  status: number;
  bytes: number;
  /** Content-Length announced by the server (-1 when absent). */
  expected: number;
  ms: number;
  error?: string;
}

export interface HoldReady {
  event: 'ready';
  opened: number;
  broken: number;
  /** Connections per backend that answered the connection's first request. */
  byBackend: Record<string, number>;
}

export interface HoldResult {
  /** Connections whose TCP handshake completed. */
  opened: number;
  /** Connections that saw an error, reset, close, 5xx, backend change or a late response. */
  broken: number;
  errors: string[];
  /** Responses received, over all connections. */
  requests: number;
  byBackend: Record<string, number>;
}

export interface UdpResult {
  sent: number;
  received: number;
  byBackend: Record<string, number>;
  /** Replies per source address "ip:port": under DSR every reply must come from the VIP. */
  from: Record<string, number>;
  errors: string[];
  samples: BackendReply[];
}

export function isBackendReply(v: unknown): v is BackendReply {
  if (typeof v !== 'object' || v === null) return false;
  const r = v as Record<string, unknown>;
  return typeof r.backend === 'string' && typeof r.client === 'string' && typeof r.local === 'string';
}

export function countInto(map: Record<string, number>, key: string): void {
  map[key] = (map[key] ?? 0) + 1;
}
