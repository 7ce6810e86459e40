// The lab's side of `client.js hold` (the held connections of flow-stability tests), for both
// lab kinds (lab.ts, routed.ts): its ready line, its final count, and how it is stopped.
import type { ChildProcess } from 'node:child_process';
import type { HoldHandle } from './lab.js';
import { hasExited, onLines, tail } from './proc.js';
import type { HoldReady, HoldResult } from './results.js';

/**
 * Follows a started hold client. `timeoutMs`: the client's own per-request timeout; `kill`
 * stops the process when it does not report after being asked to stop.
 */
export function followHoldClient(child: ChildProcess, timeoutMs: number, kill: () => void): HoldHandle {
  const stderr = tail(child.stderr!);
  const lines: string[] = [];
  let onReady: (r: HoldReady) => void = () => {};
  let onReadyFail: (e: Error) => void = () => {};
  const ready = new Promise<HoldReady>((resolve, reject) => {
    onReady = resolve;
    onReadyFail = reject;
  });
  onLines(child.stdout!, (line) => {
    lines.push(line);
    if (line.includes('"event":"ready"')) onReady(JSON.parse(line) as HoldReady);
  });
  const finished = new Promise<HoldResult>((resolve, reject) => {
    child.once('close', (code) => {
      const why = `hold client exited with ${code} before`;
      onReadyFail(new Error(`${why} it was ready: ${stderr().trim()}`));
      const final = lines.filter((l) => l.trim() !== '' && !l.includes('"event":"ready"')).pop();
      if (code === 0 && final !== undefined) resolve(JSON.parse(final) as HoldResult);
      else reject(new Error(`${why} printing a result: ${stderr().trim()}`));
    });
  });
  // Both are awaited only on demand: keep an unobserved failure from crashing the process.
  ready.catch(() => undefined);
  finished.catch(() => undefined);
  // Connect (<= timeoutMs) plus first answer (<= timeoutMs), with margin for node's start.
  const readyTimer = setTimeout(() => onReadyFail(new Error('hold client not ready in time')), 2 * timeoutMs + 8000);
  void ready.finally(() => clearTimeout(readyTimer)).catch(() => undefined);
  return {
    child,
    ready: () => ready,
    stop: async () => {
      if (!hasExited(child)) child.stdin?.write('stop\n');
      // In-flight requests get up to timeoutMs to answer before the client reports.
      const timer = setTimeout(kill, timeoutMs + 5000);
      try {
        return await finished;
      } finally {
        clearTimeout(timer);
      }
    },
  };
}
