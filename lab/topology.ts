// Fixed addressing of the network-namespace lab. Pure: no I/O.
//
// Scheme: every host MAC is 02:00 followed by the host's IPv4 address in hex, so a MAC read
// in a capture or a ruleset names its host at a glance (10.250.0.21 -> 02:00:0a:fa:00:15).
// Rulesets rendered for the lab can therefore use static MACs.

export const LAB_SUBNET = '10.250.0.0/24';
export const LAB_PREFIX_LEN = 24;
export const LB_IP = '10.250.0.2';
export const CLIENT_IP = '10.250.0.10';
/** Backend i (1-based) lives at 10.250.0.(BACKEND_IP_BASE + i): b1 = .21, b2 = .22, ... */
export const BACKEND_IP_BASE = 20;
/** An address of the lab subnet that no lab host owns: tests use it as the VIP. */
export const LAB_VIP = '10.250.0.100';
/**
 * IPv6 labs (issue 13): every host also (or only) has fd00:250::<the digits of its IPv4 host
 * part> /64: lb fd00:250::2, client fd00:250::10, b1 fd00:250::21. MACs stay as above.
 */
export const LAB_SUBNET6 = 'fd00:250::/64';
export const LAB_PREFIX_LEN6 = 64;
export const LAB_VIP6 = 'fd00:250::100';
/** The IPv6 address of a lab host, from its IPv4 address. */
export const ipv6ForIp = (ip: string): string => `fd00:250::${ip.split('.')[3]}`;
/** Keeps backend addresses (.21 - .70) clear of LAB_VIP. */
export const MAX_BACKENDS = 50;

/** Every host namespace has exactly one NIC, and it has this name. */
export const HOST_IFACE = 'eth0';
/** The bridge inside the switch namespace. */
export const BRIDGE_NAME = 'br0';

export function macForIp(ip: string): string {
  const octets = parseIpv4(ip);
  return ['02', '00', ...octets.map((o) => o.toString(16).padStart(2, '0'))].join(':');
}

export const LB_MAC = macForIp(LB_IP); // 02:00:0a:fa:00:02
export const CLIENT_MAC = macForIp(CLIENT_IP); // 02:00:0a:fa:00:0a

export function backendName(index: number): string {
  checkBackendIndex(index);
  return `b${index}`;
}

export function backendIp(index: number): string {
  checkBackendIndex(index);
  return `10.250.0.${BACKEND_IP_BASE + index}`;
}

export function backendMac(index: number): string {
  return macForIp(backendIp(index));
}

/** Role of a host namespace inside a lab: the part after "<prefix>-". */
export type HostRole = 'client' | 'lb' | `b${number}`;

export function namespaceName(prefix: string, role: HostRole | 'sw'): string {
  return `${prefix}-${role}`;
}

/**
 * Name of the switch-side veth of a host. Interface names are limited to 15 bytes
 * (IFNAMSIZ - 1) and must be unique inside the switch namespace, so they derive from the
 * host's short role, never from the lab prefix: "p-client", "p-lb", "p-b1".
 */
export function switchPortName(role: HostRole): string {
  return `p-${role}`;
}

/**
 * Lab prefixes become namespace names and, through destroyStaleLabs, a deletion pattern:
 * keep them to short lowercase words so no prefix can match another lab's namespaces.
 */
const PREFIX_RE = /^[a-z][a-z0-9]{1,11}$/;

export function checkPrefix(prefix: string): void {
  if (!PREFIX_RE.test(prefix)) {
    throw new Error(`lab prefix must match ${PREFIX_RE} (got ${JSON.stringify(prefix)})`);
  }
}

/** True for exactly the namespace names a lab with this prefix creates. */
export function isLabNamespace(prefix: string, ns: string): boolean {
  if (!ns.startsWith(`${prefix}-`)) return false;
  return /^(sw|client|lb|b[1-9][0-9]*)$/.test(ns.slice(prefix.length + 1));
}

export function parseIpv4(ip: string): number[] {
  const parts = ip.split('.');
  const octets = parts.map((p) => (/^[0-9]{1,3}$/.test(p) ? Number(p) : NaN));
  if (octets.length !== 4 || octets.some((o) => !(o >= 0 && o <= 255))) {
    throw new Error(`not an IPv4 address: ${JSON.stringify(ip)}`);
  }
  return octets;
}

function checkBackendIndex(index: number): void {
  if (!Number.isInteger(index) || index < 1 || index > MAX_BACKENDS) {
    throw new Error(`backend index must be 1..${MAX_BACKENDS} (got ${index})`);
  }
}
