/**
 * What each PCP request does and answers, mapped onto AdminContext/AdminActions. The reply
 * formats are those the pcp_* tools parse (see codec.ts); row data comes from the same
 * functions as the SQL admin commands, so every face prints the same values.
 *
 * Request types: L node count, I node info (id or -1 = all), H health check stats, N process
 * count, P process info (pid or 0 = all), B pool status, C attach, D/d detach (d = gracefully),
 * J/j promote ("id \0" + 's' switchover | 'n'), Z reload, T/t stop (mode s/f/i), W watchdog
 * info, O online recovery, A set parameter, X disconnect.
 */
import type { AdminContext } from '../admin/types';
import type { BackendNode } from '../cluster/cluster';
import { epochSeconds, isStreaming, normalisedWeights, printfF, slotTable } from '../admin/format';
import { healthCheckStatsRows } from '../admin/commands/show-pool-health-check-stats';
import { poolPoolsRows } from '../admin/commands/show-pool-pools';
import { poolStatusItems } from '../admin/config-items';
import { cstr, encodeError, encodePacket, encodeStrings, splitStrings } from './codec';

/** The outcome of one request. */
export interface PcpReply {
  readonly packets: Buffer[];
  /** Run after the reply is flushed (stop). */
  readonly after?: () => void;
  /** Close the connection after the reply. */
  readonly close?: boolean;
}

const DONE = 'CommandComplete';

/** C atoi(): leading white space, optional sign, digits; 0 when none. */
export function atoi(s: string): number {
  const m = /^\s*([+-]?\d+)/.exec(s);
  return m === null ? 0 : Number.parseInt(m[1] ?? '0', 10);
}

/** pgpool's BACKEND_STATUS number: 0 unused, 1 connect wait, 2 up, 3 down. */
export function backendStatusCode(n: BackendNode): number {
  switch (n.status) {
    case 'unused': return 0;
    case 'waiting': return 1;
    case 'up': return 2;
    default: return 3;
  }
}

/** pgpool's SERVER_ROLE number: 0 main, 1 replica, 2 primary, 3 standby. */
export function roleCode(ctx: AdminContext, n: BackendNode): number {
  const primary = ctx.primaryId();
  if (isStreaming(ctx.config())) return n.id === primary ? 2 : 3;
  return n.id === primary ? 0 : 1;
}

function error(message: string, detail?: string): PcpReply {
  return { packets: [encodeError('ERROR', message, detail)] };
}

function fatal(message: string, detail?: string): PcpReply {
  return { packets: [encodeError('FATAL', message, detail)], close: true };
}

/** RAND_MAX: pgpool keeps weights scaled by it and its clients divide by it. */
const RAND_MAX = 2147483647;

/**
 * Node-info record layout. pcp clients of pgpool-II 4.4 and later read 13 fields (with
 * standby_delay_by_time before the delay); 4.3 clients (Debian 12's pcp_* tools) read 12.
 */
export type PcpClientVersion = '4.3' | '4.4';

function nodeInfo(ctx: AdminContext, payload: Buffer, version: PcpClientVersion): PcpReply {
  const id = atoi(splitStrings(payload)[0] ?? '');
  const nodes = ctx.nodes();
  const chosen = id === -1 ? nodes : nodes.filter((n) => n.id === id);
  if (chosen.length === 0) return error('informing node info failed', 'invalid node ID');
  const weights = normalisedWeights(nodes);
  const byTime = ctx.config().delay_threshold_by_time > 0;
  const packets = [encodeStrings('i', 'ArraySize', String(chosen.length))];
  for (const n of chosen) {
    const r = n.replication;
    const isPrimary = n.id === ctx.primaryId();
    const delay = isPrimary ? 0 : byTime ? Math.round((r.delaySeconds ?? 0) * 1_000_000) : Math.trunc(r.delayBytes);
    packets.push(encodeStrings('i', 'NodeInfo',
      n.host, String(n.port), String(backendStatusCode(n)), n.status === 'quarantine' ? '1' : '0', n.pgStatus,
      printfF((weights.get(n.id) ?? 0) * RAND_MAX), String(roleCode(ctx, n)), n.pgStatus === 'up' ? n.pgRole : 'unknown',
      ...(version === '4.3' ? [] : [byTime ? '1' : '0']), String(delay), r.state, r.syncState, epochSeconds(n.lastStatusChange)));
  }
  packets.push(encodeStrings('i', DONE));
  return { packets };
}

function healthStats(ctx: AdminContext, payload: Buffer): PcpReply {
  const id = atoi(splitStrings(payload)[0] ?? '');
  if (id < 0 || id > ctx.nodes().length) return error('informing health check stats info failed', `invalid node ID ${id}`);
  const row = healthCheckStatsRows(ctx).find((r) => r[0] === String(id));
  if (row === undefined) return error('informing health check stats info failed', `stats data for node ID ${id} does not exist`);
  return { packets: [encodeStrings('h', DONE, ...row)] };
}

function procCount(ctx: AdminContext): PcpReply {
  const pids = slotTable(ctx).map((s) => String(s.pid));
  return { packets: [encodeStrings('n', DONE, String(pids.length), ...pids)] };
}

function procInfo(ctx: AdminContext, payload: Buffer): PcpReply {
  const raw = splitStrings(payload)[0] ?? '';
  const pid = atoi(raw);
  if (pid !== 0 && !slotTable(ctx).some((s) => s.pid === pid)) return error('informing process info failed', `invalid process ID : ${raw}`);
  const rows = poolPoolsRows(ctx, pid === 0 ? undefined : pid);
  return {
    packets: [
      encodeStrings('p', 'ArraySize', String(rows.length)),
      ...rows.map((r) => encodeStrings('p', 'ProcessInfo', ...r)),
      encodeStrings('p', DONE),
    ],
  };
}

function poolStatus(ctx: AdminContext): PcpReply {
  const items = poolStatusItems(ctx);
  const count = Buffer.alloc(4);
  count.writeInt32BE(items.length, 0);
  return {
    packets: [
      encodePacket('b', cstr('ArraySize'), count),
      ...items.map((i) => encodeStrings('b', 'ProcessConfig', i.item, i.value, i.description)),
      encodeStrings('b', DONE),
    ],
  };
}

async function action(reply: string, run: () => Promise<unknown>, failMessage: string): Promise<PcpReply> {
  try {
    await run();
    return { packets: [encodeStrings(reply, DONE)] };
  } catch (err) {
    return error(failMessage, err instanceof Error ? err.message : String(err));
  }
}

/** pcp_recovery_node: answers 'c' once the node is rebuilt and attached; refusals and failures as pgpool-II words them. */
async function recoverNode(ctx: AdminContext, payload: Buffer): Promise<PcpReply> {
  const id = atoi(splitStrings(payload)[0] ?? '');
  const recover = ctx.actions.recoverNode;
  if (recover === undefined) return error('process recovery request failed', 'online recovery is not available');
  if (!validNode(ctx, id)) return error('process recovery request failed', `node id ${id} is not valid`);
  if (!isStreaming(ctx.config())) return error('process recovery request failed', 'recovery request is only allowed in replication and streaming replication modes.');
  try {
    await recover(id);
    return { packets: [encodeStrings('c', DONE)] };
  } catch (err) {
    const e = err as { message?: string; detail?: string; severity?: string };
    const message = e.message ?? String(err);
    return e.severity === 'FATAL' ? fatal(message, e.detail) : error(message, e.detail);
  }
}

function validNode(ctx: AdminContext, id: number): boolean {
  return ctx.nodes().some((n) => n.id === id);
}

/** Handles one authenticated request. */
export async function handlePcpRequest(ctx: AdminContext, type: string, payload: Buffer, version: PcpClientVersion = '4.4'): Promise<PcpReply> {
  switch (type) {
    case 'L': return { packets: [encodeStrings('l', DONE, String(ctx.nodes().length))] };
    case 'I': return nodeInfo(ctx, payload, version);
    case 'H': return healthStats(ctx, payload);
    case 'N': return procCount(ctx);
    case 'P': return procInfo(ctx, payload);
    case 'B': return poolStatus(ctx);
    case 'C': {
      const id = atoi(splitStrings(payload)[0] ?? '');
      if (!validNode(ctx, id)) return error('attach node failed', `node id ${id} is not valid`);
      return action('c', () => ctx.actions.attachNode(id), 'attach node failed');
    }
    case 'D':
    case 'd': {
      const id = atoi(splitStrings(payload)[0] ?? '');
      if (!validNode(ctx, id)) return error('detach node failed', `node id ${id} is not valid`);
      return action('d', () => ctx.actions.detachNode(id, { gracefully: type === 'd' }), 'detach node failed');
    }
    case 'J':
    case 'j': {
      const text = payload.toString('latin1');
      const id = atoi(text);
      const nul = text.indexOf('\0');
      const option = nul >= 0 ? text[nul + 1] : undefined;
      if (!validNode(ctx, id)) return error('could not process promote request', `node id ${id} is not valid`);
      if (!isStreaming(ctx.config())) return fatal('invalid pgpool mode for process promote request', `not in streaming replication mode, can't promote node id ${id}`);
      if (id === ctx.primaryId()) return fatal('invalid promote request', `specified node is already primary node, can't promote node id ${id}`);
      return action('d', () => ctx.actions.promoteNode(id, { switchover: option === 's' }), 'promote node failed');
    }
    case 'Z': return action('z', () => ctx.actions.reloadConfig(), 'process reload config request failed');
    // pcp_log_rotate (pgpool 4.4+): 'V' + scope ('l' local, 'c' cluster: one pgmaitre is its own cluster).
    case 'V': return action('v', () => ctx.actions.logRotate(), 'PCP: error while processing log rotation request');
    case 'G': {
      // pcp_invalidate_query_cache (pgpool-II 4.6)
      const qc = ctx.queryCache?.() ?? null;
      if (qc === null) return error('query cache is not enabled', 'memory_cache_enabled is off');
      return action('g', () => qc.invalidateAll(), 'invalidate query cache failed');
    }
    case 'T':
    case 't': {
      const mode = payload.toString('latin1', 0, 1);
      if (mode !== 's' && mode !== 'f' && mode !== 'i') return error('PCP: error while processing shutdown request', `invalid shutdown mode "${mode}"`);
      const m = mode === 's' ? 'smart' : mode === 'f' ? 'fast' : 'immediate';
      return { packets: [encodeStrings('t', DONE)], after: () => {
        // actions.stop() only schedules the stop (app-admin.ts logs a failure); this answer is already sent.
        void ctx.actions.stop(m).catch(() => undefined);
      } };
    }
    case 'W': return error('PCP: informing watchdog info failed', 'watchdog is not enabled');
    case 'O': return recoverNode(ctx, payload);
    case 'A': {
      const [name] = splitStrings(payload);
      return error('PCP: set configuration parameter failed', `invalid parameter "${name ?? ''}"`);
    }
    case 'F': return { packets: [] };
    default: return fatal('PCP processing request', `unknown PCP packet type "${type}"`);
  }
}
