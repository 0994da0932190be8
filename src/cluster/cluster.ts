/**
 * The cluster as pgmaitre sees it: backend nodes with pgpool's statuses and roles.
 *
 * Every status or role change goes through `setStatus`/`setRole`, which records
 * last_status_change, the reason, and emits a 'change' event; readers (router, admin commands)
 * take the nodes read-only. Health checks and failover (their own modules) are the writers.
 */
import { EventEmitter } from 'node:events';
import {
  type HealthCheckStats, type NodeCounters, type ReplicationInfo, newHealthCheckStats, newNodeCounters, newReplicationInfo,
} from './stats';

/** pgpool's node statuses. */
export const NodeStatus = { Up: 'up', Down: 'down', Waiting: 'waiting', Unused: 'unused', Quarantine: 'quarantine' } as const;
export type NodeStatus = (typeof NodeStatus)[keyof typeof NodeStatus];

/** Node roles, as configured or discovered with pg_is_in_recovery(). */
export const NodeRole = { Primary: 'primary', Standby: 'standby', Unknown: 'unknown' } as const;
export type NodeRole = (typeof NodeRole)[keyof typeof NodeRole];

/** A backend node's static definition (from backend_*N keys). */
export interface NodeDefinition {
  readonly id: number;
  readonly host: string;
  readonly port: number;
  readonly weight: number;
  readonly flags: readonly string[];
  readonly dataDirectory: string;
  readonly applicationName: string;
}

/** A node's live state. Counters and stats are mutable records owned by their writers. */
export interface BackendNode extends NodeDefinition {
  readonly status: NodeStatus;
  readonly role: NodeRole;
  readonly lastStatusChange: Date;
  readonly statusReason: string;
  /** What the node itself said last time it was asked: 'up'/'down' and 'primary'/'standby'/'unknown'. */
  readonly pgStatus: 'up' | 'down' | 'unknown';
  readonly pgRole: NodeRole;
  readonly counters: NodeCounters;
  readonly health: HealthCheckStats;
  readonly replication: ReplicationInfo;
}

interface MutableNode extends NodeDefinition {
  status: NodeStatus;
  role: NodeRole;
  lastStatusChange: Date;
  statusReason: string;
  pgStatus: 'up' | 'down' | 'unknown';
  pgRole: NodeRole;
  counters: NodeCounters;
  health: HealthCheckStats;
  replication: ReplicationInfo;
}

/** A change event: which node, what changed, and why. */
export interface NodeChange {
  readonly nodeId: number;
  readonly field: 'status' | 'role';
  readonly from: string;
  readonly to: string;
  readonly reason: string;
}

/** The nodes and their state; see the file header. */
export class Cluster extends EventEmitter<{ change: [NodeChange] }> {
  private readonly list: MutableNode[];

  constructor(defs: readonly NodeDefinition[]) {
    super();
    const now = new Date();
    this.list = defs.map((d) => ({
      ...d,
      status: NodeStatus.Waiting,
      role: NodeRole.Unknown,
      lastStatusChange: now,
      statusReason: 'initial',
      pgStatus: 'unknown',
      pgRole: NodeRole.Unknown,
      counters: newNodeCounters(),
      health: newHealthCheckStats(),
      replication: newReplicationInfo(),
    }));
  }

  /** All nodes, in id order (read-only view). */
  get nodes(): readonly BackendNode[] {
    return this.list;
  }

  /** A node by id (ids are usually the array index: checked first, on the hot path). */
  node(id: number): BackendNode | undefined {
    const n = this.list[id];
    return n !== undefined && n.id === id ? n : this.list.find((x) => x.id === id);
  }

  /** The id of the node currently taking writes, or -1 (cached: read for every request). */
  primaryId(): number {
    return this.primary;
  }

  private primary = -1;

  /** Recomputes the cached primary after a status or role change. */
  private refreshPrimary(): void {
    const p = this.list.find((n) => n.role === NodeRole.Primary && (n.status === NodeStatus.Up || n.status === NodeStatus.Waiting));
    this.primary = p === undefined ? -1 : p.id;
  }

  /** Changes a node's status (no-op when unchanged). */
  setStatus(id: number, status: NodeStatus, reason: string): void {
    const n = this.list.find((x) => x.id === id);
    if (n === undefined || n.status === status) return;
    const from = n.status;
    n.status = status;
    n.lastStatusChange = new Date();
    n.statusReason = reason;
    this.refreshPrimary();
    this.emit('change', { nodeId: id, field: 'status', from, to: status, reason });
  }

  /** Records what the node itself reported (pg_status / pg_role columns); no event. */
  setObserved(id: number, pgStatus: 'up' | 'down' | 'unknown', pgRole: NodeRole): void {
    const n = this.list.find((x) => x.id === id);
    if (n === undefined) return;
    n.pgStatus = pgStatus;
    n.pgRole = pgRole;
  }

  /** Records the latest replication measurement of a node; no event. */
  setReplication(id: number, info: Partial<ReplicationInfo>): void {
    const n = this.list.find((x) => x.id === id);
    if (n === undefined) return;
    Object.assign(n.replication, info);
  }

  /** Changes a node's role (no-op when unchanged). */
  setRole(id: number, role: NodeRole, reason: string): void {
    const n = this.list.find((x) => x.id === id);
    if (n === undefined || n.role === role) return;
    const from = n.role;
    n.role = role;
    n.lastStatusChange = new Date();
    this.refreshPrimary();
    this.emit('change', { nodeId: id, field: 'role', from, to: role, reason });
  }
}
