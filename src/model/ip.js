/**
 * Address families: which family a textual address is, IPv6 in its canonical text (RFC 5952)
 * and as a 128-bit number, subnet tests for both families. Pure.
 */
import { isIPv4, isIPv6 } from 'node:net';
/** 4, 6, or null for text that is no address (zones, "%eth0", are not addresses here). */
export function ipFamily(ip) {
    if (isIPv4(ip))
        return 4;
    return isIPv6(ip) && !ip.includes('%') ? 6 : null;
}
export const isIpv6Text = (ip) => ipFamily(ip) === 6;
/**
 * The canonical text of an IPv6 address (RFC 5952: lower case, no leading zeros, the longest
 * run of two or more zero groups as "::", the first one on a tie), or null when `ip` is not
 * one. An embedded IPv4 tail is written in hex ("::ffff:a00:1"): such addresses are refused
 * as VIPs and backends anyway (addresses.ts).
 */
export function canonicalIpv6(ip) {
    if (ipFamily(ip) !== 6)
        return null;
    return formatIpv6(parseIpv6(ip));
}
/** The 128-bit value of an IPv6 address, or null. */
export function parseIpv6(ip) {
    if (ipFamily(ip) !== 6)
        return null;
    let text = ip;
    const v4 = /^(.*:)(\d+\.\d+\.\d+\.\d+)$/.exec(text);
    if (v4) {
        const o = v4[2].split('.').map(Number);
        text = `${v4[1]}${((o[0] << 8) | o[1]).toString(16)}:${((o[2] << 8) | o[3]).toString(16)}`;
    }
    const [head, tail] = text.includes('::') ? text.split('::') : [text, null];
    const h = head === '' ? [] : head.split(':');
    const tl = tail === null || tail === '' ? [] : tail.split(':');
    const groups = tail === null ? h : [...h, ...Array(8 - h.length - tl.length).fill('0'), ...tl];
    return groups.reduce((n, g) => (n << 16n) | BigInt(parseInt(g, 16)), 0n);
}
/** RFC 5952 text of a 128-bit value. */
export function formatIpv6(n) {
    const groups = Array.from({ length: 8 }, (_, i) => Number((n >> BigInt(112 - 16 * i)) & 0xffffn));
    // The longest run of zero groups (at least two), the first one on a tie.
    let best = -1;
    let bestLen = 1;
    for (let i = 0; i < 8;) {
        if (groups[i] !== 0) {
            i++;
            continue;
        }
        let j = i;
        while (j < 8 && groups[j] === 0)
            j++;
        if (j - i > bestLen) {
            best = i;
            bestLen = j - i;
        }
        i = j;
    }
    const hex = groups.map((g) => g.toString(16));
    if (best < 0)
        return hex.join(':');
    return `${hex.slice(0, best).join(':')}::${hex.slice(best + bestLen).join(':')}`;
}
export function ipv6ToBuffer(ip) {
    const n = parseIpv6(ip);
    if (n === null)
        throw new TypeError(`not an IPv6 address: "${ip}"`);
    const buf = Buffer.alloc(16);
    buf.writeBigUInt64BE(n >> 64n, 0);
    buf.writeBigUInt64BE(n & 0xffffffffffffffffn, 8);
    return buf;
}
export const bufferToIpv6 = (buf) => formatIpv6((buf.readBigUInt64BE(0) << 64n) | buf.readBigUInt64BE(8));
const mask6 = (prefix) => (prefix === 0 ? 0n : ((1n << 128n) - 1n) ^ ((1n << BigInt(128 - prefix)) - 1n));
/** True when IPv6 `ip` lies in network/prefix (host bits of network ignored); false for anything invalid. */
export function inSubnet6(ip, network, prefix) {
    const a = parseIpv6(ip);
    const b = parseIpv6(network);
    if (a === null || b === null || !Number.isInteger(prefix) || prefix < 0 || prefix > 128)
        return false;
    const m = mask6(prefix);
    return (a & m) === (b & m);
}
/** The network of an IPv6 interface address, "2001:db8::/64". */
export const ipv6Network = (address, prefix) => `${formatIpv6(parseIpv6(address) & mask6(prefix))}/${prefix}`;
/** The address in the form nftfarm stores and answers: IPv4 as given, IPv6 canonical. */
export const canonicalIp = (ip) => canonicalIpv6(ip) ?? ip;
