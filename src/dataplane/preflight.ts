/** What `serve` checks before touching anything, so a missing tool or right fails clearly. */
import fs from 'node:fs';
import { NftError, type NftRunner } from './nft/runner.js';
import { CAP_NET_ADMIN, CAP_NET_RAW, has, readCapabilities, type ProcessCapabilities } from './capabilities.js';

export class KernelAccessError extends Error {}

const HOW =
  'run nftfarm as root, or as its own user with CAP_NET_ADMIN and CAP_NET_RAW as ambient capabilities ' +
  '(the systemd unit nftfarm.service does; or setpriv --inh-caps=+net_admin,+net_raw --ambient-caps=+net_admin,+net_raw); ' +
  'in a container: --cap-add NET_ADMIN --network host; or run with --dry-run';

/**
 * Checks the capabilities, the nft binary and the kernel writes nftfarm makes. Returns
 * warnings for what only some features need (CAP_NET_RAW: check_ping).
 */
export async function preflight(nft: NftRunner, caps: ProcessCapabilities = readCapabilities(), sysctlProbe = '/proc/sys/net/ipv4/conf/all/forwarding'): Promise<string[]> {
  const warnings: string[] = [];
  if (caps.uid !== 0) {
    if (!has(caps.effective, CAP_NET_ADMIN)) throw new KernelAccessError(`nftfarm runs as uid ${caps.uid} without CAP_NET_ADMIN: ${HOW}`);
    // execve keeps a non-root process's capabilities only in the ambient set.
    if (!has(caps.ambient, CAP_NET_ADMIN)) {
      throw new KernelAccessError(`nftfarm holds CAP_NET_ADMIN, but not as an ambient capability, so the nft and conntrack it runs would not: ${HOW}`);
    }
    if (!has(caps.ambient, CAP_NET_RAW)) warnings.push('no ambient CAP_NET_RAW: check_ping health checks will fail (ping needs it)');
  }
  try {
    await nft.run(['--version']);
  } catch (err) {
    if (err instanceof NftError && err.kind === 'missing-binary') {
      throw new KernelAccessError(`${err.message}; or run with --dry-run to render rulesets without applying them`);
    }
    throw err;
  }
  try {
    // A transaction the kernel checks and does not commit: it needs CAP_NET_ADMIN like every
    // write, and unlike a listing it costs nothing with a large ruleset in place (`nft list
    // tables` reads the whole ruleset first: 2.2 s with 1,000 farms' selection elements).
    await nft.run(['-c', 'add', 'table', 'inet', 'nftfarm_preflight']);
  } catch (err) {
    if (err instanceof NftError && (err.kind === 'permission' || err.kind === 'rejected')) {
      throw new KernelAccessError(`nft cannot change the kernel ruleset: nftfarm needs CAP_NET_ADMIN: ${HOW}. nft said: ${err.stderr || err.message}`);
    }
    throw err;
  }
  // An open for writing, not access(2): access() checks the real uid and ignores
  // capabilities for a non-root process, while the kernel lets CAP_NET_ADMIN write the net
  // sysctls of the process's own network namespace (net_ctl_permissions).
  try {
    fs.closeSync(fs.openSync(sysctlProbe, 'r+'));
  } catch (err) {
    throw new KernelAccessError(
      `cannot write ${sysctlProbe} (${(err as NodeJS.ErrnoException).code}): announcing VIPs writes net.ipv4.conf.* sysctls, which needs CAP_NET_ADMIN ` +
        `in the network namespace nftfarm runs in and a writable /proc/sys (in a container: --network host; with systemd: no ProtectKernelTunables). ${HOW}`,
    );
  }
  return warnings;
}
