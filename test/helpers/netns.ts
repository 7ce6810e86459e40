/**
 * A throwaway network namespace with an `eth0` (a veth whose peer sits in a second
 * namespace), for running the real `nft` against the kernel without touching the host.
 */
import { execFileSync, spawnSync } from 'node:child_process';

export interface NftNamespace {
  ns: string;
  /** Runs nft inside the namespace; returns status and output, never throws. */
  nft(args: string[], input?: string): { status: number; stdout: string; stderr: string };
  /** Runs a command inside the namespace; throws on failure. */
  run(argv: string[]): string;
}

interface Teardown {
  teardown(fn: () => void | Promise<void>): void;
}

export function nftNamespace(t: Teardown, prefix: string): NftNamespace {
  const ns = `${prefix}-${process.pid}`;
  const peer = `${ns}-p`;
  for (const name of [ns, peer]) spawnSync('ip', ['netns', 'del', name]);
  execFileSync('ip', ['netns', 'add', ns]);
  execFileSync('ip', ['netns', 'add', peer]);
  t.teardown(() => {
    for (const name of [ns, peer]) spawnSync('ip', ['netns', 'del', name]);
  });
  execFileSync('ip', ['link', 'add', 'eth0', 'netns', ns, 'address', '02:00:0a:fa:00:02', 'type', 'veth', 'peer', 'name', 'eth0', 'netns', peer]);
  execFileSync('ip', ['-n', ns, 'link', 'set', 'lo', 'up']);
  execFileSync('ip', ['-n', ns, 'link', 'set', 'eth0', 'up']);
  execFileSync('ip', ['-n', ns, 'addr', 'add', '10.250.0.2/24', 'dev', 'eth0']);
  return {
    ns,
    nft(args, input) {
      const r = spawnSync('ip', ['netns', 'exec', ns, 'nft', ...args], { input: input ?? '', encoding: 'utf8' });
      return { status: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
    },
    run: (argv) => execFileSync('ip', ['netns', 'exec', ns, ...argv], { encoding: 'utf8' }),
  };
}
