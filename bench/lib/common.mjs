/** What bench.mjs and soak.mjs share: the machine line, a seeded generator, the cheap convergence poll. */
import { execFileSync } from 'node:child_process';
import os from 'node:os';

/** A command's trimmed output, or 'unavailable' (the machine description must not fail the run). */
export const sh = (cmd, args) => {
  try {
    return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }).trim();
  } catch {
    return 'unavailable';
  }
};

/** A seeded generator: the same sequence on every run. */
export function generator(seed) {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

/** Every write is in the kernel (a cheap poll: no farm list). */
export async function allApplied(daemon) {
  const s = (await daemon.api('GET', '/system/status?farms=false')).body?.params;
  return s !== undefined && s.applied_generation === s.store_generation;
}

/** The machine a run measured: CPU, memory, kernel, OS, Node, nft, and the run's own `extra` fields. */
export function machine(extra = {}) {
  const cpus = os.cpus();
  return {
    cpu: `${cpus[0]?.model ?? 'unknown'} x ${cpus.length}`,
    memory: `${Math.round(os.totalmem() / 2 ** 30)} GiB`,
    kernel: os.release(),
    os: sh('sh', ['-c', '. /etc/os-release && echo "$PRETTY_NAME"']),
    node: process.version,
    nft: sh('nft', ['--version']),
    ...extra,
    date: new Date().toISOString(),
  };
}
