/**
 * BIRD as nftfarm's child: its own configuration, control socket and pid file under the data
 * directory (never the system's /etc/bird or /run/bird), started in the foreground, its log
 * lines passed to nftfarm's log, restarted with backoff when it dies, stopped with nftfarm.
 * With `setpriv --pdeathsig KILL` it also dies when nftfarm is killed (kill -9 included).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import type { Logger } from 'pino';
import { birdCommand } from './birdc.js';

export interface BirdFiles {
  dir: string;
  config: string;
  socket: string;
  pidFile: string;
}

/** Beside the database: `<data dir>/bird/`. */
export function birdFiles(dbPath: string): BirdFiles {
  const dir = path.join(path.dirname(dbPath), 'bird');
  return { dir, config: path.join(dir, 'bird.conf'), socket: path.join(dir, 'bird.ctl'), pidFile: path.join(dir, 'bird.pid') };
}

const SETPRIV = '/usr/bin/setpriv';
const READY_TIMEOUT_MS = 10_000;
const STOP_GRACE_MS = 3000;
const MAX_RESTART_DELAY_MS = 30_000;

export interface BirdProcessOptions {
  files: BirdFiles;
  log: Logger;
  /** The bird binary (NFTFARM_BIRD), default `bird` from PATH. */
  binary?: string;
  /** Called after BIRD was restarted following a crash (the caller re-sends its state). */
  onRestart?: () => void;
}

export class BirdProcess {
  private child: ChildProcess | null = null;
  private stopping = false;
  private restartTimer: NodeJS.Timeout | null = null;
  private failures = 0;
  private starting: Promise<void> | null = null;
  private readonly log: Logger;

  constructor(private readonly opts: BirdProcessOptions) {
    this.log = opts.log;
  }

  running(): boolean {
    return this.child !== null && this.child.exitCode === null && this.child.signalCode === null;
  }

  pid(): number | null {
    return this.running() ? (this.child?.pid ?? null) : null;
  }

  /**
   * Starts BIRD on the configuration file already written; resolves once its socket answers.
   * Concurrent calls (the restart timer and a sync) share one start.
   */
  start(): Promise<void> {
    if (this.running()) return Promise.resolve();
    this.starting ??= this.spawnBird().finally(() => {
      this.starting = null;
    });
    return this.starting;
  }

  private async spawnBird(): Promise<void> {
    this.stopping = false;
    const { files } = this.opts;
    fs.mkdirSync(files.dir, { recursive: true, mode: 0o750 });
    await killStale(files, this.log);
    const bird = this.opts.binary ?? 'bird';
    const args = ['-f', '-c', files.config, '-s', files.socket, '-P', files.pidFile];
    // PR_SET_PDEATHSIG survives exec: BIRD dies with nftfarm even on SIGKILL.
    const argv = fs.existsSync(SETPRIV) ? [SETPRIV, '--pdeathsig', 'KILL', '--', bird, ...args] : [bird, ...args];
    const child = spawn(argv[0] as string, argv.slice(1), { stdio: ['ignore', 'pipe', 'pipe'] });
    this.child = child;
    const logLines = (stream: NodeJS.ReadableStream | null) => {
      let pending = '';
      stream?.setEncoding('utf8');
      stream?.on('data', (chunk: string) => {
        pending += chunk;
        let nl: number;
        while ((nl = pending.indexOf('\n')) >= 0) {
          const line = pending.slice(0, nl).trim();
          pending = pending.slice(nl + 1);
          if (line === '') continue;
          if (/<(ERR|BUG|FATAL)>/.test(line)) this.log.error({ bird: line }, 'bird');
          else if (/<WARN>/.test(line)) this.log.warn({ bird: line }, 'bird');
          else this.log.info({ bird: line }, 'bird');
        }
      });
    };
    logLines(child.stdout);
    logLines(child.stderr);
    const spawned = new Promise<void>((resolve, reject) => {
      child.once('spawn', () => resolve());
      child.once('error', (err) => reject(new Error(`cannot start ${bird}: ${err.message} (is bird2 installed? scripts/setup.sh installs it)`)));
    });
    child.once('exit', (code, signal) => this.exited(child, code, signal));
    await spawned;
    this.log.info({ pid: child.pid, config: files.config, socket: files.socket }, 'started bird');
    const deadline = Date.now() + READY_TIMEOUT_MS;
    for (;;) {
      try {
        await birdCommand(files.socket, 'show status', 1000);
        return;
      } catch (err) {
        if (!this.running()) throw new Error(`bird exited at start (see the bird lines in the log)`);
        if (Date.now() > deadline) throw err;
        await new Promise((r) => setTimeout(r, 50));
      }
    }
  }

  /** Makes BIRD re-read its configuration file (`configure`); BGP sessions whose settings did not change stay up. */
  async reconfigure(): Promise<void> {
    await birdCommand(this.opts.files.socket, 'configure', 10_000);
  }

  async command(command: string): Promise<import('./birdc.js').ReplyLine[]> {
    return birdCommand(this.opts.files.socket, command);
  }

  /** SIGTERM (BIRD closes its sessions with a Cease), SIGKILL after a grace period. */
  async stop(): Promise<void> {
    this.stopping = true;
    if (this.restartTimer) clearTimeout(this.restartTimer);
    this.restartTimer = null;
    const child = this.child;
    if (!child || !this.running()) return;
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), STOP_GRACE_MS);
    await exited;
    clearTimeout(timer);
    this.log.info('stopped bird');
  }

  private exited(child: ChildProcess, code: number | null, signal: NodeJS.Signals | null): void {
    if (this.child !== child) return;
    this.child = null;
    if (this.stopping) return;
    this.failures++;
    const delay = Math.min(MAX_RESTART_DELAY_MS, 500 * 2 ** (this.failures - 1));
    this.log.error({ code, signal, restartInMs: delay }, 'bird exited unexpectedly: restarting it');
    this.restartTimer = setTimeout(() => {
      this.restartTimer = null;
      if (this.stopping) return;
      this.start().then(
        () => {
          this.failures = 0;
          this.opts.onRestart?.();
        },
        (err: unknown) => this.log.error({ err: err instanceof Error ? err.message : String(err) }, 'could not restart bird'),
      );
    }, delay);
    this.restartTimer.unref();
  }
}

/** A BIRD left running on our files by an earlier nftfarm (one without setpriv) is stopped. */
async function killStale(files: BirdFiles, log: Logger): Promise<void> {
  let pid: number;
  try {
    pid = Number(fs.readFileSync(files.pidFile, 'utf8').trim());
  } catch {
    return;
  }
  if (!Number.isInteger(pid) || pid <= 1) return;
  let cmdline = '';
  try {
    cmdline = fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8');
  } catch {
    return; // gone
  }
  if (!cmdline.split('\0').includes(files.config)) return; // a recycled pid: not ours
  log.warn({ pid }, 'a bird from an earlier run still holds our files: stopping it');
  try {
    process.kill(pid, 'SIGTERM');
  } catch {
    return;
  }
  const deadline = Date.now() + STOP_GRACE_MS;
  while (fs.existsSync(`/proc/${pid}`) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
  if (fs.existsSync(`/proc/${pid}`)) process.kill(pid, 'SIGKILL');
}
