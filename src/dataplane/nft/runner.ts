/**
 * The exec seam to the `nft` binary. `apply` pipes one script to `nft -f -`: nft turns a
 * file into one netlink batch, so the kernel applies all of it or none of it.
 */
import { spawn } from 'node:child_process';

export type NftErrorKind = 'missing-binary' | 'permission' | 'rejected' | 'timeout';

export class NftError extends Error {
  constructor(
    readonly kind: NftErrorKind,
    message: string,
    readonly stderr = '',
  ) {
    super(message);
  }
}

export interface NftRunner {
  /** Applies a script atomically; throws NftError with nft's complaint when rejected. */
  apply(script: string): Promise<void>;
  /** Has the kernel check a script and commit nothing (nft -c); throws NftError as apply would. */
  check(script: string): Promise<void>;
  /** Runs nft with arguments and returns stdout (listings). */
  run(args: string[]): Promise<string>;
}

export interface RunnerOptions {
  binary?: string;
  timeoutMs?: number;
}

export function createNftRunner(options: RunnerOptions = {}): NftRunner {
  const binary = options.binary ?? 'nft';
  const timeoutMs = options.timeoutMs ?? 120_000;
  const exec = (args: string[], input?: string) => execNft(binary, args, input, timeoutMs);
  return {
    async apply(text) {
      // A cold load of thousands of farms legitimately takes minutes (the kernel's cost grows
      // with the table); a fixed limit would kill it and retry forever. Scale with the script.
      const limit = Math.max(timeoutMs, Math.round((text.length / 1e6) * 20_000));
      await execNft(binary, ['-f', '-'], text, limit);
    },
    async check(text) {
      const limit = Math.max(timeoutMs, Math.round((text.length / 1e6) * 20_000));
      await execNft(binary, ['-c', '-f', '-'], text, limit);
    },
    run: (args) => exec(args),
  };
}

function execNft(binary: string, args: string[], input: string | undefined, timeoutMs: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(binary, args, { stdio: ['pipe', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    let settled = false;
    const finish = (fn: () => void) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      fn();
    };
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      finish(() => reject(new NftError('timeout', `nft ${args.join(' ')} did not finish within ${timeoutMs} ms`)));
    }, timeoutMs);
    child.stdout.on('data', (d: Buffer) => out.push(d));
    child.stderr.on('data', (d: Buffer) => err.push(d));
    child.on('error', (e: NodeJS.ErrnoException) => {
      finish(() =>
        reject(
          e.code === 'ENOENT'
            ? new NftError('missing-binary', `the nft binary ('${binary}') was not found: install the nftables package (apt-get install nftables)`)
            : e,
        ),
      );
    });
    child.on('close', (code) => {
      const stderr = Buffer.concat(err).toString('utf8').trim();
      if (code === 0) finish(() => resolve(Buffer.concat(out).toString('utf8')));
      else {
        const kind: NftErrorKind = /Operation not permitted|Permission denied/.test(stderr) ? 'permission' : 'rejected';
        finish(() => reject(new NftError(kind, `nft ${args.join(' ')} failed (exit ${code}): ${firstLines(stderr)}`, stderr)));
      }
    });
    // An EPIPE when nft exits early is reported through 'close' with nft's own message.
    child.stdin.on('error', () => {});
    child.stdin.end(input ?? '');
  });
}

const firstLines = (text: string, max = 6): string => text.split('\n').slice(0, max).join('\n');
