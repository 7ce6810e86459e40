/**
 * Which addresses can be a VIP or a backend: only unicast addresses a host can own, of
 * either family. Pure; the API refuses the others with the rule that excludes them.
 */
import { inSubnet6, ipFamily } from './ip.js';

interface Block {
  base: number;
  prefix: number;
  why: string;
}

const toInt = (ip: string): number => ip.split('.').reduce((n, o) => n * 256 + Number(o), 0);

const mask = (prefix: number): number => (prefix === 0 ? 0 : (0xffffffff << (32 - prefix)) >>> 0);

const inBlock = (ip: number, base: number, prefix: number): boolean => ((ip & mask(prefix)) >>> 0) === base;

/** Checked in order: the limited broadcast address is inside 240.0.0.0/4 but named on its own. */
const NOT_UNICAST: Block[] = [
  { base: toInt('255.255.255.255'), prefix: 32, why: '255.255.255.255 is the limited broadcast address' },
  { base: toInt('0.0.0.0'), prefix: 8, why: "0.0.0.0/8 is 'this network' (RFC 1122), never a destination" },
  { base: toInt('127.0.0.0'), prefix: 8, why: '127.0.0.0/8 is loopback (RFC 1122), local to each host' },
  { base: toInt('224.0.0.0'), prefix: 4, why: '224.0.0.0/4 is multicast (RFC 5771)' },
  { base: toInt('240.0.0.0'), prefix: 4, why: '240.0.0.0/4 is reserved (RFC 1112), not routed' },
];

/** IPv6 blocks a VIP or backend may not be in, checked in order. */
const NOT_UNICAST6: { network: string; prefix: number; why: string }[] = [
  { network: '::', prefix: 128, why: ':: is the unspecified address (RFC 4291), never a destination' },
  { network: '::1', prefix: 128, why: '::1 is loopback (RFC 4291), local to each host' },
  { network: 'ff00::', prefix: 8, why: 'ff00::/8 is multicast (RFC 4291)' },
  {
    network: 'fe80::',
    prefix: 10,
    why: 'fe80::/10 is link-local (RFC 4291): it means something only with an interface (a zone), which a VIP or backend cannot name',
  },
  { network: '::ffff:0:0', prefix: 96, why: '::ffff:0:0/96 is IPv4-mapped (RFC 4291): use the IPv4 address itself, in a farm of that family' },
];

/** Why `ip` (a valid IPv4 or IPv6 address) is not a unicast address, or null when it is one. */
export function notUnicastReason(ip: string): string | null {
  if (ipFamily(ip) === 6) return NOT_UNICAST6.find((b) => inSubnet6(ip, b.network, b.prefix))?.why ?? null;
  const n = toInt(ip);
  return NOT_UNICAST.find((b) => inBlock(n, b.base, b.prefix))?.why ?? null;
}

/**
 * Why `ip` cannot be a host of the connected `network` ("10.0.0.0/24"): its network or
 * broadcast address (a /31 or /32 has neither, RFC 3021).
 */
export function subnetAddressReason(ip: string, network: string): string | null {
  const [base, len] = network.split('/') as [string, string];
  // IPv6 has no broadcast address; every address of a connected network can be a host.
  if (ipFamily(ip) !== 4 || ipFamily(base) !== 4) return null;
  const prefix = Number(len);
  if (!(prefix <= 30)) return null;
  const n = toInt(ip);
  const net = (toInt(base) & mask(prefix)) >>> 0;
  if (!inBlock(n, net, prefix)) return null;
  if (n === net) return `${ip} is the network address of ${network}`;
  if (n === (net | (~mask(prefix) >>> 0)) >>> 0) return `${ip} is the broadcast address of ${network}`;
  return null;
}
