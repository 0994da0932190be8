/**
 * The HTTP role check (health_check_http_portN): asks a node's Patroni REST API — or anything
 * answering the same way, like the small script of the chapter — which role the node has,
 * instead of asking PostgreSQL. GET <primary path> answering 200 means primary; otherwise
 * GET <replica path> answering 200 means standby; anything else (503 on both, a refused or timed
 * out request) is a failed health check. HAProxy users know this as `option httpchk` +
 * `http-check send meth GET uri /primary` + `check port 8008`; here one check gives both the
 * node's health and its role, and the failover manager takes the role from it (see
 * failover-manager.ts).
 */
import type { ProbeResult } from './probe';

/** Where and how to ask. */
export interface HttpCheckTarget {
  readonly host: string;
  readonly port: number;
  readonly primaryPath: string;
  readonly replicaPath: string;
  /** Whole check bound in ms (0 = none). */
  readonly timeoutMs: number;
}

async function status(url: string, signal: AbortSignal): Promise<number> {
  const res = await fetch(url, { signal, redirect: 'manual', headers: { 'user-agent': 'pgmaitre-health-check' } });
  await res.arrayBuffer().catch(() => undefined);
  return res.status;
}

/** One HTTP role check; never rejects. */
export async function httpRoleProbe(t: HttpCheckTarget, signal?: AbortSignal): Promise<ProbeResult> {
  const t0 = performance.now();
  const signals: AbortSignal[] = [];
  if (signal !== undefined) signals.push(signal);
  if (t.timeoutMs > 0) signals.push(AbortSignal.timeout(t.timeoutMs));
  const s = signals.length === 0 ? new AbortController().signal : AbortSignal.any(signals);
  const base = `http://${t.host.includes(':') ? `[${t.host}]` : t.host}:${t.port}`;
  try {
    const p = await status(base + t.primaryPath, s);
    if (p === 200) return { ok: true, inRecovery: false, durationMs: performance.now() - t0 };
    const r = await status(base + t.replicaPath, s);
    if (r === 200) return { ok: true, inRecovery: true, durationMs: performance.now() - t0 };
    return { ok: false, error: `HTTP check on port ${t.port}: ${t.primaryPath} answered ${p}, ${t.replicaPath} answered ${r}`, durationMs: performance.now() - t0 };
  } catch (e) {
    const err = e as { name?: string; message?: string; cause?: { code?: string } };
    const why = err.name === 'TimeoutError' ? `timed out after ${t.timeoutMs} ms` : err.cause?.code ?? err.message ?? String(e);
    return { ok: false, error: `HTTP check on port ${t.port}: ${why}`, durationMs: performance.now() - t0 };
  }
}
