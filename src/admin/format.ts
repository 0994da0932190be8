/**
 * Text formats shared by the admin commands, the PCP server and the HTTP page, so that every
 * face prints a value the way pgpool-II prints it: timestamps as strftime("%F %T") in local
 * time, weights as printf("%f") of the normalised weight, statuses and roles by pgpool's names,
 * and config values the way PGPOOL SHOW renders them (on/off, comma-joined lists).
 */
import type { BackendNode } from '../cluster/cluster';
import type { Config } from '../config/load';
import { describeParam } from '../config/load';
import type { AdminContext, SessionInfo } from './types';

function pad2(n: number): string {
  return n < 10 ? `0${n}` : String(n);
}

/** strftime("%Y-%m-%d %H:%M:%S") in local time; '' for null. */
export function pgTimestamp(d: Date | null | undefined): string {
  if (d === null || d === undefined) return '';
  return `${d.getFullYear()}-${pad2(d.getMonth() + 1)}-${pad2(d.getDate())} ${pad2(d.getHours())}:${pad2(d.getMinutes())}:${pad2(d.getSeconds())}`;
}

/** printf("%f"): six decimals. */
export function printfF(n: number): string {
  if (Number.isNaN(n)) return 'nan';
  return n.toFixed(6);
}

/** Unix epoch seconds (pgpool's time_t on the PCP wire). */
export function epochSeconds(d: Date | null | undefined): string {
  return d === null || d === undefined ? '0' : String(Math.floor(d.getTime() / 1000));
}

/** True in streaming-replication mode (roles primary/standby), false in the others (main/replica). */
export function isStreaming(config: Config): boolean {
  return config.backend_clustering_mode === 'streaming_replication' || config.backend_clustering_mode === 'logical_replication';
}

/** Node weights normalised to sum 1 over all configured nodes (pgpool's backend_weight / RAND_MAX). */
export function normalisedWeights(nodes: readonly BackendNode[]): Map<number, number> {
  const total = nodes.reduce((s, n) => s + n.weight, 0);
  return new Map(nodes.map((n) => [n.id, total > 0 ? n.weight / total : 0]));
}

/** The role column: primary/standby (streaming) or main/replica, decided by who is primary now. */
export function roleText(ctx: AdminContext, node: BackendNode): string {
  const config = ctx.config();
  const primary = ctx.primaryId();
  if (isStreaming(config)) return node.id === primary ? 'primary' : 'standby';
  const main = primary >= 0 ? primary : (ctx.nodes().find((n) => n.status === 'up' || n.status === 'waiting')?.id ?? -1);
  return node.id === main ? 'main' : 'replica';
}

/** pg_role: what the node said it is, 'unknown' unless pg_status is up (as pgpool does). */
export function pgRoleText(ctx: AdminContext, node: BackendNode): string {
  if (!isStreaming(ctx.config())) return roleText(ctx, node);
  return node.pgStatus === 'up' ? node.pgRole : 'unknown';
}

/** replication_delay: bytes, or "%.6f second(s)" when measured by time; 0 for the primary. */
export function replicationDelayText(ctx: AdminContext, node: BackendNode): string {
  if (!isStreaming(ctx.config()) || node.id === ctx.primaryId()) return '0';
  const r = node.replication;
  if (ctx.config().delay_threshold_by_time > 0 && r.delaySeconds !== null) {
    return `${r.delaySeconds.toFixed(6)} ${r.delaySeconds >= 2 ? 'seconds' : 'second'}`;
  }
  return String(Math.max(0, Math.trunc(r.delayBytes)));
}

/** A config value as PGPOOL SHOW prints it (secrets as '********'). */
export function paramText(name: string, value: unknown): string {
  const d = describeParam(name);
  if (d?.secret === true && value !== '' && value !== undefined) return '********';
  if (typeof value === 'boolean') return value ? 'on' : 'off';
  if (Array.isArray(value)) return value.join(d?.type === 'list' && name.endsWith('query_list') ? ';' : ',');
  if (value === undefined || value === null) return '';
  if (typeof value === 'number' && d?.type === 'int' && (name.endsWith('_permissions') || name === 'log_file_mode')) {
    return `0${value.toString(8)}`;
  }
  return String(value);
}

/** Pseudo-pid of a free client slot: stable, and outside the range the session registry issues from. */
export function slotPid(slot: number): number {
  return 2_000_000_000 + slot;
}

/** One row per client slot (num_init_children): the session in it, or undefined when free. */
export function slotTable(ctx: AdminContext): { slot: number; pid: number; session: SessionInfo | undefined }[] {
  const bySlot = new Map<number, SessionInfo>();
  for (const s of ctx.sessions()) bySlot.set(s.slot, s);
  const capacity = ctx.slots().capacity;
  const rows: { slot: number; pid: number; session: SessionInfo | undefined }[] = [];
  for (let slot = 0; slot < capacity; slot++) {
    const session = bySlot.get(slot);
    rows.push({ slot, pid: session?.pid ?? slotPid(slot), session });
  }
  // Sessions pooled per transaction (max_client_conn) come after the num_init_children slots.
  for (const slot of [...bySlot.keys()].filter((k) => k >= capacity).sort((a, b) => a - b)) {
    const session = bySlot.get(slot)!;
    rows.push({ slot, pid: session.pid, session });
  }
  return rows;
}
