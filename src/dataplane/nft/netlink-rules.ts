/**
 * Rules as netlink expressions, for the few rule shapes that make up most farm chains, so that
 * a first load writes those chains itself instead of through nft: at 10,000 farms nft spent
 * about 1 s parsing and evaluating them (half of its time; the other half is the kernel's, which
 * stays). Each shape below is matched on the exact text the renderer writes, and gives the
 * expressions nft 1.0.6 sends for that text (its `--debug=netlink` output is quoted on each);
 * any other rule is not compiled, and its chain goes through nft as before.
 * test/netns/netlink-rules.test.ts holds the kernel's listing of both ways equal.
 */
import os from 'node:os';
import { parseIPv4 } from '../netlink/ipv4.js';
import type { NftExpr, NftVerdict } from '../netlink/nft-elements.js';

// include/uapi/linux/netfilter/nf_tables.h
const NFT_REG_1 = 1;
const NFT_REG_2 = 2;
/** NFT_REG32_00 is 8: the 32-bit registers 13, 14 and 15 follow the 16-byte register 2 (12-15). */
const NFT_REG32_05 = 13;
const NFT_META_PROTOCOL = 1;
const NFT_META_MARK = 3;
const NFT_CMP_EQ = 0;
const NFT_PAYLOAD_NETWORK_HEADER = 1;
const NFT_PAYLOAD_TRANSPORT_HEADER = 2;
const ETH_P_IP = Buffer.from([0x08, 0x00]);
const NFT_PAYLOAD_CSUM_INET = 1;
const NFT_PAYLOAD_L4CSUM_PSEUDOHDR = 1;

const CHAIN = '([A-Za-z0-9_]{1,128})';
const U32 = 0xffffffff;

/** A mark as the kernel compares and sets it: 4 bytes in host order. */
function hostU32(value: number): Buffer {
  const out = Buffer.alloc(4);
  if (os.endianness() === 'LE') out.writeUInt32LE(value, 0);
  else out.writeUInt32BE(value, 0);
  return out;
}

const verdict = (kind: string, chain: string): NftExpr => ({ expr: 'verdict', verdict: { verdict: kind as 'jump' | 'goto', chain } satisfies NftVerdict });

/**
 * `jump c`, `goto c`:
 *   [ immediate reg 0 jump -> c ]
 */
const JUMP = new RegExp(`^(jump|goto) ${CHAIN}$`);

/**
 * `meta mark set N jump c`:
 *   [ immediate reg 1 N ] [ meta set mark with reg 1 ] [ immediate reg 0 jump -> c ]
 */
const MARK_AND_JUMP = new RegExp(`^meta mark set (\\d{1,10}) (jump|goto) ${CHAIN}$`);

/**
 * A new IPv4 flow's bucket, `meta mark 0 meta mark set jhash ip saddr . ip daddr . th sport .
 * th dport mod M seed 0xS offset 0xO`:
 *   [ meta load mark => reg 1 ] [ cmp eq reg 1 0x00000000 ]
 *   [ meta load protocol => reg 1 ] [ cmp eq reg 1 0x00000008 ]   (nft's dependency for ip)
 *   [ payload load 4b @ network header + 12 => reg 2 ]
 *   [ payload load 4b @ network header + 16 => reg 13 ]
 *   [ payload load 2b @ transport header + 0 => reg 14 ]
 *   [ payload load 2b @ transport header + 2 => reg 15 ]
 *   [ hash reg 1 = jhash(reg 2, 16, S) % mod M offset O ]
 *   [ meta set mark with reg 1 ]
 */
const NEW_FLOW_BUCKET = /^meta mark 0 meta mark set jhash ip saddr \. ip daddr \. th sport \. th dport mod (\d{1,10}) seed 0x([0-9a-f]{1,8}) offset 0x([0-9a-f]{1,8})$/;

/**
 * A stateless_dnat farm's replies, `ip saddr set A accept` (the IPv4 header's checksum and
 * the transport one's pseudo-header fixed on the way):
 *   [ meta load protocol => reg 1 ] [ cmp eq reg 1 0x00000008 ]
 *   [ immediate reg 1 A ]
 *   [ payload write reg 1 => 4b @ network header + 12 csum_type 1 csum_off 10 csum_flags 0x1 ]
 *   [ immediate reg 0 accept ]
 */
const REPLY_SOURCE = /^ip saddr set (\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}) accept$/;

/** The expressions of this rule, or null when it is not one of the shapes above. */
export function compileRule(text: string): NftExpr[] | null {
  let m = JUMP.exec(text);
  if (m) return [verdict(m[1]!, m[2]!)];
  m = MARK_AND_JUMP.exec(text);
  if (m) {
    const mark = Number(m[1]);
    if (mark > U32) return null;
    return [{ expr: 'immediate', dreg: NFT_REG_1, data: hostU32(mark) }, { expr: 'meta-set', key: NFT_META_MARK, sreg: NFT_REG_1 }, verdict(m[2]!, m[3]!)];
  }
  m = NEW_FLOW_BUCKET.exec(text);
  if (m) {
    const modulus = Number(m[1]);
    if (modulus < 1 || modulus > U32) return null;
    return [
      { expr: 'meta-load', key: NFT_META_MARK, dreg: NFT_REG_1 },
      { expr: 'cmp', sreg: NFT_REG_1, op: NFT_CMP_EQ, data: hostU32(0) },
      { expr: 'meta-load', key: NFT_META_PROTOCOL, dreg: NFT_REG_1 },
      { expr: 'cmp', sreg: NFT_REG_1, op: NFT_CMP_EQ, data: ETH_P_IP },
      { expr: 'payload-load', dreg: NFT_REG_2, base: NFT_PAYLOAD_NETWORK_HEADER, offset: 12, len: 4 },
      { expr: 'payload-load', dreg: NFT_REG32_05, base: NFT_PAYLOAD_NETWORK_HEADER, offset: 16, len: 4 },
      { expr: 'payload-load', dreg: NFT_REG32_05 + 1, base: NFT_PAYLOAD_TRANSPORT_HEADER, offset: 0, len: 2 },
      { expr: 'payload-load', dreg: NFT_REG32_05 + 2, base: NFT_PAYLOAD_TRANSPORT_HEADER, offset: 2, len: 2 },
      { expr: 'jhash', sreg: NFT_REG_2, dreg: NFT_REG_1, len: 16, modulus, seed: parseInt(m[2]!, 16), offset: parseInt(m[3]!, 16) },
      { expr: 'meta-set', key: NFT_META_MARK, sreg: NFT_REG_1 },
    ];
  }
  m = REPLY_SOURCE.exec(text);
  if (m) {
    const address = parseIPv4(m[1]!);
    if (address === null) return null;
    const bytes = Buffer.alloc(4);
    bytes.writeUInt32BE(address, 0);
    return [
      { expr: 'meta-load', key: NFT_META_PROTOCOL, dreg: NFT_REG_1 },
      { expr: 'cmp', sreg: NFT_REG_1, op: NFT_CMP_EQ, data: ETH_P_IP },
      { expr: 'immediate', dreg: NFT_REG_1, data: bytes },
      { expr: 'payload-write', sreg: NFT_REG_1, base: NFT_PAYLOAD_NETWORK_HEADER, offset: 12, len: 4, csumType: NFT_PAYLOAD_CSUM_INET, csumOffset: 10, csumFlags: NFT_PAYLOAD_L4CSUM_PSEUDOHDR },
      { expr: 'verdict', verdict: { verdict: 'accept' } },
    ];
  }
  return null;
}
