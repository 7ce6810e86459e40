// Making sure a lab never outlives its test, whatever way the test process ends:
// - destroy(): the normal path (lab.ts).
// - a synchronous 'exit' hook and SIGINT/SIGTERM/SIGHUP/SIGALRM handlers: a failed, interrupted
//   or timed-out test.
// - a state file per prefix under /run plus destroyStaleLabs(): a process killed by SIGKILL,
//   cleaned up by the next run with the same prefix.
// Only names matching the lab's own pattern are deleted, and only processes recorded in the
// state file (PID plus start time) are killed.
import { execFile, execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { checkPrefix, isLabNamespace } from './topology.js';
import { isAlive, signalRef, type ProcRef } from './proc.js';

const execFileAsync = promisify(execFile);

/** /run is a tmpfs: state files vanish on reboot, like the namespaces they describe. */
export const STATE_DIR = '/run/nftfarm-lab';

export interface LabState {
  prefix: string;
  /** The process that created the lab. */
  owner: ProcRef;
  namespaces: string[];
  /** Processes the lab started that may still run. */
  children: ProcRef[];
}

export function stateFile(prefix: string): string {
  return join(STATE_DIR, `${prefix}.json`);
}

export function writeState(state: LabState): void {
  mkdirSync(STATE_DIR, { recursive: true });
  const file = stateFile(state.prefix);
  // Write-then-rename: a crash mid-write must not leave a half file that hides the children.
  writeFileSync(`${file}.tmp`, JSON.stringify(state));
  renameSync(`${file}.tmp`, file);
}

export function readState(prefix: string): LabState | undefined {
  try {
    return JSON.parse(readFileSync(stateFile(prefix), 'utf8')) as LabState;
  } catch {
    return undefined;
  }
}

export function removeState(prefix: string): void {
  rmSync(stateFile(prefix), { force: true });
}

// ---------------------------------------------------------------- live labs of this process

export interface LiveLab {
  readonly prefix: string;
  /** Kills the lab's processes and deletes its namespaces without awaiting anything. */
  destroySync(): void;
}

const live = new Set<LiveLab>();
let hooksInstalled = false;

export function registerLive(lab: LiveLab): void {
  installHooks();
  live.add(lab);
}

export function unregisterLive(lab: LiveLab): void {
  live.delete(lab);
}

function destroyAllSync(): void {
  for (const lab of [...live]) {
    try {
      lab.destroySync();
    } catch {
      // keep going: the other labs must still be cleaned
    }
  }
}

function installHooks(): void {
  if (hooksInstalled) return;
  hooksInstalled = true;
  // 'exit' runs on normal exit, process.exit() and uncaught exceptions; only sync work runs here.
  process.on('exit', destroyAllSync);
  // SIGALRM: how tap ends a test file that ran past its timeout (SIGKILL follows 500 ms later,
  // so the cleanup must be synchronous and quick).
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP', 'SIGALRM'] as const) {
    const handler = (): void => {
      destroyAllSync();
      // Re-raise with our handler gone, so the process still dies of the signal (or other
      // listeners, such as tap's, handle it as they would have without us).
      process.removeListener(signal, handler);
      process.kill(process.pid, signal);
    };
    process.on(signal, handler);
  }
}

/** Sync deletion used by the exit hook; tolerates namespaces that are already gone. */
export function deleteNamespacesSync(names: string[]): void {
  for (const ns of names) {
    try {
      execFileSync('ip', ['netns', 'del', ns], { stdio: 'ignore' });
    } catch {
      // already gone
    }
  }
}

export async function listNamespaces(): Promise<string[]> {
  const { stdout } = await execFileAsync('ip', ['netns', 'list']);
  // Lines look like "name (id: 3)" or just "name".
  return stdout
    .split('\n')
    .map((line) => line.trim().split(' ')[0] ?? '')
    .filter((name) => name !== '');
}

/**
 * Removes what an earlier, crashed lab with this prefix left: kills the processes its state
 * file records (if they still are those processes) and deletes every namespace named like
 * one of its hosts. Refuses while a live process owns the prefix.
 */
export async function destroyStaleLabs(prefix: string): Promise<{ namespaces: string[]; pids: number[] }> {
  checkPrefix(prefix);
  if ([...live].some((lab) => lab.prefix === prefix)) {
    throw new Error(`a lab with prefix "${prefix}" is live in this process: destroy it first`);
  }
  const state = readState(prefix);
  const pids: number[] = [];
  if (state) {
    if (state.owner.pid !== process.pid && isAlive(state.owner)) {
      throw new Error(`lab prefix "${prefix}" is in use by live process ${state.owner.pid}: pick another prefix`);
    }
    for (const child of state.children) {
      if (signalRef(child, 'SIGKILL')) pids.push(child.pid);
    }
  }
  const namespaces = (await listNamespaces()).filter((ns) => isLabNamespace(prefix, ns));
  for (const ns of namespaces) {
    await execFileAsync('ip', ['netns', 'del', ns]).catch(() => undefined); // raced with another deleter
  }
  removeState(prefix);
  return { namespaces, pids };
}
