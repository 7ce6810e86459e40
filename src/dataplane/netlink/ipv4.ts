// Pure IPv4 helpers: parsing, formatting, subnet tests, and choosing the connected interface.
import type { HostAddress, HostInterface } from './host-network.js';
import { inSubnet6, ipFamily } from '../../model/ip.js';

const OCTET = '(0|[1-9][0-9]{0,2})';
const DOTTED_QUAD = new RegExp(`^${OCTET}\\.${OCTET}\\.${OCTET}\\.${OCTET}$`);

/**
 * Parses a strict dotted quad into an unsigned 32-bit number, or null.
 * Rejects leading zeros ("010.1.1.1"): inet_aton reads them as octal (8.1.1.1) and other
 * parsers as decimal, so such input is ambiguous. Also rejects signs, spaces, short forms.
 */
export function parseIPv4(s: string): number | null {
  const m = DOTTED_QUAD.exec(s);
  if (m === null) return null;
  let n = 0;
  for (let i = 1; i <= 4; i++) {
    const octet = Number(m[i]);
    if (octet > 255) return null;
    n = n * 256 + octet;
  }
  return n;
}

/** Formats an unsigned 32-bit number as a dotted quad; throws RangeError outside 0..2^32-1. */
export function formatIPv4(n: number): string {
  if (!Number.isInteger(n) || n < 0 || n > 0xffffffff) {
    throw new RangeError(`not an IPv4 address value: ${n}`);
  }
  return [n >>> 24, (n >>> 16) & 0xff, (n >>> 8) & 0xff, n & 0xff].join('.');
}

/** The netmask of a prefix length as an unsigned 32-bit number (0 for /0). */
export function prefixMask(prefixLength: number): number {
  // `x << 32` is `x << 0` in JavaScript, so /0 needs its own case.
  return prefixLength === 0 ? 0 : (0xffffffff << (32 - prefixLength)) >>> 0;
}

/**
 * True when ip lies in network/prefixLength. Host bits of network are ignored, so an
 * interface address with its prefix ("10.0.0.1", 24) works as the network.
 * Returns false for any invalid argument.
 */
export function inSubnet(ip: string, network: string, prefixLength: number): boolean {
  const a = parseIPv4(ip);
  const b = parseIPv4(network);
  if (a === null || b === null) return false;
  if (!Number.isInteger(prefixLength) || prefixLength < 0 || prefixLength > 32) return false;
  const mask = prefixMask(prefixLength);
  return ((a & mask) >>> 0) === ((b & mask) >>> 0);
}

/**
 * The up, non-loopback interface whose connected network (of ip's family) contains ip.
 * Longest prefix wins; on a tie an interface that owns ip itself wins, then the lower ifindex.
 * An interface owning ip as a /32 matches through the same rule (a /32 contains itself).
 */
export function findConnectedInterface(
  interfaces: HostInterface[],
  ip: string,
): { iface: HostInterface; address: HostAddress } | null {
  const family = ipFamily(ip);
  if (family === null) return null;
  const contains = family === 4 ? inSubnet : inSubnet6;
  let best: { iface: HostInterface; address: HostAddress } | null = null;
  for (const iface of interfaces) {
    if (iface.name === 'lo' || !iface.up) continue;
    for (const address of iface.addresses) {
      if (!contains(ip, address.address, address.prefixLength)) continue;
      const candidate = { iface, address };
      if (best === null || ranksAbove(candidate, best, ip)) best = candidate;
    }
  }
  return best;
}

function ranksAbove(
  a: { iface: HostInterface; address: HostAddress },
  b: { iface: HostInterface; address: HostAddress },
  ip: string,
): boolean {
  if (a.address.prefixLength !== b.address.prefixLength) {
    return a.address.prefixLength > b.address.prefixLength;
  }
  const aOwns = a.address.address === ip;
  const bOwns = b.address.address === ip;
  if (aOwns !== bOwns) return aOwns;
  return a.iface.index < b.iface.index;
}
