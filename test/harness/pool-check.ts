/**
 * After a client test, pgmaitre should hold no backend connection for a session that has gone:
 * every lease returned, resets finished, and — when the clients behaved — no connection thrown
 * away as "unclean" (which would mean the proxy lost track of the protocol state, e.g. counted a
 * ReadyForQuery that never comes). Needs `log_min_messages = debug1` for the pool_close lines.
 */
import { eventually, type InProcess } from './in-process';

/** pgpool.conf line that makes pool closes visible to poolCloseReasons. */
export const DEBUG_POOL_LOG = 'log_min_messages = debug1';

/** Waits until no pool has a lease, a reset or a connect in progress; returns the idle counts. */
export async function waitPoolsSettled(px: InProcess, timeoutMs = 10_000): Promise<number> {
  const figures = px.poolFigures;
  if (figures !== undefined) {
    // PGMAITRE_TEST_WORKERS: the instance's figures, summed over its worker processes.
    await eventually(async () => { const f = await figures(); return f.busy === 0 && f.sessions === 0; }, 'all sessions gone and every backend connection back in its pool', timeoutMs);
    return (await figures()).idle;
  }
  const busy = (): number => {
    let n = 0;
    for (const pool of px.app.ctx.pools.values()) {
      const c = pool.counts();
      n += c.active + c.resetting + c.connecting;
    }
    return n;
  };
  await eventually(() => busy() === 0 && px.app.ctx.registry.size === 0, 'all sessions gone and every backend connection back in its pool', timeoutMs);
  let idle = 0;
  for (const pool of px.app.ctx.pools.values()) idle += pool.counts().idle;
  return idle;
}

/** Reasons of the pool_close events logged so far (needs DEBUG_POOL_LOG). */
export function poolCloseReasons(px: InProcess): string[] {
  const reasons: string[] = [];
  for (const line of px.logs().split('\n')) {
    if (!line.includes('"pool_close"')) continue;
    try {
      const rec = JSON.parse(line) as { event?: string; reason?: string };
      if (rec.event === 'pool_close') reasons.push(rec.reason ?? '');
    } catch {
      // not a JSON line
    }
  }
  return reasons;
}
