/**
 * The connection tracking table, for the conntrack modes (nat, dnat): every connection of a
 * farm carries its backend's mark as its connection mark, so conntrack can count a backend's
 * connections (leastconn, max_conns) and forget them when the backend is cut or removed.
 * Through the `conntrack` tool (Debian package conntrack), run without a shell.
 */
import { execFile } from 'node:child_process';

export interface Conntrack {
  /** Tracked connections per connection mark (closing TCP states are not counted). */
  countByMark(): Promise<Map<number, number>>;
  /** Deletes the connections with this mark; returns how many. */
  deleteByMark(mark: number): Promise<number>;
}

/** TCP states of connections that are over, or nearly: they hold no backend capacity. */
const CLOSING = new Set(['TIME_WAIT', 'CLOSE', 'CLOSE_WAIT', 'LAST_ACK', 'FIN_WAIT']);

export function parseConntrackListing(text: string): Map<number, number> {
  const counts = new Map<number, number>();
  for (const line of text.split('\n')) {
    const mark = /\bmark=(\d+)/.exec(line);
    if (!mark || mark[1] === '0') continue;
    // "tcp      6 431999 ESTABLISHED src=..." : the state follows the timeout for TCP.
    const state = /^\S+\s+\d+\s+\d+\s+([A-Z_]+)\s/.exec(line)?.[1];
    if (state && CLOSING.has(state)) continue;
    const m = Number(mark[1]);
    counts.set(m, (counts.get(m) ?? 0) + 1);
  }
  return counts;
}

export function createConntrack(binary = 'conntrack'): Conntrack {
  const run = (args: string[]) =>
    new Promise<{ code: number; stdout: string; stderr: string }>((resolve, reject) => {
      execFile(binary, args, { maxBuffer: 512 * 1024 * 1024, timeout: 30_000 }, (err, stdout, stderr) => {
        if (err && (err as NodeJS.ErrnoException).code === 'ENOENT') {
          reject(new Error(`the conntrack binary was not found: install the conntrack package (apt-get install conntrack)`));
          return;
        }
        const code = err ? (typeof err.code === 'number' ? err.code : 1) : 0;
        resolve({ code, stdout, stderr });
      });
    });
  return {
    async countByMark() {
      // One listing per family: conntrack -L lists IPv4 only unless told.
      const counts = new Map<number, number>();
      for (const family of ['ipv4', 'ipv6']) {
        const r = await run(['-L', '-f', family]);
        if (r.code !== 0) throw new Error(`conntrack -L -f ${family} failed: ${r.stderr.trim()}`);
        for (const [mark, n] of parseConntrackListing(r.stdout)) counts.set(mark, (counts.get(mark) ?? 0) + n);
      }
      return counts;
    },
    async deleteByMark(mark) {
      let total = 0;
      for (const family of ['ipv4', 'ipv6']) {
        // Exit status 1 with "0 flow entries have been deleted" is not a failure.
        const r = await run(['-D', '-f', family, '--mark', String(mark)]);
        const deleted = /(\d+) flow entries have been deleted/.exec(r.stderr);
        if (deleted) total += Number(deleted[1]);
        else if (r.code !== 0) throw new Error(`conntrack -D -f ${family} --mark ${mark} failed: ${r.stderr.trim()}`);
      }
      return total;
    },
  };
}
