// Process bookkeeping for the lab: identify a process by (pid, start time) so a recycled PID
// is never mistaken for one the lab started, and wait for exits with a bound.
import { readFileSync } from 'node:fs';
import type { ChildProcess } from 'node:child_process';
import type { Readable } from 'node:stream';
import type { ExecResult } from './lab.js';

/** A process as the lab recorded it: the PID plus its start time (clock ticks since boot). */
export interface ProcRef {
  pid: number;
  start: string;
}

/** Field 22 of /proc/<pid>/stat, or undefined when the process is gone. */
export function startTimeOf(pid: number): string | undefined {
  const stat = readStat(pid);
  return stat?.[19];
}

/** True while the very process we recorded runs (a zombie or a recycled PID does not count). */
export function isAlive(ref: ProcRef): boolean {
  const stat = readStat(ref.pid);
  if (!stat) return false;
  return stat[0] !== 'Z' && stat[19] === ref.start;
}

/** Sends a signal to a recorded process if it still is that process. True if sent. */
export function signalRef(ref: ProcRef, signal: NodeJS.Signals): boolean {
  if (!isAlive(ref)) return false;
  try {
    process.kill(ref.pid, signal);
    return true;
  } catch {
    return false; // exited between the check and the kill
  }
}

/** The fields of /proc/<pid>/stat after the command name: [state, ppid, ...]. */
function readStat(pid: number): string[] | undefined {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return undefined;
  }
  // The command name (field 2) may hold spaces and parentheses: split after the last ')'.
  return text.slice(text.lastIndexOf(')') + 2).trim().split(' ');
}

export function hasExited(child: ChildProcess): boolean {
  return child.exitCode !== null || child.signalCode !== null;
}

/** Resolves true once the child has exited, false if it is still running after `ms`. */
export function waitExit(child: ChildProcess, ms: number): Promise<boolean> {
  if (hasExited(child) || child.pid === undefined) return Promise.resolve(true);
  return new Promise((resolve) => {
    const timer = setTimeout(() => {
      child.off('exit', onExit);
      resolve(false);
    }, ms);
    const onExit = (): void => {
      clearTimeout(timer);
      resolve(true);
    };
    child.once('exit', onExit);
  });
}

/** Calls onLine for each complete line of a text stream. */
export function onLines(stream: Readable, onLine: (line: string) => void): void {
  let pending = '';
  stream.setEncoding('utf8');
  stream.on('data', (chunk: string) => {
    pending += chunk;
    let nl: number;
    while ((nl = pending.indexOf('\n')) >= 0) {
      onLine(pending.slice(0, nl));
      pending = pending.slice(nl + 1);
    }
  });
  stream.on('end', () => {
    if (pending !== '') onLine(pending);
    pending = '';
  });
}

/** Keeps the last `max` characters of a stream (always consuming it, so the pipe never fills). */
export function tail(stream: Readable, max = 4000): () => string {
  let text = '';
  stream.setEncoding('utf8');
  stream.on('data', (chunk: string) => {
    text = (text + chunk).slice(-max);
  });
  return () => text;
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/**
 * Collects a child's output until it closes: feeds it `input` (then EOF), and kills it with
 * SIGKILL after `timeoutMs` (`timedOut` says so). Never rejects on a non-zero exit.
 */
export function collectOutput(child: ChildProcess, input: string | undefined, timeoutMs: number): Promise<ExecResult> {
  return new Promise((resolve, reject) => {
    let stdout = '';
    let stderr = '';
    let timedOut = false;
    child.stdout?.setEncoding('utf8').on('data', (c: string) => (stdout += c));
    child.stderr?.setEncoding('utf8').on('data', (c: string) => (stderr += c));
    child.stdin?.on('error', () => undefined); // EPIPE when the command ignores its input
    child.stdin?.end(input ?? '');
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, timeoutMs);
    child.once('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    // 'close', not 'exit': it comes after stdout and stderr are fully read.
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr, timedOut });
    });
  });
}

/** SIGTERM to a process the lab started, SIGKILL if it is still there after `graceMs`; resolves once it has exited (or 5 s after the kill). */
export async function stopStarted(ref: ProcRef, child: ChildProcess, graceMs: number): Promise<void> {
  if (hasExited(child)) return;
  signalRef(ref, 'SIGTERM');
  if (await waitExit(child, graceMs)) return;
  signalRef(ref, 'SIGKILL');
  await waitExit(child, 5000);
}
