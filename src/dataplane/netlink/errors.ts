// The one place where errors from the npm `netlink` package become HostNetworkError values.

export type HostNetworkErrorKind = 'not-found' | 'exists' | 'permission' | 'other';

export class HostNetworkError extends Error {
  override name = 'HostNetworkError';
  readonly kind: HostNetworkErrorKind;
  /** The errno name the kernel answered ("ENOENT", "ENETDOWN", ...), when there was one. */
  readonly code: string | undefined;

  constructor(kind: HostNetworkErrorKind, message: string, options: { code?: string; cause?: unknown } = {}) {
    super(message, { cause: options.cause });
    this.kind = kind;
    this.code = options.code;
  }
}

/**
 * errno name -> kind. ESRCH is what RTM_DELROUTE answers for a missing route, ENODEV what
 * neighbour and route requests answer for an unknown ifindex: both mean "not there".
 */
const KIND_BY_CODE: Record<string, HostNetworkErrorKind> = {
  ENOENT: 'not-found',
  ESRCH: 'not-found',
  ENODEV: 'not-found',
  EEXIST: 'exists',
  EPERM: 'permission',
  EACCES: 'permission',
};

/** The errno name in an error thrown by the `netlink` package ("Request rejected: ENOENT"). */
export function netlinkErrorCode(err: unknown): string | undefined {
  const message = err instanceof Error ? err.message : String(err);
  // The package only exposes the errno as text: `Error("Request rejected: <ERRNO>")`.
  const m = /^Request rejected: ([A-Z0-9]+)$/.exec(message);
  return m?.[1];
}

/** Wraps any error from the `netlink` package, naming the operation that failed. */
export function toHostNetworkError(operation: string, err: unknown): HostNetworkError {
  if (err instanceof HostNetworkError) return err;
  const code = netlinkErrorCode(err);
  const kind = code === undefined ? 'other' : (KIND_BY_CODE[code] ?? 'other');
  const detail = code ?? (err instanceof Error ? err.message : String(err));
  return new HostNetworkError(kind, `${operation}: ${detail}`, { code, cause: err });
}
