/** What `serve` checks before touching anything, so a missing tool or right fails clearly. */
import fs from 'node:fs';
import { NftError, type NftRunner } from './nft/runner.js';

export class KernelAccessError extends Error {}

export async function preflight(nft: NftRunner): Promise<void> {
  try {
    await nft.run(['--version']);
  } catch (err) {
    if (err instanceof NftError && err.kind === 'missing-binary') {
      throw new KernelAccessError(`${err.message}; or run with --dry-run to render rulesets without applying them`);
    }
    throw err;
  }
  try {
    await nft.run(['-t', 'list', 'tables']);
  } catch (err) {
    if (err instanceof NftError && (err.kind === 'permission' || err.kind === 'rejected')) {
      throw new KernelAccessError(
        'nft cannot read the kernel ruleset: nftfarm needs root or the CAP_NET_ADMIN capability ' +
          `(e.g. docker run --cap-add NET_ADMIN --network host); or run with --dry-run. nft said: ${err.stderr || err.message}`,
      );
    }
    throw err;
  }
  try {
    fs.accessSync('/proc/sys/net/ipv4/conf/all/forwarding', fs.constants.W_OK);
  } catch {
    throw new KernelAccessError(
      'cannot write /proc/sys/net/ipv4/conf/*: announcing VIPs needs root (CAP_NET_ADMIN and a writable /proc/sys; in a container use --network host)',
    );
  }
}
