/**
 * Persistence sessions as the kernel holds them: the elements of a farm's dynamic sessions
 * map (client key -> backend mark, with the time left before they expire), read with a raw
 * netlink dump of that one map. The API's session list, the statistics and the reconciler's
 * session flush all read them here; the key text is nft's element syntax, so a flush can
 * delete exactly the elements it read.
 */
import os from 'node:os';
import type { Persistence } from '../model/farm.js';
import type { LiveSession } from '../model/runtime.js';
import type { NftObjectReader } from './netlink/nft-objects.js';
import { bufferToIpv6 } from '../model/ip.js';

/** How a persistence map's key is laid out, to show the client it holds. */
export type SessionKeyLayout = Exclude<Persistence, ''>;

/** Marks (map data) are stored in host byte order. */
export const readMark = (b: Buffer): number => (os.endianness() === 'LE' ? b.readUInt32LE(0) : b.readUInt32BE(0));

const ipv4 = (b: Buffer, at = 0): string => `${b[at]}.${b[at + 1]}.${b[at + 2]}.${b[at + 3]}`;
// inet_service is big-endian; in a concatenation each field takes 4 bytes.
const port = (b: Buffer, at = 0): string => String(b.readUInt16BE(at));

/** A session key as nft writes it: "10.0.0.1", "5000", "10.0.0.1 . 80", "02:00:00:00:00:01". */
export function sessionKeyText(key: Buffer, layout: SessionKeyLayout): string {
  // An IPv6 farm's keys start with 16 address bytes (the map's type says which; its length does too).
  const v6 = (layout === 'srcip' && key.length === 16) || ((layout === 'srcip_srcport' || layout === 'srcip_dstport') && key.length === 20);
  // IPv6 keys put the port first (FLOW_KEYS6 says why).
  if (v6) return layout === 'srcip' ? bufferToIpv6(key.subarray(0, 16)) : `${port(key)} . ${bufferToIpv6(key.subarray(4, 20))}`;
  switch (layout) {
    case 'srcip':
      return ipv4(key);
    case 'srcport':
      return port(key);
    case 'srcmac':
      return [...key.subarray(0, 6)].map((x) => x.toString(16).padStart(2, '0')).join(':');
    case 'srcip_srcport':
    case 'srcip_dstport':
      return `${ipv4(key)} . ${port(key, 4)}`;
  }
}

/** The sessions in one map, by key; null when the map does not exist. */
export async function readSessions(objects: NftObjectReader, family: string, table: string, map: string, layout: SessionKeyLayout): Promise<LiveSession[] | null> {
  const elements = await objects.setElements(family, table, map);
  if (elements === null) return null;
  return elements
    .map((e) => ({ key: sessionKeyText(e.key, layout), mark: e.data ? readMark(e.data) : 0, expiresMs: e.expiresMs }))
    .sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
}
