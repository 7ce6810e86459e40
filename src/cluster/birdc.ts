/**
 * A client of BIRD's control socket (what `birdc` speaks): one connection per command.
 * BIRD greets with "0001 BIRD x ready."; each reply line is "NNNN-text" (more follow),
 * " text" (continues the previous code) or "NNNN text" (the last line). Codes 0xxx report
 * success, 1xxx table rows, 2xxx headings, 8xxx and 9xxx errors.
 */
import net from 'node:net';

export interface ReplyLine {
  code: number;
  text: string;
}

export class BirdError extends Error {
  constructor(
    message: string,
    readonly code: number | null,
  ) {
    super(message);
  }
}

/** Runs one command; resolves with every reply line, rejects on an error code or no answer. */
export function birdCommand(socketPath: string, command: string, timeoutMs = 5000): Promise<ReplyLine[]> {
  return new Promise((resolve, reject) => {
    const socket = net.createConnection(socketPath);
    let buffer = '';
    let greeted = false;
    let lastCode = 0;
    const lines: ReplyLine[] = [];
    const finish = (err: Error | null) => {
      clearTimeout(timer);
      socket.destroy();
      if (err) reject(err);
      else resolve(lines);
    };
    const timer = setTimeout(() => finish(new BirdError(`BIRD did not answer '${command}' within ${timeoutMs} ms`, null)), timeoutMs);
    socket.on('error', (err) => finish(new BirdError(`BIRD control socket ${socketPath}: ${err.message}`, null)));
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => {
      buffer += chunk;
      let nl: number;
      while ((nl = buffer.indexOf('\n')) >= 0) {
        const raw = buffer.slice(0, nl);
        buffer = buffer.slice(nl + 1);
        const m = /^(\d{4})([- ])(.*)$/.exec(raw);
        if (!greeted) {
          if (m && m[1] === '0001') {
            greeted = true;
            socket.write(`${command}\n`);
          }
          continue;
        }
        if (!m) {
          // " text": a continuation of the previous code.
          lines.push({ code: lastCode, text: raw.replace(/^ /, '') });
          continue;
        }
        lastCode = Number(m[1]);
        lines.push({ code: lastCode, text: m[3] as string });
        if (m[2] === ' ') {
          if (lastCode >= 8000) finish(new BirdError(`BIRD refused '${command}': ${m[3]}`, lastCode));
          else finish(null);
          return;
        }
      }
    });
    socket.on('end', () => finish(new BirdError(`BIRD closed the control socket during '${command}'`, null)));
  });
}

export interface ProtocolState {
  name: string;
  proto: string;
  /** BIRD's protocol state: up, start, down... */
  state: string;
  /** Unix seconds (the config sets `timeformat protocol "%s"`). */
  since: number | null;
  /** For BGP, the session state first (Idle, Connect, Active, OpenSent, OpenConfirm, Established), then details. */
  info: string;
}

/** `show protocols`: one row per protocol (the 1002 lines). */
export function parseProtocols(lines: readonly ReplyLine[]): ProtocolState[] {
  return lines
    .filter((l) => l.code === 1002)
    .map((l) => {
      const [name = '', proto = '', , state = '', since = '', ...info] = l.text.trim().split(/\s+/);
      return { name, proto, state, since: /^\d+$/.test(since) ? Number(since) : null, info: info.join(' ') };
    });
}

/** `show route protocol P`: the prefixes (first column of the 1007 rows). */
export function parseRoutePrefixes(lines: readonly ReplyLine[]): string[] {
  const out: string[] = [];
  for (const l of lines) {
    if (l.code !== 1007) continue;
    const first = l.text.trim().split(/\s+/)[0] ?? '';
    if (/^\d+\.\d+\.\d+\.\d+\/\d+$/.test(first)) out.push(first);
  }
  const key = (p: string) => p.split(/[./]/).slice(0, 4).reduce((n, o) => n * 256 + Number(o), 0);
  return out.sort((a, b) => key(a) - key(b));
}
