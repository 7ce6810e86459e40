/**
 * nftfarm's BIRD 2 configuration: one static protocol holding a /32 per VIP to announce, and
 * one BGP session per neighbour that exports exactly those routes. Pure: the same settings
 * and VIPs give the same text (golden tests, and `bird -p -c` parses every golden file).
 *
 * What decides whether ECMP works (issue 12):
 * - every node announces a VIP with the same attributes: no MED, prepend or community
 *   unless configured, and then the configured ones, identical on every node;
 * - graceful restart and long-lived graceful restart are off unless configured: a dead node
 *   must leave the router's table when its hold time expires, not linger as stale;
 * - the VIP routes exist only in BIRD (blackhole static routes, no kernel protocol): BIRD
 *   never changes this node's forwarding table.
 */
import type { BgpSettings } from './bgp-settings.js';

export const STATIC_PROTOCOL = 'nftfarm_vips';

/** The BGP protocol name of a neighbour: its address, spelled so BIRD accepts it. */
export const neighborProtocol = (address: string): string => `peer_${address.replace(/\./g, '_')}`;

export interface BirdConfigInput {
  settings: BgpSettings;
  /** The router id in effect: the configured one, or this node's address toward its neighbour. */
  routerId: string;
  /** The VIPs to announce now (already decided: applied in the kernel, able to take new flows). */
  vips: readonly string[];
}

export function renderBirdConfig({ settings, routerId, vips }: BirdConfigInput): string {
  const s = settings;
  const lines: string[] = [
    '# Written by nftfarm: do not edit, it is rewritten on every change of farms or BGP settings.',
    'log stderr all;',
    `router id ${routerId};`,
    // One token per time, so `show protocols` parses by columns.
    'timeformat protocol "%s";',
    '',
    'protocol device {',
    '  scan time 10;',
    '}',
    '',
    `protocol static ${STATIC_PROTOCOL} {`,
    '  ipv4;',
  ];
  for (const vip of [...new Set(vips)].sort(byAddress)) lines.push(`  route ${vip}/32 blackhole;`);
  lines.push('}', '');

  const attributes: string[] = [];
  if (s.med !== null) attributes.push(`bgp_med = ${s.med};`);
  for (const c of s.communities) {
    const [a, v] = c.split(':');
    attributes.push(`bgp_community.add((${a}, ${v}));`);
  }
  const exportFilter =
    attributes.length === 0
      ? `where proto = "${STATIC_PROTOCOL}"`
      : `filter { if proto != "${STATIC_PROTOCOL}" then reject; ${attributes.join(' ')} accept; }`;

  for (const n of s.neighbors) {
    lines.push(
      `protocol bgp ${neighborProtocol(n.address)} {`,
      `  local as ${s.asn};`,
      `  neighbor ${n.address} as ${n.asn};`,
      `  hold time ${s.holdTime};`,
      // Keepalives every third of the hold time (RFC 4271's advice), at least every second.
      `  keepalive time ${s.holdTime === 0 ? 0 : Math.max(1, Math.floor(s.holdTime / 3))};`,
      // Come back quickly after a failure: a restarted node or router must not wait minutes.
      // BIRD's default waits 5 s before the first connection: a (re)started node rejoins late.
      '  start delay time 1;',
      '  connect retry time 2;',
      '  error wait time 1, 10;',
      `  graceful restart ${s.gracefulRestart ? 'on' : 'off'};`,
      '  long lived graceful restart off;',
      '  ipv4 {',
      '    import none;',
      `    export ${exportFilter};`,
      '    next hop self;',
      '  };',
      '}',
      '',
    );
  }
  return `${lines.join('\n').trimEnd()}\n`;
}

function byAddress(a: string, b: string): number {
  const key = (ip: string) => ip.split('.').reduce((n, o) => n * 256 + Number(o), 0);
  return key(a) - key(b);
}
