/**
 * The process's Linux capabilities, from /proc/self/status. nftfarm needs CAP_NET_ADMIN (nft,
 * netlink, conntrack, the net sysctls of its own network namespace) and CAP_NET_RAW (ping for
 * check_ping); a non-root process passes them to the nft, conntrack and ping it runs only
 * through the ambient set (execve drops the rest for a non-root user).
 */
import fs from 'node:fs';

export const CAP_NET_ADMIN = 12;
export const CAP_NET_RAW = 13;

export interface ProcessCapabilities {
  uid: number;
  effective: bigint;
  ambient: bigint;
}

/** Parses the Uid and CapEff/CapAmb lines of /proc/<pid>/status. */
export function parseStatus(text: string): ProcessCapabilities {
  const field = (name: string): string => new RegExp(`^${name}:\\s*(.+)$`, 'm').exec(text)?.[1]?.trim() ?? '';
  const caps = (name: string): bigint => {
    const hex = field(name);
    return /^[0-9a-f]+$/i.test(hex) ? BigInt(`0x${hex}`) : 0n;
  };
  // Uid: real, effective, saved, filesystem.
  const uid = Number(field('Uid').split(/\s+/)[1] ?? NaN);
  return { uid, effective: caps('CapEff'), ambient: caps('CapAmb') };
}

export function readCapabilities(statusFile = '/proc/self/status'): ProcessCapabilities {
  return parseStatus(fs.readFileSync(statusFile, 'utf8'));
}

export const has = (set: bigint, cap: number): boolean => (set & (1n << BigInt(cap))) !== 0n;
