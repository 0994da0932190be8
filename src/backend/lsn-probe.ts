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
}

/** See the file header. */
export class LsnProbe {
  private readonly nodes = new Map<number, NodeState>();
  private closed = false;

  constructor(private readonly target: (nodeId: number) => SideTarget | null) {}

  private state(nodeId: number): NodeState {
    let s = this.nodes.get(nodeId);
    if (s === undefined) this.nodes.set(nodeId, (s = { client: null, connecting: null, replay: null, replayQuery: null, current: null }));
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
    c.on('error', drop);
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
      if (wait !== undefined) await wait.catch(() => {});
      const c = await this.client(nodeId);
      const r = await c.query<{ l: string }>('SELECT pg_current_wal_lsn()::text AS l');
      return parseLsn(r.rows[0]!.l);
    };
    const entry = { sentAt: Date.now(), promise: run() };
    s.current = entry;
    entry.promise.catch(() => {}).finally(() => { if (s.current === entry) s.current = null; });
    return entry.promise;
  }

  /** Highest replay LSN known for a standby, or null. */
  replayLsn(nodeId: number): bigint | null {
    return this.nodes.get(nodeId)?.replay ?? null;
  }

  /** Asks a standby how far it has replayed (one query at a time per node); errors are ignored. */
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
      } catch {
        // the node may be down: reads keep going to the primary meanwhile
      } finally {
        s.replayQuery = null;
      }
    })();
    return s.replayQuery;
  }

  /** Closes every side connection. */
  async close(): Promise<void> {
    this.closed = true;
    await Promise.all([...this.nodes.values()].map((s) => s.client?.end().catch(() => {})));
  }
}
