/**
 * Compares what two kernels hold for nftfarm: `nft -j list ruleset` reduced to the tables
 * `netdev nftfarm` and `inet nftfarm`, with what differs between two equal configurations
 * dropped (handles, counter values, element expiry, the elements of dynamic sets, which
 * traffic fills) and elements sorted. Used to check a live daemon's kernel against a fresh
 * full load of a copy of its database.
 */

/** The nftfarm tables, as "<family> <name>". */
export const NFTFARM_TABLES = ['netdev nftfarm', 'inet nftfarm'] as const;

export interface NormalizedTable {
  /** The table object itself (flags...). */
  table: unknown;
  /** Chains by name: their properties and their rules in order (rule order is semantic). */
  chains: Record<string, { chain: unknown; rules: unknown[] }>;
  /** Sets, maps and other named objects, by "<kind> <name>". */
  objects: Record<string, unknown>;
}

export type NormalizedRuleset = Record<string, NormalizedTable>;

type Json = null | boolean | number | string | Json[] | { [k: string]: Json };

/** Removes handles and counter values, recursively. */
function scrub(node: Json): Json {
  if (Array.isArray(node)) return node.map(scrub);
  if (node === null || typeof node !== 'object') return node;
  const out: { [k: string]: Json } = {};
  for (const [k, v] of Object.entries(node)) {
    if (k === 'handle' || k === 'expires') continue;
    if ((k === 'packets' || k === 'bytes') && typeof v === 'number') out[k] = 0;
    else out[k] = scrub(v);
  }
  return out;
}

const sortedElements = (elem: Json[] | undefined): Json[] | undefined =>
  elem?.map(scrub).sort((a, b) => (JSON.stringify(a) < JSON.stringify(b) ? -1 : JSON.stringify(a) > JSON.stringify(b) ? 1 : 0));

const isDynamic = (obj: { flags?: Json }): boolean => Array.isArray(obj.flags) && obj.flags.includes('dynamic');

/** Parses `nft -j list ruleset` output and keeps nftfarm's tables, normalized. */
export function normalizeRuleset(jsonText: string, tables: readonly string[] = NFTFARM_TABLES): NormalizedRuleset {
  const parsed = JSON.parse(jsonText) as { nftables: { [kind: string]: { [k: string]: Json } }[] };
  const out: NormalizedRuleset = {};
  const tableOf = (o: { family?: Json; table?: Json; name?: Json }, isTable: boolean) => `${o.family} ${isTable ? o.name : o.table}`;
  for (const item of parsed.nftables) {
    const [kind, body] = Object.entries(item)[0] as [string, { [k: string]: Json }];
    if (kind === 'metainfo') continue;
    const key = tableOf(body, kind === 'table');
    if (!tables.includes(key)) continue;
    const table = (out[key] ??= { table: null, chains: {}, objects: {} });
    if (kind === 'table') table.table = scrub(body);
    else if (kind === 'chain') (table.chains[String(body.name)] ??= { chain: null, rules: [] }).chain = scrub(body);
    else if (kind === 'rule') (table.chains[String(body.chain)] ??= { chain: null, rules: [] }).rules.push(scrub(body));
    else {
      // Sets and maps: dynamic ones hold traffic state (flow pins, sessions), not configuration.
      const { elem, ...rest } = body;
      const elements = isDynamic(body) ? undefined : sortedElements(elem as Json[] | undefined);
      table.objects[`${kind} ${String(body.name)}`] = { ...(scrub(rest) as object), ...(elements ? { elem: elements } : {}) };
    }
  }
  return out;
}

/** Human-readable differences, at most `max`; empty when the two are equal. */
export function diffRulesets(actual: NormalizedRuleset, expected: NormalizedRuleset, max = 20): string[] {
  const out: string[] = [];
  const walk = (a: unknown, b: unknown, where: string): void => {
    if (out.length >= max) return;
    if (JSON.stringify(a) === JSON.stringify(b)) return;
    const bothObjects = a !== null && b !== null && typeof a === 'object' && typeof b === 'object' && Array.isArray(a) === Array.isArray(b);
    if (!bothObjects) {
      out.push(`${where}: ${short(a)} != ${short(b)}`);
      return;
    }
    if (Array.isArray(a) && Array.isArray(b) && a.length !== b.length) {
      out.push(`${where}: ${a.length} entries != ${b.length}`);
      // Name the first entries that only one side has.
      const as = new Set(a.map((x) => JSON.stringify(x)));
      const bs = new Set(b.map((x) => JSON.stringify(x)));
      for (const x of as) if (!bs.has(x) && out.length < max) out.push(`${where}: only in actual: ${short(JSON.parse(x))}`);
      for (const x of bs) if (!as.has(x) && out.length < max) out.push(`${where}: only in expected: ${short(JSON.parse(x))}`);
      return;
    }
    const keys = new Set([...Object.keys(a as object), ...Object.keys(b as object)]);
    for (const k of [...keys].sort()) walk((a as Record<string, unknown>)[k], (b as Record<string, unknown>)[k], `${where}/${k}`);
  };
  walk(actual, expected, '');
  return out;
}

const short = (v: unknown): string => {
  const s = v === undefined ? 'missing' : JSON.stringify(v);
  return s.length > 300 ? `${s.slice(0, 300)}...` : s;
};

/** Lists the ruleset with `exec` (argv run in the right namespace) and normalizes it. */
export async function kernelRuleset(exec: (argv: string[]) => Promise<{ stdout: string }>): Promise<NormalizedRuleset> {
  return normalizeRuleset((await exec(['nft', '-j', 'list', 'ruleset'])).stdout || '{"nftables":[]}');
}
