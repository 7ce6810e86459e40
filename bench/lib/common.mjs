/** What bench.mjs and soak.mjs share: a command's output for the machine line, a seeded generator, the cheap convergence poll. */
import { execFileSync } from 'node:child_process';

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
