/**
 * memqcache_logical_invalidation = on: the primary's own change stream invalidates the query
 * cache by relation, whoever wrote (another pgmaitre or pgpool, a direct connection, a job, and
 * what triggers, cascades and partition routing wrote on their behalf, since the stream carries
 * the rows actually changed).
 *
 * One stream per database the cache serves (logical decoding is per database), started by the
 * first cacheable SELECT there. Each runs on a side connection of its own (as sr_check_user, like
 * the catalog lookups) holding a TEMPORARY logical slot named `pgmaitre_qc_<pid>_<random>`: the
 * slot lives exactly as long as that connection, so a stopped or crashed pgmaitre never leaves a
 * slot retaining WAL on the primary. Every round reads the slot (pg_logical_slot_get_changes,
 * which consumes everything flushed so far), takes the relations inserted into, updated, deleted
 * from or truncated (only their names leave the server, once per round), resolves their OIDs on the same connection, expands them through the catalog
 * (partitions' parents, views over them...) and bumps their generations; the round counts as
 * applied once the bumps went through. A relation that no longer resolves (dropped meanwhile)
 * invalidates the whole database.
 *
 * The output plugin is test_decoding (shipped with PostgreSQL): pgoutput would need a publication
 * FOR ALL TABLES, and a publication that publishes updates and deletes makes every UPDATE/DELETE
 * on a table without a replica identity fail (55000) — unacceptable side effect for a cache.
 *
 * Fail safe: a hit is served only when the stream vouches for it —
 * - memqcache_logical_max_lag = 0: the hit waits for a round that began after the request arrived
 *   (whatever committed before the client asked has been applied: never stale); a round that does
 *   not come within WAIT_MS sends the request to the backend instead;
 * - > 0: the last applied round began at most that many ms ago (bounded staleness, no wait).
 * While a stream is starting, broken (connection lost, slot dropped, failover, wal_level not
 * logical, no right to create the slot...) or behind, nothing is served from the cache in that
 * database: requests go to the backends. Every (re)start of a stream invalidates the whole
 * database before it vouches again: writes made while no slot existed were never seen. Retried
 * every RETRY_MS, with a warning per failure kind.
 *
 * Not in the stream: DDL (a table dropped and re-created behind pgmaitre's back is seen through
 * the catalog answers' 10 s expiry, docs/query-cache.md), sequences, large objects.
 */
import { randomBytes } from 'node:crypto';
import { Client } from 'pg';
import type { SideTarget } from '../backend/side-target';
import type { Logger } from '../log/logger';

/** A hit waits at most this long for a round (then the request goes to the backend). */
export const WAIT_MS = 2000;
/** A round (or any query of the stream) taking longer breaks the stream (it restarts). */
export const ROUND_TIMEOUT_MS = 30_000;
/** A broken stream is tried again after this long. */
export const RETRY_MS = 1000;
/** With nobody waiting, a round every IDLE_MS (keeps the slot from retaining WAL), or max_lag / 3. */
const IDLE_MS = 1000;

/** What the streams need of the cache. */
export interface StreamSink {
  /** Invalidates `oids` of `database` (expanded through the catalog); resolves once applied. */
  invalidate(database: string, oids: readonly number[]): Promise<void>;
  /** Invalidates every answer of `database` (`cause` for the counters); resolves once applied. */
  invalidateDatabase(database: string, cause: string): Promise<void>;
}

/** Settings (config keys of the same names). */
export interface ChangeStreamConfig {
  readonly memqcache_logical_max_lag: number;
}

/**
 * The relations named by a batch of test_decoding lines: `table <name>[, <name>...]: INSERT|UPDATE|
 * DELETE|TRUNCATE: ...`, names as quote_qualified_identifier writes them (double quotes when
 * needed), returned as written (valid input for to_regclass). BEGIN/COMMIT/message lines name none.
 */
export function changedRelations(lines: readonly string[], into: Set<string> = new Set()): Set<string> {
  for (const line of lines) {
    if (!line.startsWith('table ')) continue;
    let name = '';
    let quoted = false;
    for (let i = 6; i < line.length; i++) {
      const ch = line[i]!;
      if (quoted) {
        name += ch;
        if (ch === '"') {
          if (line[i + 1] === '"') name += line[++i];
          else quoted = false;
        }
      } else if (ch === '"') {
        quoted = true;
        name += ch;
      } else if (ch === ',' && line[i + 1] === ' ') {
        into.add(name);
        name = '';
        i++;
      } else if (ch === ':') {
        into.add(name);
        break;
      } else name += ch;
    }
  }
  return into;
}

interface Waiter {
  readonly since: number;
  readonly resolve: (ok: boolean) => void;
  readonly timer: NodeJS.Timeout;
}

/** The stream of one database. */
class DatabaseStream {
  /** Start time (performance.now) of the last round applied; -Infinity: none since the stream (re)started. */
  applied = -Infinity;
  up = false;
  private waiters: Waiter[] = [];
  private wake: (() => void) | null = null;
  private client: Client | null = null;
  private lastError = '';
  rounds = 0;

  constructor(
    private readonly database: string,
    private readonly streams: ChangeStreams,
  ) {
    void this.run();
  }

  /** Resolves true once a round begun after now is applied; false if none within WAIT_MS or the stream breaks. */
  waitRound(): Promise<boolean> {
    const since = performance.now();
    return new Promise<boolean>((resolve) => {
      const w: Waiter = {
        since, resolve,
        timer: setTimeout(() => {
          this.waiters = this.waiters.filter((x) => x !== w);
          resolve(false);
        }, WAIT_MS),
      };
      w.timer.unref?.();
      this.waiters.push(w);
      this.wake?.();
    });
  }

  private settle(ok: boolean, roundStart: number): void {
    if (this.waiters.length === 0) return;
    const keep: Waiter[] = [];
    for (const w of this.waiters) {
      if (!ok || w.since <= roundStart) {
        clearTimeout(w.timer);
        w.resolve(ok);
      } else keep.push(w);
    }
    this.waiters = keep;
  }

  private sleep(ms: number): Promise<void> {
    return new Promise<void>((resolve) => {
      const t = setTimeout(done, ms);
      t.unref?.();
      function done(): void {
        clearTimeout(t);
        resolve();
      }
      this.wake = () => {
        this.wake = null;
        done();
      };
    });
  }

  private async run(): Promise<void> {
    const s = this.streams;
    while (!s.closed) {
      try {
        await this.session();
      } catch (e) {
        const msg = (e as Error)?.message ?? String(e);
        if (!s.closed && msg !== this.lastError) {
          s.log.warn({ event: 'query_cache_change_stream', database: this.database, err: msg },
            `query cache: the change stream of database "${this.database}" is down (${msg}); no answer is served from the cache there until it is back`);
        }
        this.lastError = msg;
      }
      this.up = false;
      this.applied = -Infinity;
      this.settle(false, 0);
      const c = this.client;
      this.client = null;
      await c?.end().catch(() => undefined);
      if (!s.closed) await this.sleep(RETRY_MS);
    }
  }

  /** One connection's life: a temporary slot, rounds until something breaks. */
  private async session(): Promise<void> {
    const s = this.streams;
    const t = s.target(this.database);
    if (t === null) throw new Error('no primary or no side-connection user (sr_check_user)');
    const c = new Client({
      host: t.host, port: t.port, user: t.user, password: t.password || undefined, database: t.database,
      connectionTimeoutMillis: t.timeoutMs, application_name: 'pgmaitre query cache stream',
      // A round that hangs (a primary gone without a reset) ends the connection: the stream restarts.
      query_timeout: ROUND_TIMEOUT_MS, keepAlive: true,
    });
    this.client = c;
    let broken: Error | null = null;
    c.on('error', (e: Error) => { broken = e; });
    await c.connect();
    // Every round would log "starting logical decoding for slot" (LOG): quiet it where allowed.
    await c.query("SET log_min_messages = 'warning'").catch(() => undefined);
    const slot = `pgmaitre_qc_${process.pid}_${randomBytes(4).toString('hex')}`;
    await c.query("SELECT pg_catalog.pg_create_logical_replication_slot($1, 'test_decoding', true)", [slot]);
    // Writes made while no slot existed were never seen.
    await s.sink.invalidateDatabase(this.database, 'change_stream_start');
    if (this.lastError !== '') {
      s.log.warn({ event: 'query_cache_change_stream', database: this.database },
        `query cache: the change stream of database "${this.database}" is back (slot ${slot}); the database's answers were invalidated`);
    }
    this.lastError = '';
    this.up = true;
    // Only the relation names leave the server, once each per round (a bulk load decodes to one
    // line per row, with the row: not for pgmaitre's memory).
    const sql = `SELECT DISTINCT 'table ' || substring(data FROM '^table (.*?): (?:INSERT|UPDATE|DELETE|TRUNCATE):') || ':' AS data
      FROM pg_catalog.pg_logical_slot_get_changes($1, NULL, NULL, 'skip-empty-xacts', '1', 'include-xids', '0')
      WHERE data LIKE 'table %'`;
    while (!s.closed) {
      if (broken !== null) throw broken;
      const start = performance.now();
      const r = await c.query<{ data: string }>({ text: sql, values: [slot] });
      // (null: a line the pattern does not read — fail closed)
      if (r.rows.some((x) => x.data === null)) {
        await s.sink.invalidateDatabase(this.database, 'change_stream');
        r.rows = r.rows.filter((x) => x.data !== null);
      }
      const names = changedRelations(r.rows.map((x) => x.data));
      if (names.size > 0) {
        const list = [...names];
        // (a name to_regclass cannot even parse fails the round: the stream restarts, the database is invalidated)
        const o = await c.query<{ oid: string | null }>('SELECT pg_catalog.to_regclass(n)::oid::int8 AS oid FROM unnest($1::text[]) AS n', [list]);
        const oids = o.rows.map((x) => (x.oid === null ? null : Number(x.oid)));
        if (oids.some((x) => x === null)) await s.sink.invalidateDatabase(this.database, 'change_stream');
        else await s.sink.invalidate(this.database, oids as number[]);
      }
      this.applied = start;
      this.rounds++;
      this.settle(true, start);
      if (this.waiters.length > 0) continue;
      const lag = s.config.memqcache_logical_max_lag;
      await this.sleep(lag > 0 ? Math.max(5, Math.min(IDLE_MS, Math.floor(lag / 3))) : IDLE_MS);
    }
  }

  async stop(): Promise<void> {
    this.wake?.();
    this.settle(false, 0);
    const c = this.client;
    this.client = null;
    await c?.end().catch(() => undefined);
  }
}

/** See the file header. */
export class ChangeStreams {
  closed = false;
  private readonly streams = new Map<string, DatabaseStream>();

  constructor(
    public config: ChangeStreamConfig,
    readonly target: (database: string) => SideTarget | null,
    readonly sink: StreamSink,
    readonly log: Logger,
  ) {}

  /**
   * May a hit be served in `database` now? true: yes; false: no (stream starting, down or behind:
   * send the request to the backend); a promise: wait for a round (max_lag = 0), then its answer.
   */
  fence(database: string): boolean | Promise<boolean> {
    let st = this.streams.get(database);
    if (st === undefined) {
      if (this.closed) return false;
      st = new DatabaseStream(database, this);
      this.streams.set(database, st);
      return false;
    }
    if (!st.up) return false;
    const lag = this.config.memqcache_logical_max_lag;
    if (lag > 0) return performance.now() - st.applied <= lag;
    return st.waitRound();
  }

  /** Starts the stream of `database` (so that it is up by the first hit). */
  start(database: string): void {
    if (!this.closed && !this.streams.has(database)) this.streams.set(database, new DatabaseStream(database, this));
  }

  /** Per database: up, and rounds applied (SHOW/metrics, tests). */
  status(): { database: string; up: boolean; rounds: number }[] {
    return [...this.streams].map(([database, st]) => ({ database, up: st.up, rounds: st.rounds }));
  }

  async close(): Promise<void> {
    this.closed = true;
    await Promise.all([...this.streams.values()].map((s) => s.stop()));
    this.streams.clear();
  }
}
