/**
 * A model of nftables for the reconciler's unit tests: it applies a transaction's operations
 * in the order nft would, all or nothing, refusing what the kernel refuses (a missing element,
 * set or chain; a set or chain still referenced; an element key taken with another value).
 * Fast and inspectable; the real thing is tested in test/netns and test/e2e.
 */
import type { KernelAccess } from '../../src/reconcile/reconciler.js';
import type { TableName } from '../../src/dataplane/nft/objects.js';
import type { Operation } from '../../src/dataplane/nft/transaction.js';
import type { TableInventory } from '../../src/dataplane/netlink/nft-objects.js';

interface FakeSet {
  dynamic: boolean;
  map: boolean;
  body: string[];
  elements: Map<string, string>;
}
export interface FakeTable {
  sets: Map<string, FakeSet>;
  chains: Map<string, { hook: string | null; rules: string[] }>;
}

export class KernelRefusal extends Error {}

const tableOf = (o: Operation): TableName => (o.table.family === 'netdev' ? 'netdev' : 'ip');

export class FakeKernel implements KernelAccess {
  tables = new Map<TableName, FakeTable>();
  genid = 1;
  /** Refuse the next n transactions (after checking them). */
  failNext = 0;
  /** Every transaction the kernel accepted, in order. */
  readonly accepted: Operation[][] = [];
  /** Every attempt, accepted or not, with its time. */
  readonly attempts: { at: number; operations: Operation[]; ok: boolean }[] = [];
  /** Milliseconds each transaction takes. */
  delayMs = 0;
  /** Refuses, with this message, every transaction (commit or check) holding an operation it returns a message for. */
  refuse: ((o: Operation) => string | null) | null = null;
  /** Refuses, with this message, every transaction (commit or check) that would leave the tables in a state it returns a message for. */
  refuseState: ((tables: ReadonlyMap<TableName, FakeTable>) => string | null) | null = null;
  /** Transactions checked (nft -c): nothing committed. */
  checks = 0;

  /** Reads of the generation (GETGEN round trips of the real kernel). */
  generationReads = 0;
  /** Whether the writer offers a pipelined first load (beginLoad), as the real one does. */
  pipelinedLoad = true;
  /** Pipelined first loads begun. */
  loadSessions = 0;

  readonly writer = {
    // Like the netlink writer: the commit reports the generation it made.
    apply: async (operations: readonly Operation[]) => {
      await this.commit(operations);
      return { via: 'netlink' as const, generation: this.genid };
    },
    load: async (operations: readonly Operation[]) => {
      await this.commit(operations);
    },
    // Each write is one transaction, queued: the kernel answers after the write returns.
    beginLoad: async () => {
      if (!this.pipelinedLoad) return null;
      this.loadSessions++;
      const queued: Promise<unknown>[] = [];
      let failure: { err: unknown } | null = null;
      return {
        write: async (operations: readonly Operation[]) => {
          if (failure) throw failure.err;
          queued.push(this.commit(operations).catch((err: unknown) => void (failure ??= { err })));
        },
        finish: async () => {
          await Promise.all(queued);
          if (failure) throw failure.err;
        },
      };
    },
    check: async (operations: readonly Operation[]) => {
      this.checks++;
      const next = clone(this.tables);
      apply(next, operations);
      this.refusal(operations, next);
    },
  };

  private refusal(operations: readonly Operation[], next: ReadonlyMap<TableName, FakeTable>): void {
    for (const o of this.refuse ? operations : []) {
      const message = this.refuse!(o);
      if (message) throw new KernelRefusal(`nft -f - failed (exit 1): ${message}`);
    }
    const message = this.refuseState?.(next);
    if (message) throw new KernelRefusal(`nft -f - failed (exit 1): ${message}`);
  }

  async inventory(table: TableName): Promise<TableInventory | null> {
    const t = this.tables.get(table);
    if (!t) return null;
    return {
      chains: new Map([...t.chains].map(([name, c]) => [name, { rules: c.rules.length }])),
      sets: new Map([...t.sets].map(([name, s]) => [name, { dynamic: s.dynamic, map: s.map }])),
    };
  }

  async generation(): Promise<number> {
    this.generationReads++;
    return this.genid;
  }

  async sessions(): Promise<null> {
    return null;
  }

  /** A deep copy, for "nothing changed" checks. */
  snapshot(): string {
    const byName = (a: [string, unknown], b: [string, unknown]) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0);
    const plain = [...this.tables].sort(byName).map(([name, t]) => [
      name,
      [...t.sets].sort(byName).map(([n, s]) => [n, s.dynamic, s.body, [...s.elements].sort()]),
      [...t.chains].sort(byName).map(([n, c]) => [n, c.hook, c.rules]),
    ]);
    return JSON.stringify(plain);
  }

  /** Someone else's change: bumps the generation like any commit. */
  tamper(fn: (tables: Map<TableName, FakeTable>) => void): void {
    fn(this.tables);
    this.genid++;
  }

  private async commit(operations: readonly Operation[]): Promise<void> {
    if (this.delayMs > 0) await new Promise((r) => setTimeout(r, this.delayMs));
    const next = clone(this.tables);
    try {
      apply(next, operations);
      this.refusal(operations, next);
      if (this.failNext > 0) {
        this.failNext--;
        throw new KernelRefusal('nft -f - failed (exit 1): Error: Could not process rule: No such file or directory (injected)');
      }
    } catch (err) {
      this.attempts.push({ at: Date.now(), operations: [...operations], ok: false });
      throw err;
    }
    this.attempts.push({ at: Date.now(), operations: [...operations], ok: true });
    this.tables = next;
    this.genid++;
    this.accepted.push([...operations]);
  }
}

function clone(tables: Map<TableName, FakeTable>): Map<TableName, FakeTable> {
  return new Map(
    [...tables].map(([name, t]) => [
      name,
      {
        sets: new Map([...t.sets].map(([n, s]) => [n, { ...s, elements: new Map(s.elements) }])),
        chains: new Map([...t.chains].map(([n, c]) => [n, { hook: c.hook, rules: [...c.rules] }])),
      },
    ]),
  );
}

/** nft's order within one file: see src/dataplane/nft/transaction.ts. */
const PHASE: Record<Operation['op'], number> = {
  'add-table': 0,
  'delete-elements': 1,
  'flush-set': 1,
  'replace-rules': 2,
  'delete-set': 3,
  'delete-chain': 4,
  'add-set': 5,
  'add-chain': 6,
  'add-elements': 8,
  'delete-table': 9,
};

function apply(tables: Map<TableName, FakeTable>, operations: readonly Operation[]): void {
  const refuse = (why: string): never => {
    throw new KernelRefusal(`nft -f - failed (exit 1): ${why}`);
  };
  const table = (o: Operation) => tables.get(tableOf(o)) ?? refuse(`No such file or directory: table ${o.table.family} ${o.table.name}`);
  const rules: { t: FakeTable; chain: string; rules: string[] }[] = [];
  const sorted = [...operations].sort((a, b) => PHASE[a.op] - PHASE[b.op]);
  // Deleted chains are flushed in the flush phase, like replaced ones.
  for (const o of sorted) if (o.op === 'delete-chain') table(o).chains.get(o.chain) && (table(o).chains.get(o.chain)!.rules = []);
  for (const o of sorted) {
    if (PHASE[o.op] > 6 && rules.length > 0) {
      for (const r of rules.splice(0)) addRules(r.t, r.chain, r.rules, refuse);
    }
    switch (o.op) {
      case 'add-table':
        if (!tables.has(tableOf(o))) tables.set(tableOf(o), { sets: new Map(), chains: new Map() });
        break;
      case 'delete-table':
        table(o);
        tables.delete(tableOf(o));
        break;
      case 'add-set': {
        const t = table(o);
        const have = t.sets.get(o.set.name);
        if (!have) t.sets.set(o.set.name, { dynamic: o.set.dynamic, map: o.set.kind === 'map', body: o.set.body, elements: new Map() });
        else if (have.dynamic !== o.set.dynamic) refuse(`File exists: set ${o.set.name}`);
        else have.body = o.set.body;
        break;
      }
      case 'delete-set': {
        const t = table(o);
        if (!t.sets.has(o.set.name)) refuse(`No such file or directory: set ${o.set.name}`);
        const user = [...t.chains].find(([, c]) => c.rules.some((r) => new RegExp(`@${o.set.name}\\b`).test(r)));
        if (user) refuse(`Device or resource busy: set ${o.set.name} used by chain ${user[0]}`);
        t.sets.delete(o.set.name);
        break;
      }
      case 'add-chain': {
        const t = table(o);
        if (!t.chains.has(o.chain.name)) t.chains.set(o.chain.name, { hook: o.chain.hook ?? null, rules: [] });
        rules.push({ t, chain: o.chain.name, rules: o.chain.rules });
        break;
      }
      case 'replace-rules': {
        const t = table(o);
        const c = t.chains.get(o.chain.name) ?? refuse(`No such file or directory: chain ${o.chain.name}`);
        c.rules = [];
        rules.push({ t, chain: o.chain.name, rules: o.chain.rules });
        break;
      }
      case 'delete-chain': {
        const t = table(o);
        if (!t.chains.has(o.chain)) refuse(`No such file or directory: chain ${o.chain}`);
        const jump = new RegExp(`(jump|goto) ${o.chain}\\b`);
        const user = [...t.chains].find(([n, c]) => n !== o.chain && c.rules.some((r) => jump.test(r)));
        const element = [...t.sets].find(([, s]) => [...s.elements.values()].some((v) => jump.test(v)));
        if (user || element) refuse(`Device or resource busy: chain ${o.chain} is still referenced`);
        t.chains.delete(o.chain);
        break;
      }
      case 'flush-set':
        (table(o).sets.get(o.set.name) ?? refuse(`No such file or directory: set ${o.set.name}`)).elements.clear();
        break;
      case 'delete-elements': {
        const s = table(o).sets.get(o.set.name) ?? refuse(`No such file or directory: set ${o.set.name}`);
        for (const e of o.elements) if (!s.elements.delete(e.key)) refuse(`No such file or directory: element ${e.key} of ${o.set.name}`);
        break;
      }
      case 'add-elements': {
        const t = table(o);
        const s = t.sets.get(o.set.name) ?? refuse(`No such file or directory: set ${o.set.name}`);
        for (const e of o.elements) {
          const had = s.elements.get(e.key);
          if (had !== undefined && had !== e.value) refuse(`File exists: element ${e.key} of ${o.set.name}`);
          const jump = /^(?:jump|goto) (\S+)$/.exec(e.value);
          if (jump && !t.chains.has(jump[1]!)) refuse(`No such file or directory: chain ${jump[1]}`);
          s.elements.set(e.key, e.value);
        }
        break;
      }
    }
  }
  for (const r of rules.splice(0)) addRules(r.t, r.chain, r.rules, refuse);
}

function addRules(t: FakeTable, chain: string, rules: readonly string[], refuse: (why: string) => never): void {
  const c = t.chains.get(chain) ?? refuse(`No such file or directory: chain ${chain}`);
  for (const rule of rules) {
    for (const m of rule.matchAll(/@([a-z0-9_]+)/g)) if (!t.sets.has(m[1]!)) refuse(`No such file or directory: set ${m[1]} in a rule of ${chain}`);
    for (const m of rule.matchAll(/\b(?:jump|goto) ([a-z0-9_]+)/g)) if (!t.chains.has(m[1]!)) refuse(`No such file or directory: chain ${m[1]} in a rule of ${chain}`);
    c.rules.push(rule);
  }
}
