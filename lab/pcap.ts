// Decodes the pcap stream that `tcpdump -w -` writes, down to the headers lab tests assert on
// (MACs, ARP, IPv4, TCP/UDP ports and flags, ICMP). Binary pcap rather than tcpdump's text:
// the text format changes with the protocol (port 53 is printed as DNS, for instance), and
// parsing it would make assertions fragile. Pure: no I/O.
import { bufferToIpv6 } from '../src/model/ip.js';

export interface Frame {
  /** Seconds since the epoch, with sub-second precision. */
  time: number;
  srcMac: string;
  dstMac: string;
  /** After any 802.1Q tag. */
  ethertype: number;
  vlan?: number;
  arp?: { op: number; senderMac: string; senderIp: string; targetMac: string; targetIp: string };
  ipv4?: { src: string; dst: string; protocol: number; ttl: number; totalLength: number };
  /** `flags` lists the set flags in the order F S R P A U, e.g. "S", "SA", "PA", "FA", "R". */
  tcp?: { srcPort: number; dstPort: number; flags: string; seq: number; ack: number };
  udp?: { srcPort: number; dstPort: number; length: number };
  icmp?: { type: number; code: number };
  /** IPv6 (no extension headers are walked: the L4 header is read when it comes first). */
  ipv6?: { src: string; dst: string; nextHeader: number; hopLimit: number; payloadLength: number };
  /** `target` for neighbour solicitations (135) and advertisements (136). */
  icmpv6?: { type: number; code: number; target?: string };
}

export const ETHERTYPE_IPV4 = 0x0800;
export const ETHERTYPE_ARP = 0x0806;
export const ETHERTYPE_IPV6 = 0x86dd;
export const IPPROTO_ICMPV6 = 58;
export const IPPROTO_ICMP = 1;
export const IPPROTO_TCP = 6;
export const IPPROTO_UDP = 17;
const ETHERTYPE_VLAN = 0x8100;
const LINKTYPE_ETHERNET = 1;

/**
 * Parses a whole pcap capture. A record cut short at the end (the writer was killed mid-way)
 * is ignored. Throws on anything that is not an Ethernet pcap.
 */
export function parsePcap(buf: Buffer): Frame[] {
  if (buf.length === 0) return [];
  if (buf.length < 24) throw new Error(`pcap too short for a global header (${buf.length} bytes)`);
  const magicLE = buf.readUInt32LE(0);
  let little: boolean;
  let nano: boolean;
  if (magicLE === 0xa1b2c3d4 || magicLE === 0xa1b23c4d) {
    little = true;
    nano = magicLE === 0xa1b23c4d;
  } else {
    const magicBE = buf.readUInt32BE(0);
    if (magicBE !== 0xa1b2c3d4 && magicBE !== 0xa1b23c4d) {
      throw new Error(`not a pcap stream (magic 0x${magicLE.toString(16)})`);
    }
    little = false;
    nano = magicBE === 0xa1b23c4d;
  }
  const u32 = (off: number): number => (little ? buf.readUInt32LE(off) : buf.readUInt32BE(off));
  const linktype = u32(20) & 0x0fffffff;
  if (linktype !== LINKTYPE_ETHERNET) {
    throw new Error(`link type ${linktype} is not Ethernet: capture on one NIC, not "any"`);
  }
  const frames: Frame[] = [];
  let off = 24;
  while (off + 16 <= buf.length) {
    const sec = u32(off);
    const frac = u32(off + 4);
    const caplen = u32(off + 8);
    if (off + 16 + caplen > buf.length) break;
    const time = sec + frac / (nano ? 1e9 : 1e6);
    const frame = decodeEthernet(buf.subarray(off + 16, off + 16 + caplen), time);
    if (frame) frames.push(frame);
    off += 16 + caplen;
  }
  return frames;
}

/** Decodes one Ethernet frame; undefined when it is too short to carry an Ethernet header. */
export function decodeEthernet(b: Buffer, time = 0): Frame | undefined {
  if (b.length < 14) return undefined;
  const frame: Frame = { time, dstMac: mac(b, 0), srcMac: mac(b, 6), ethertype: b.readUInt16BE(12) };
  let off = 14;
  if (frame.ethertype === ETHERTYPE_VLAN && b.length >= 18) {
    frame.vlan = b.readUInt16BE(14) & 0x0fff;
    frame.ethertype = b.readUInt16BE(16);
    off = 18;
  }
  if (frame.ethertype === ETHERTYPE_ARP && b.length >= off + 28) {
    frame.arp = {
      op: b.readUInt16BE(off + 6),
      senderMac: mac(b, off + 8),
      senderIp: ip(b, off + 14),
      targetMac: mac(b, off + 18),
      targetIp: ip(b, off + 24),
    };
  } else if (frame.ethertype === ETHERTYPE_IPV4 && b.length >= off + 20) {
    decodeIpv4(b, off, frame);
  } else if (frame.ethertype === ETHERTYPE_IPV6 && b.length >= off + 40) {
    decodeIpv6(b, off, frame);
  }
  return frame;
}

function decodeIpv6(b: Buffer, off: number, frame: Frame): void {
  const nextHeader = b.readUInt8(off + 6);
  frame.ipv6 = {
    src: bufferToIpv6(b.subarray(off + 8, off + 24)),
    dst: bufferToIpv6(b.subarray(off + 24, off + 40)),
    nextHeader,
    hopLimit: b.readUInt8(off + 7),
    payloadLength: b.readUInt16BE(off + 4),
  };
  const l4 = off + 40;
  if (nextHeader === IPPROTO_ICMPV6 && b.length >= l4 + 2) {
    const type = b.readUInt8(l4);
    frame.icmpv6 = { type, code: b.readUInt8(l4 + 1) };
    if ((type === 135 || type === 136) && b.length >= l4 + 24) frame.icmpv6.target = bufferToIpv6(b.subarray(l4 + 8, l4 + 24));
  } else {
    decodeTransport(b, l4, nextHeader, frame);
  }
}

function decodeIpv4(b: Buffer, off: number, frame: Frame): void {
  const ihl = (b.readUInt8(off) & 0x0f) * 4;
  const protocol = b.readUInt8(off + 9);
  frame.ipv4 = {
    src: ip(b, off + 12),
    dst: ip(b, off + 16),
    protocol,
    ttl: b.readUInt8(off + 8),
    totalLength: b.readUInt16BE(off + 2),
  };
  const fragOffset = b.readUInt16BE(off + 6) & 0x1fff;
  if (fragOffset !== 0) return; // only the first fragment carries the L4 header
  const l4 = off + ihl;
  if (protocol === IPPROTO_ICMP && b.length >= l4 + 2) frame.icmp = { type: b.readUInt8(l4), code: b.readUInt8(l4 + 1) };
  else decodeTransport(b, l4, protocol, frame);
}

function decodeTransport(b: Buffer, l4: number, protocol: number, frame: Frame): void {
  if (protocol === IPPROTO_TCP && b.length >= l4 + 14) {
    const bits = b.readUInt8(l4 + 13);
    const names: [number, string][] = [[0x01, 'F'], [0x02, 'S'], [0x04, 'R'], [0x08, 'P'], [0x10, 'A'], [0x20, 'U']];
    frame.tcp = {
      srcPort: b.readUInt16BE(l4),
      dstPort: b.readUInt16BE(l4 + 2),
      seq: b.readUInt32BE(l4 + 4),
      ack: b.readUInt32BE(l4 + 8),
      flags: names.filter(([bit]) => bits & bit).map(([, n]) => n).join(''),
    };
  } else if (protocol === IPPROTO_UDP && b.length >= l4 + 8) {
    frame.udp = { srcPort: b.readUInt16BE(l4), dstPort: b.readUInt16BE(l4 + 2), length: b.readUInt16BE(l4 + 4) };
  }
}

/** One line per frame, for test diagnostics: "02:..:0a > 02:..:02 10.250.0.10:40000 > 10.250.0.100:80 tcp S". */
export function formatFrame(f: Frame): string {
  const l2 = `${f.srcMac} > ${f.dstMac}`;
  if (f.arp) {
    const what = f.arp.op === 1 ? `who-has ${f.arp.targetIp} tell ${f.arp.senderIp}` : `${f.arp.senderIp} is-at ${f.arp.senderMac}`;
    return `${l2} arp ${what}`;
  }
  if (f.ipv4) {
    const { src, dst } = f.ipv4;
    if (f.tcp) return `${l2} ${src}:${f.tcp.srcPort} > ${dst}:${f.tcp.dstPort} tcp ${f.tcp.flags}`;
    if (f.udp) return `${l2} ${src}:${f.udp.srcPort} > ${dst}:${f.udp.dstPort} udp ${f.udp.length}`;
    if (f.icmp) return `${l2} ${src} > ${dst} icmp type ${f.icmp.type}`;
    return `${l2} ${src} > ${dst} proto ${f.ipv4.protocol}`;
  }
  if (f.ipv6) {
    const { src, dst } = f.ipv6;
    if (f.tcp) return `${l2} [${src}]:${f.tcp.srcPort} > [${dst}]:${f.tcp.dstPort} tcp ${f.tcp.flags}`;
    if (f.udp) return `${l2} [${src}]:${f.udp.srcPort} > [${dst}]:${f.udp.dstPort} udp ${f.udp.length}`;
    if (f.icmpv6) return `${l2} ${src} > ${dst} icmp6 type ${f.icmpv6.type}${f.icmpv6.target ? ` target ${f.icmpv6.target}` : ''}`;
    return `${l2} ${src} > ${dst} next header ${f.ipv6.nextHeader}`;
  }
  return `${l2} ethertype 0x${f.ethertype.toString(16).padStart(4, '0')}`;
}

function mac(b: Buffer, off: number): string {
  return [...b.subarray(off, off + 6)].map((x) => x.toString(16).padStart(2, '0')).join(':');
}

function ip(b: Buffer, off: number): string {
  return [...b.subarray(off, off + 4)].join('.');
}
