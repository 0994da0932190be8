/**
 * WAL positions for read-your-writes: the primary's current LSN observed after a session's write
 * committed, and how far each standby has replayed. One persistent `pg` side connection per node
 * (never a client's backend connection); concurrent requests share a query, and a standby's
 * replay position is refreshed by at most one query at a time.
 *
 * A replay LSN is only ever a lower bound that grows, so a cached value can be trusted as
 * "replayed at least this far": a read may go to a standby once that bound reaches the LSN the
 * session's last commit needs.
 */
import { Client } from 'pg';
import { logFailure, type Logger } from '../log/logger';
import type { SideTarget } from './side-target';


/** Parses 'X/Y' into a number of bytes. */
export function parseLsn(text: string): bigint {
  const slash = text.indexOf('/');
  if (slash < 0) throw new Error(`invalid LSN "${text}"`);
  return (BigInt(`0x${text.slice(0, slash)}`) << 32n) + BigInt(`0x${text.slice(slash + 1)}`);
}

interface NodeState {
  client: Client | null;
  connecting: Promise<Client> | null;
  /** Highest replay LSN seen on this node. */
  replay: bigint | null;
  replayQuery: Promise<void> | null;
  /** The current-LSN query in flight and when it was sent. */
  current: { sentAt: number; promise: Promise<bigint> } | null;
  /** The last query on this node failed: further failures are logged at debug level only. */
  failing: boolean;
}

/** See the file header. */
export class LsnProbe {
  private readonly nodes = new Map<number, NodeState>();
  private closed = false;

  constructor(private readonly target: (nodeId: number) => SideTarget | null, private readonly log?: Logger) {}

  /**
   * Logs a failed side query or connection: at warning level when the node starts failing,
   * then at debug level until a query works again (a read's refresh must not flood the log).
   */
  private failed(nodeId: number, action: string, e: unknown): void {
    const s = this.state(nodeId);
    if (this.log === undefined) return;
    if (!s.failing) logFailure(this.log, action, nodeId, e);
    else this.log.debug({ event: 'action_failed', action, node_id: nodeId, err: (e as Error)?.message ?? String(e) }, `${action} on node ${nodeId} failed again`);
    s.failing = true;
  }

  private worked(nodeId: number): void {
    const s = this.state(nodeId);
    if (!s.failing) return;
    s.failing = false;
    this.log?.info({ event: 'action_recovered', node_id: nodeId }, `WAL position queries on node ${nodeId} work again`);
  }

  private state(nodeId: number): NodeState {
    let s = this.nodes.get(nodeId);
    if (s === undefined) this.nodes.set(nodeId, (s = { client: null, connecting: null, replay: null, replayQuery: null, current: null, failing: false }));
    return s;
  }

  private async client(nodeId: number): Promise<Client> {
    const s = this.state(nodeId);
    if (s.client !== null) return s.client;
    if (s.connecting !== null) return s.connecting;
    const t = this.target(nodeId);
    if (t === null || this.closed) throw new Error(`no way to reach node ${nodeId}`);
    const c = new Client({
      host: t.host, port: t.port, user: t.user, password: t.password || undefined, database: t.database,
      connectionTimeoutMillis: t.timeoutMs, query_timeout: t.timeoutMs, application_name: 'pgmaitre lsn',
    });
    const drop = (): void => {
      if (s.client === c) s.client = null;
    };
    c.on('error', (e: Error) => {
      this.failed(nodeId, 'read_your_writes side connection', e);
      drop();
    });
    c.on('end', drop);
    s.connecting = c.connect().then(() => {
      s.client = c;
      return c;
    }).finally(() => { s.connecting = null; });
    return s.connecting;
  }

  /** pg_current_wal_lsn() of `nodeId` from a query sent at or after `after` (ms). */
  currentLsnAfter(nodeId: number, after: number): Promise<bigint> {
    const s = this.state(nodeId);
    if (s.current !== null && s.current.sentAt >= after) return s.current.promise;
    const run = async (): Promise<bigint> => {
      const wait = s.current?.promise;
      // Only the order matters here: the earlier query's failure is its own callers' (and logged).
      if (wait !== undefined) await wait.catch(() => undefined);
      try {
        const c = await this.client(nodeId);
        const r = await c.query<{ l: string }>('SELECT pg_current_wal_lsn()::text AS l');
        const lsn = parseLsn(r.rows[0]!.l);
        this.worked(nodeId);
        return lsn;
      } catch (e) {
        this.failed(nodeId, 'pg_current_wal_lsn() for read_your_writes (reads stay on the primary)', e);
        throw e;
      }
    };
    const entry = { sentAt: Date.now(), promise: run() };
    s.current = entry;
    // This branch only clears the bookkeeping; the callers get the rejection (logged in run()).
    entry.promise.catch(() => undefined).finally(() => { if (s.current === entry) s.current = null; });
    return entry.promise;
  }

  /** Highest replay LSN known for a standby, or null. */
  replayLsn(nodeId: number): bigint | null {
    return this.nodes.get(nodeId)?.replay ?? null;
  }

  /** Asks a standby how far it has replayed (one query at a time per node); a failure is logged, reads stay on the primary. */
  refreshReplay(nodeId: number): Promise<void> {
    const s = this.state(nodeId);
    s.replayQuery ??= (async () => {
      try {
        const c = await this.client(nodeId);
        const r = await c.query<{ l: string | null }>('SELECT pg_last_wal_replay_lsn()::text AS l');
        const l = r.rows[0]?.l;
        if (l) {
          const v = parseLsn(l);
          if (s.replay === null || v > s.replay) s.replay = v;
        }
        this.worked(nodeId);
      } catch (e) {
        // The node may be down: reads keep going to the primary meanwhile.
        this.failed(nodeId, 'pg_last_wal_replay_lsn() for read_your_writes (reads stay on the primary)', e);
      } finally {
        s.replayQuery = null;
      }
    })();
    return s.replayQuery;
  }

  /** Closes every side connection. */
  async close(): Promise<void> {
    this.closed = true;
    // Ignored on purpose: at shutdown a side connection that fails to say goodbye changes nothing.
    await Promise.all([...this.nodes.values()].map((s) => s.client?.end().catch(() => undefined)));
  }
}
