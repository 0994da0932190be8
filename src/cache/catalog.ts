/**
 * What the query cache asks the primary's catalog, on side connections of its own (one `pg`
 * client per database, as the streaming-replication check user; never a client's connection):
 *
 * - the facts of a relation a SELECT reads (kind, persistence, system schema, row security),
 *   resolved under the session's search_path, and its OID (the cache keys generations by OID, so
 *   two spellings of one table share one generation);
 * - what a write to some tables drags along: partitions and inheritance children and ancestors,
 *   tables whose foreign keys cascade (ON DELETE/UPDATE CASCADE, SET NULL, SET DEFAULT), views
 *   that read them, and the tables behind a view written through. A table with a user trigger or a
 *   non-SELECT rule anywhere in that set may write anything: the answer is then "everything"
 *   (fail closed), as it is for any lookup that fails.
 *
 * Answers are kept CATALOG_TTL_MS (a trigger added behind pgmaitre's back is seen within that
 * time; a DDL through pgmaitre forgets them at once).
 */
import { Client } from 'pg';
import type { SideTarget } from '../backend/side-target';
import type { RelationFacts } from './cacheable';

export const CATALOG_TTL_MS = 10_000;
/** Rounds of closure expansion before giving up (fail closed). */
const MAX_ROUNDS = 8;

/** A relation as the catalog resolved it. */
export interface Relation extends RelationFacts {
  readonly oid: number;
}

/** What writing some tables invalidates: OIDs, or everything. */
export type WriteSet = { readonly all: false; readonly oids: readonly number[] } | { readonly all: true; readonly why: string };

/**
 * The classifier gives names as identifiers (unquoted ones folded to lower case, quoted ones as
 * written) joined by dots. A single identifier is quoted back before to_regclass, so that a
 * mixed-case or spaced table ("Orders", "Lc Odd") resolves; a qualified one is resolved as it
 * stands (a quoted part that is not lower case then resolves to nothing: not cached, and its
 * writes invalidate the database — fail closed), since a dot inside a quoted part cannot be told
 * from a qualifying dot.
 */
const FACTS_SQL = `SELECT n.name, c.oid::int8 AS oid, c.relkind::text AS kind, c.relpersistence::text AS persistence,
    (ns.nspname IN ('pg_catalog', 'information_schema') OR ns.nspname LIKE 'pg_toast%') AS system, c.relrowsecurity AS rls
  FROM unnest($1::text[]) AS n(name)
  LEFT JOIN pg_catalog.pg_class c ON c.oid = pg_catalog.to_regclass(CASE WHEN strpos(n.name, '.') = 0 THEN pg_catalog.quote_ident(n.name) ELSE n.name END)
  LEFT JOIN pg_catalog.pg_namespace ns ON ns.oid = c.relnamespace`;

/** One round of the write closure: the neighbours of a set of relations, and whether any may write elsewhere. */
const EDGES_SQL = `WITH s AS (SELECT unnest($1::oid[]) AS oid)
SELECT 'up' AS dir, i.inhparent::int8 AS oid FROM pg_catalog.pg_inherits i JOIN s ON i.inhrelid = s.oid
UNION ALL SELECT 'down', i.inhrelid::int8 FROM pg_catalog.pg_inherits i JOIN s ON i.inhparent = s.oid
UNION ALL SELECT 'fk', c.conrelid::int8 FROM pg_catalog.pg_constraint c JOIN s ON c.confrelid = s.oid
  WHERE c.contype = 'f' AND (c.confdeltype IN ('c', 'n', 'd') OR c.confupdtype IN ('c', 'n', 'd'))
UNION ALL SELECT 'view', r.ev_class::int8 FROM pg_catalog.pg_depend d JOIN s ON d.refobjid = s.oid
  JOIN pg_catalog.pg_rewrite r ON r.oid = d.objid
  WHERE d.classid = 'pg_catalog.pg_rewrite'::regclass AND d.refclassid = 'pg_catalog.pg_class'::regclass AND r.ev_class <> s.oid
UNION ALL SELECT 'base', d.refobjid::int8 FROM pg_catalog.pg_rewrite r JOIN s ON r.ev_class = s.oid
  JOIN pg_catalog.pg_depend d ON d.objid = r.oid AND d.classid = 'pg_catalog.pg_rewrite'::regclass AND d.refclassid = 'pg_catalog.pg_class'::regclass
  WHERE r.rulename = '_RETURN' AND d.refobjid <> s.oid
UNION ALL SELECT 'trigger', t.tgrelid::int8 FROM pg_catalog.pg_trigger t JOIN s ON t.tgrelid = s.oid WHERE NOT t.tgisinternal
UNION ALL SELECT 'rule', r.ev_class::int8 FROM pg_catalog.pg_rewrite r JOIN s ON r.ev_class = s.oid WHERE r.ev_type <> '1'`;

interface Timed<T> {
  readonly v: T;
  readonly at: number;
}

/** See the file header. */
export class Catalog {
  private readonly facts = new Map<string, Timed<Relation | null>>();
  private readonly closures = new Map<string, Timed<WriteSet>>();
  private readonly clients = new Map<string, Promise<Client>>();
  private closed = false;
  /** Moves on whenever the facts change (a lookup stored some, or they were forgotten): memos of them check it. */
  version = 0;

  constructor(private readonly target: (database: string) => SideTarget | null, private readonly now: () => number = Date.now) {}

  private static key(database: string, searchPath: string, name: string): string {
    return `${database}\u0000${searchPath}\u0000${name}`;
  }

  /** Cached facts of `name` (null: no such relation or the lookup failed; undefined: not looked up). */
  known(database: string, searchPath: string, name: string): Relation | null | undefined {
    const t = this.facts.get(Catalog.key(database, searchPath, name));
    if (t === undefined || this.now() - t.at > CATALOG_TTL_MS) return undefined;
    return t.v;
  }

  /** When the cached facts of `name` expire (ms since epoch; 0 when not cached). */
  expiresAt(database: string, searchPath: string, name: string): number {
    const t = this.facts.get(Catalog.key(database, searchPath, name));
    return t === undefined ? 0 : t.at + CATALOG_TTL_MS;
  }

  /** Looks up the relations (null for those it cannot resolve or when the lookup fails). */
  async lookup(database: string, searchPath: string, names: readonly string[]): Promise<void> {
    let rows: { name: string; oid: string | null; kind: string | null; persistence: string | null; system: boolean | null; rls: boolean | null }[] = [];
    try {
      rows = await this.query(database, searchPath, FACTS_SQL, [names]);
    } catch {
      rows = [];
    }
    const at = this.now();
    this.version++;
    for (const n of names) {
      const r = rows.find((x) => x.name === n);
      const v: Relation | null = r === undefined || r.oid === null ? null
        : { oid: Number(r.oid), kind: r.kind ?? '', persistence: r.persistence ?? 'p', system: r.system === true, rowSecurity: r.rls === true };
      this.facts.set(Catalog.key(database, searchPath, n), { v, at });
    }
  }

  /** The cached answer of writeSet(), or undefined. */
  knownWriteSet(database: string, oids: readonly number[]): WriteSet | undefined {
    const c = this.closures.get(`${database}\u0000${[...oids].sort((a, b) => a - b).join(',')}`);
    return c !== undefined && this.now() - c.at <= CATALOG_TTL_MS ? c.v : undefined;
  }

  /** What writing `oids` invalidates (cached). */
  async writeSet(database: string, oids: readonly number[]): Promise<WriteSet> {
    const key = `${database}\u0000${[...oids].sort((a, b) => a - b).join(',')}`;
    const c = this.closures.get(key);
    if (c !== undefined && this.now() - c.at <= CATALOG_TTL_MS) return c.v;
    let v: WriteSet;
    try {
      v = await this.expand(database, oids);
    } catch (e) {
      v = { all: true, why: `catalog lookup failed: ${(e as Error).message}` };
    }
    this.closures.set(key, { v, at: this.now() });
    return v;
  }

  private async expand(database: string, start: readonly number[]): Promise<WriteSet> {
    // Every edge is followed both ways round (a sibling partition or a view's other tables are
    // invalidated too): more than needed, never less.
    const seen = new Set<number>(start);
    let frontier: number[] = [...start];
    for (let round = 0; round < MAX_ROUNDS && frontier.length > 0; round++) {
      const rows = await this.query<{ dir: string; oid: string }>(database, '', EDGES_SQL, [frontier]);
      const next: number[] = [];
      for (const r of rows) {
        const oid = Number(r.oid);
        if (r.dir === 'trigger') return { all: true, why: `relation ${oid} has a trigger` };
        if (r.dir === 'rule') return { all: true, why: `relation ${oid} has a rule` };
        if (seen.has(oid)) continue;
        seen.add(oid);
        next.push(oid);
      }
      frontier = next;
    }
    if (frontier.length > 0) return { all: true, why: 'the tables a write reaches go on too far' };
    return { all: false, oids: [...seen] };
  }

  /** Forgets every answer (a DDL went through pgmaitre). */
  forget(): void {
    this.version++;
    this.facts.clear();
    this.closures.clear();
  }

  /** Runs set_config(search_path) then `sql`, one caller at a time (the pair must not interleave). */
  private query<R>(database: string, searchPath: string, sql: string, params: unknown[]): Promise<R[]> {
    const run = async (): Promise<R[]> => {
      const c = await this.client(database);
      await c.query('SELECT pg_catalog.set_config(\'search_path\', $1, false)', [searchPath === '' ? '"$user", public' : searchPath]);
      return (await c.query(sql, params)).rows as R[];
    };
    const p = this.chain.then(run, run);
    this.chain = p.then(() => undefined, () => undefined);
    return p;
  }

  private chain: Promise<void> = Promise.resolve();

  private client(database: string): Promise<Client> {
    const t = this.closed ? null : this.target(database);
    if (t === null) return Promise.reject(new Error('no primary or no side-connection user (sr_check_user)'));
    const key = [t.host, t.port, t.user, t.database].join('\u0000');
    const have = this.clients.get(key);
    if (have !== undefined) return have;
    const c = new Client({
      host: t.host, port: t.port, user: t.user, password: t.password || undefined, database: t.database,
      connectionTimeoutMillis: t.timeoutMs, query_timeout: t.timeoutMs, application_name: 'pgmaitre query cache',
    });
    const drop = (): void => {
      if (this.clients.get(key) === p) this.clients.delete(key);
      c.end().catch(() => undefined);
    };
    c.on('error', drop);
    c.on('end', drop);
    const p = c.connect().then(() => c, (e: unknown) => {
      drop();
      throw e;
    });
    this.clients.set(key, p);
    return p;
  }

  async close(): Promise<void> {
    this.closed = true;
    const all = [...this.clients.values()];
    this.clients.clear();
    await Promise.all(all.map((p) => p.then((c) => c.end(), () => undefined).catch(() => undefined)));
  }
}
