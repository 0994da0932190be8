/**
 * Failover manager: the only writer of node status and role after start-up.
 *
 * It consumes health events (a node failed all retries), role observations (health and
 * replication checks both ask pg_is_in_recovery()), replication snapshots (auto_failback,
 * detach_false_primary) and backend-socket errors from the data path, and applies pgpool's
 * policy:
 *  - detach (status 'down', reason code) unless the node is flagged DISALLOW_TO_FAILOVER;
 *    failover_command runs for every detach, with pgpool's placeholders;
 *  - a backend connection lost without a word (failover_on_backend_error) detaches the node
 *    only when one health check probe (a fresh connection) fails too: a connection reset or a
 *    backend killed by pg_terminate_backend() on a node that still takes connections is a
 *    lost connection, not a lost node (see reportBackendError);
 *  - when the primary is detached, primaryId() is -1 at once (writes fail fast) and a search
 *    polls every live node with pg_is_in_recovery() for up to search_primary_node_timeout;
 *    afterwards the regular checks keep watching, so a standby promoted later (by an operator,
 *    Patroni, a script) is still adopted without restart;
 *  - after the primary changed, follow_primary_command runs for every other node (pgpool
 *    marks them down first; the script, an admin or auto_failback attaches them back);
 *  - failback_command on attach; auto_failback for detached nodes streaming again.
 *  - health_check_rise: a node detached because its checks failed (or a backend error) is
 *    attached again after that many successful checks in a row — unless it claims to be
 *    primary while another node is (it would be a second primary);
 *  - with an HTTP role check on a node (health_check_http_portN), its role comes from that check
 *    only: what the replication check reads from PostgreSQL does not change it.
 *  - with a CommandGate (etcd_endpoints: an HA pair of pgmaitre instances), only the instance
 *    holding the lease runs the commands; one that skipped a failover runs it when it wins the
 *    lease later, unless the record in etcd says it was done (command-gate.ts).
 * Every decision runs in one FIFO queue, so two failovers never interleave. The primary
 * search and follow_primary_command run beside the queue (they can take long) but re-enter it
 * to change state.
 */
import type { Config } from '../config/load';
import { logLine, type Logger } from '../log/logger';
import { type BackendNode, type Cluster, NodeRole, NodeStatus } from '../cluster/cluster';
import type { HealthChecker, ProbeObservation } from '../health/health-checker';
import type { ReplicationChecker, ReplicationSnapshot } from '../health/replication-checker';
import { errorText, probeNode, withProbeClient, type ProbeFn } from '../health/probe';
import { sleep } from '../health/health-checker';
import { CommandRunner, commandVars, expandCommand } from './command';
import type { CommandGate } from './command-gate';
import { Reason, autoFailbackCandidates, isAlive, judgePrimaries, mainNodeId } from './policy';

/** Default limit of failover/failback/follow_primary commands (pgpool has none; we bound them). */
export const DEFAULT_COMMAND_TIMEOUT_MS = 300_000;

/** Options of the failover manager. */
export interface FailoverManagerOptions {
  readonly config: Config;
  readonly cluster: Cluster;
  readonly log: Logger;
  readonly health: HealthChecker;
  readonly replication: ReplicationChecker;
  readonly runner?: CommandRunner;
  readonly probe?: ProbeFn;
  readonly commandTimeoutMs?: number;
  /** Pause between rounds of the primary search (default 1000 ms). */
  readonly searchIntervalMs?: number;
  /** Several instances: only the lease holder runs commands (undefined = always run). */
  readonly gate?: CommandGate;
}

/** What a queued failover action is, for its log line when it fails. */
interface FailoverAction {
  readonly name: string;
  readonly nodeId: number;
  /** Asked for by an admin (PCP, HTTP, SQL), who gets the error too. */
  readonly requested?: boolean;
}

interface DetachOptions {
  readonly manual?: boolean;
  /** For a switchover: the node failover_command should make the new main (%m). */
  readonly newMain?: number;
  /** Do not start the background primary search (the caller handles the primary). */
  readonly noSearch?: boolean;
}

/** Applies failover policy to the cluster; see the file header. */
export class FailoverManager {
  private config: Config;
  private readonly cluster: Cluster;
  private readonly log: Logger;
  private readonly health: HealthChecker;
  private readonly replication: ReplicationChecker;
  private readonly runner: CommandRunner;
  private readonly probe: ProbeFn;
  private readonly commandTimeoutMs: number;
  private readonly searchIntervalMs: number;
  private queue: Promise<unknown> = Promise.resolve();
  private searching: Promise<void> | null = null;
  private readonly background = new Set<Promise<unknown>>();
  /** Backend errors being confirmed, per node (reportBackendError). */
  private readonly confirming = new Map<number, Promise<void>>();
  private abort = new AbortController();
  private stopped = false;
  /** The last node we routed writes to (for %P/%N/%S and to know the primary changed). */
  private lastPrimary = -1;
  private readonly lastFailback = new Map<number, number>();
  private readonly warnedFalse = new Set<number>();
  /** The ALWAYS_PRIMARY node was reported in recovery (logged once until it is not). */
  private alwaysPrimaryWarned = false;
  private readonly listeners: (() => void)[] = [];
  private readonly gate: CommandGate | undefined;
  /** Nodes whose failover_command this instance skipped (it did not hold the lease). */
  private readonly skipped = new Set<number>();
  /** Nodes being rebuilt by online recovery: never attached on the manager's own initiative. */
  private readonly held = new Set<number>();

  constructor(opts: FailoverManagerOptions) {
    this.config = opts.config;
    this.cluster = opts.cluster;
    this.log = opts.log;
    this.health = opts.health;
    this.replication = opts.replication;
    this.runner = opts.runner ?? new CommandRunner(opts.log);
    this.probe = opts.probe ?? probeNode;
    this.commandTimeoutMs = opts.commandTimeoutMs ?? DEFAULT_COMMAND_TIMEOUT_MS;
    this.searchIntervalMs = opts.searchIntervalMs ?? 1000;
    this.gate = opts.gate;
  }

  /** Initial primary detection (every node asked in parallel), then subscribes to the checkers. */
  async start(): Promise<void> {
    const snap = await this.replication.checkNow();
    this.applyInitial(snap);
    const on = <T extends unknown[]>(em: { on(e: string, f: (...a: T) => void): unknown; off(e: string, f: (...a: T) => void): unknown }, e: string, f: (...a: T) => void): void => {
      em.on(e, f);
      this.listeners.push(() => em.off(e, f));
    };
    on(this.health, 'observed', (o: ProbeObservation) => this.onObserved(o));
    on(this.replication, 'observed', (o: ProbeObservation) => this.onObserved(o));
    on(this.health, 'failed', (f: { nodeId: number; error: string }) => {
      void this.enqueue({ name: 'detach after failed health checks', nodeId: f.nodeId }, () => this.detach(f.nodeId, Reason.HealthCheckFailed, f.error));
    });
    on(this.health, 'risen', (r: { nodeId: number; inRecovery: boolean; checks: number }) => {
      void this.enqueue({ name: 'attach after health_check_rise good checks', nodeId: r.nodeId }, () => this.onRisen(r.nodeId, r.inRecovery, r.checks)).catch(() => undefined);
    });
    on(this.health, 'recovered', (r: { nodeId: number }) => {
      this.log.info({ event: 'node_recovered', node_id: r.nodeId }, `node ${r.nodeId} answers health checks again`);
    });
    on(this.replication, 'checked', (s: ReplicationSnapshot) => this.onChecked(s));
    if (this.cluster.primaryId() >= 0) void this.replication.checkNow(); // first delay figures now, not a period later
    else this.startSearch('no primary at start');
    this.gate?.start(() => { void this.enqueue({ name: 'run the failovers skipped while another instance held the lease', nodeId: -1 }, () => this.catchUp()).catch(() => undefined); });
  }

  /**
   * Runs a hook command — unless another instance holds the command lease (then a skipped
   * failover is remembered for catchUp). `state` is what gets recorded for the node.
   */
  private async runHook(name: string, command: string, fields: Record<string, unknown> & { node_id: number }, state?: 'down' | 'up'): Promise<void> {
    const gate = this.gate;
    if (gate !== undefined && !gate.leading) {
      this.log.warn({ event: 'command_skipped', command_name: name, instance: gate.name, ...fields },
        `${name} for node ${fields.node_id} left to the instance holding the failover lease`);
      if (state === 'down') this.skipped.add(fields.node_id);
      else if (state === 'up') this.skipped.delete(fields.node_id);
      return;
    }
    await this.runner.run(name, command, this.commandTimeoutMs, fields);
    if (gate !== undefined && state !== undefined) {
      await gate.record(fields.node_id, state).catch((e: unknown) =>
        this.log.error({ event: 'failover_record_failed', node_id: fields.node_id, err: errorText(e) }, `could not record ${name} of node ${fields.node_id} in etcd: ${errorText(e)}`));
    }
  }

  /** Just won the command lease: run the failovers skipped meanwhile that nobody recorded. */
  private async catchUp(): Promise<void> {
    for (const id of [...this.skipped]) {
      this.skipped.delete(id);
      const n = this.cluster.node(id);
      if (n === undefined || n.status !== NodeStatus.Down || this.config.failover_command === '') continue;
      const done = await this.gate!.recorded(id).catch(() => undefined);
      if (done === 'down') continue;
      this.log.warn({ event: 'failover_catch_up', node_id: id }, `node ${id} was detached while another instance held the failover lease and its failover_command was not recorded: running it now`);
      const vars = commandVars({
        failed: n, newMain: this.cluster.node(mainNodeId(this.cluster.nodes)), oldMainId: mainNodeId(this.cluster.nodes),
        oldPrimary: this.cluster.node(this.cluster.primaryId() >= 0 ? this.cluster.primaryId() : this.lastPrimary),
      });
      await this.runHook('failover_command', expandCommand(this.config.failover_command, vars), { node_id: id }, 'down');
    }
  }

  /** Stops the search, kills running commands, and waits for queued work to end. */
  async stop(): Promise<void> {
    this.stopped = true;
    for (const off of this.listeners.splice(0)) off();
    this.abort.abort();
    this.runner.killAll();
    await Promise.allSettled([this.queue, this.searching, ...this.background]);
  }

  /** Applies a reloaded configuration. */
  reconfigure(config: Config): void {
    this.config = config;
  }

  /**
   * Data-path hook: a backend connection was lost without the server saying why (a read or
   * write error, a close without a FATAL). With failover_on_backend_error the node is detached
   * once a confirmation fails: one probe with the node's health check settings (a fresh
   * connection and pg_is_in_recovery(), or its HTTP check; health_check_timeout bounds it).
   * pgpool-II detaches on the error itself; but the same error comes from one backend killed
   * (pg_terminate_backend() racing a write: EPIPE/ECONNRESET before its FATAL 57P01 is read)
   * or one connection reset, and detaching a primary that still answers turns that into an
   * outage for every client (no primary until an operator attaches it). Errors reported while a
   * confirmation of the node runs join it. Without failover_on_backend_error, a full health
   * check runs now (its retries and the usual policy decide).
   */
  reportBackendError(nodeId: number, reason: string): void {
    if (this.stopped || this.cluster.node(nodeId)?.status === NodeStatus.Down) return;
    if (this.config.failover_on_backend_error) {
      if (this.confirming.has(nodeId)) return;
      this.log.warn({ event: 'backend_error', node_id: nodeId, reason }, `backend error on node ${nodeId} (${reason}); probing the node before detaching it`);
      const run = this.health.probeOnce(nodeId).then((r) => {
        if (this.stopped || this.cluster.node(nodeId)?.status === NodeStatus.Down) return;
        if (r.ok) {
          this.log.warn({ event: 'backend_error_node_alive', node_id: nodeId, reason },
            `node ${nodeId} answers a new connection after a backend error (${reason}): not detached`);
          return;
        }
        void this.enqueue({ name: 'detach after a backend error (failover_on_backend_error)', nodeId },
          () => this.detach(nodeId, Reason.BackendError, `${reason}; a new connection failed too: ${r.error}`)).catch(() => undefined);
      }, (e: unknown) => {
        this.log.error({ event: 'backend_error_probe_failed', node_id: nodeId, err: errorText(e) }, `could not probe node ${nodeId} after a backend error: ${errorText(e)}`);
      }).finally(() => {
        this.confirming.delete(nodeId);
        this.background.delete(run);
      });
      this.confirming.set(nodeId, run);
      this.background.add(run);
    } else {
      this.log.warn({ event: 'backend_error', node_id: nodeId, reason }, `backend error on node ${nodeId} (${reason}); checking its health now`);
      void this.health.checkNow(nodeId);
    }
  }

  /** Online recovery: while held, a node is not attached by health_check_rise or auto_failback. */
  holdAttach(id: number, hold: boolean): void {
    if (hold) this.held.add(id);
    else this.held.delete(id);
  }

  /** Admin: attach a detached node (pcp_attach_node, or the end of an online recovery); runs failback_command. */
  attachNode(id: number, reason: Reason = Reason.AdminAttach): Promise<string> {
    return this.enqueue({ name: `attach (${reason === Reason.AdminAttach ? 'admin request' : reason})`, nodeId: id, requested: true }, () => this.attach(id, reason));
  }

  /** Admin: detach a node (pcp_detach_node). With switchover, resolves after the search for the new primary when it was the primary. */
  async detachNode(id: number, opts: { gracefully?: boolean; switchover?: boolean } = {}): Promise<string> {
    const wasPrimary = this.cluster.primaryId() === id;
    const msg = await this.enqueue({ name: 'detach (admin request)', nodeId: id, requested: true },
      () => this.detach(id, Reason.AdminDetach, 'detached by admin request', { manual: true }));
    if (!opts.switchover || !wasPrimary) return msg;
    // The search re-enters the queue to adopt the primary, so it is awaited outside of it.
    await this.searching;
    const p = this.cluster.primaryId();
    return p >= 0 ? `${msg}; node ${p} is the new primary` : `${msg}; no new primary found`;
  }

  /**
   * Admin: make node `id` the primary (pcp_promote_node). With switchover the current primary is
   * detached first and failover_command runs with %m = id (pgpool's switchover); in every case,
   * if the node is still in recovery it is promoted with pg_promote(), then roles are set and
   * follow_primary_command runs for the others.
   */
  promoteNode(id: number, opts: { switchover?: boolean } = {}): Promise<string> {
    return this.enqueue({ name: `promote${opts.switchover ? ' with switchover' : ''} (admin request)`, nodeId: id, requested: true }, async () => {
      const n = this.requireNode(id);
      if (!isAlive(n)) throw new Error(`node ${id} is ${n.status}; attach it before promoting it`);
      const oldPrimary = this.cluster.primaryId();
      if (oldPrimary === id) return `node ${id} is already the primary`;
      if (opts.switchover && oldPrimary >= 0) {
        await this.detach(oldPrimary, Reason.Switchover, `switchover to node ${id}`, { manual: true, newMain: id, noSearch: true });
      }
      const still = await this.probe(n, this.replication.credentials(), this.replication.limits(), this.abort.signal);
      if (!still.ok) throw new Error(`node ${id} does not answer: ${still.error}`);
      if (still.inRecovery) {
        const promoted = await withProbeClient(n, this.replication.credentials(), { ...this.replication.limits(), totalTimeoutMs: 70_000 },
          async (c) => (await c.query<{ ok: boolean }>('SELECT pg_promote(true, 60) AS ok')).rows[0]?.ok === true, this.abort.signal)
          .catch((e: unknown) => { throw new Error(`pg_promote() on node ${id} failed: ${errorText(e)}`); });
        if (!promoted) throw new Error(`pg_promote() on node ${id} did not finish within 60 s`);
      }
      const cur = this.cluster.primaryId();
      if (cur >= 0 && cur !== id) this.setDown(cur, Reason.AdminPromote, `node ${id} promoted`);
      await this.adopt(id, Reason.AdminPromote, `promoted by admin request${opts.switchover ? ' (switchover)' : ''}`);
      return `node ${id} promoted to primary`;
    });
  }

  // --- event handlers -------------------------------------------------------------------------

  private applyInitial(snap: ReplicationSnapshot | null): void {
    const reports = snap?.reports ?? new Map();
    for (const n of this.cluster.nodes) {
      const r = reports.get(n.id);
      if (r?.ok) {
        this.cluster.setStatus(n.id, NodeStatus.Up, `${Reason.ReachableAtStart}: answered pg_is_in_recovery()`);
        if (r.inRecovery) this.cluster.setRole(n.id, NodeRole.Standby, Reason.Standby);
      } else if (!n.flags.includes('DISALLOW_TO_FAILOVER') && !n.flags.includes('ALWAYS_PRIMARY')) {
        this.cluster.setStatus(n.id, NodeStatus.Down, `${Reason.UnreachableAtStart}: ${r?.ok === false ? r.error : 'not checked'}`);
      }
    }
    const always = this.cluster.nodes.find((n) => n.flags.includes('ALWAYS_PRIMARY'));
    let primary = -1;
    if (always !== undefined) {
      primary = always.id;
      const r = reports.get(always.id);
      if (r?.ok === true && r.inRecovery) this.warnAlwaysPrimaryInRecovery(always.id);
    } else {
      const claims = [...reports].filter(([, r]) => r.ok).map(([id, r]) => ({ id, inRecovery: r.ok && r.inRecovery, upstream: r.ok ? r.upstream : null }));
      const verdict = judgePrimaries(claims, this.cluster.nodes);
      const claimants = claims.filter((c) => !c.inRecovery).map((c) => c.id);
      primary = verdict.truePrimary >= 0 ? verdict.truePrimary : (claimants[0] ?? -1);
      if (claimants.length > 1) {
        this.log.warn({ event: 'multiple_primaries', nodes: claimants, chosen: primary }, `several nodes claim to be primary (${claimants.join(', ')}); using node ${primary}`);
      }
    }
    if (primary >= 0) {
      this.cluster.setRole(primary, NodeRole.Primary, always ? Reason.AlwaysPrimary : 'pg_is_in_recovery() = false');
      this.lastPrimary = primary;
      logLine(this.log, { event: 'primary_found', node_id: primary }, `primary node is ${primary}`);
    } else {
      this.log.error({ event: 'primary_found', node_id: -1 }, 'no primary node found; writes fail until one is');
    }
  }

  /**
   * ALWAYS_PRIMARY names a node that is a standby (typically after a failover done outside
   * pgmaitre): writes sent there fail with 25006. Said once, at ERROR, with the fix.
   */
  private warnAlwaysPrimaryInRecovery(id: number): void {
    if (this.alwaysPrimaryWarned) return;
    this.alwaysPrimaryWarned = true;
    this.log.error({ event: 'always_primary_in_recovery', node_id: id },
      `node ${id} is flagged ALWAYS_PRIMARY but is in recovery (a standby): writes sent to it fail with "cannot execute ... in a read-only transaction"; remove ALWAYS_PRIMARY from backend_flag${id} (pgmaitre then finds the primary itself) and restart`);
  }

  /** health_check_rise reached for a down node: attach it back when that is safe. */
  private async onRisen(id: number, inRecovery: boolean, checks: number): Promise<void> {
    const n = this.cluster.node(id);
    if (n === undefined || n.status !== NodeStatus.Down || this.held.has(id)) return;
    const why = n.statusReason;
    if (!why.startsWith(Reason.HealthCheckFailed) && !why.startsWith(Reason.BackendError) && !why.startsWith(Reason.UnreachableAtStart)) return;
    const primary = this.cluster.primaryId();
    if (!inRecovery && primary >= 0 && primary !== id) {
      this.log.warn({ event: 'rise_refused', node_id: id, primary_id: primary },
        `node ${id} answers again but claims to be primary while node ${primary} is: not attached (it would be a second primary)`);
      return;
    }
    this.log.info({ event: 'node_risen', node_id: id, checks }, `node ${id} passed ${checks} health checks in a row: attaching it`);
    await this.attach(id, Reason.HealthCheckRise);
  }

  private onObserved(o: ProbeObservation): void {
    if (this.stopped) return;
    const n = this.cluster.node(o.nodeId);
    if (n === undefined || !isAlive(n)) return;
    // An HTTP role check (Patroni) is the only source of this node's role.
    if (o.source !== 'health_check' && this.health.usesHttpCheck(n.id)) return;
    const always = this.cluster.nodes.find((x) => x.flags.includes('ALWAYS_PRIMARY'));
    if (always !== undefined) {
      if (n.id === always.id) this.cluster.setRole(n.id, NodeRole.Primary, Reason.AlwaysPrimary);
      else this.cluster.setRole(n.id, NodeRole.Standby, Reason.AlwaysPrimary);
      if (n.id === always.id && o.inRecovery) this.warnAlwaysPrimaryInRecovery(n.id);
      else if (n.id === always.id) this.alwaysPrimaryWarned = false;
      return;
    }
    if (o.inRecovery) {
      if (n.role === NodeRole.Primary) {
        this.cluster.setRole(n.id, NodeRole.Standby, `${Reason.Demoted}: pg_is_in_recovery() = true (${o.source})`);
        this.log.error({ event: 'primary_in_recovery', node_id: n.id }, `primary node ${n.id} is in recovery now; searching for the primary`);
        this.startSearch(`node ${n.id} went into recovery`);
      } else {
        this.cluster.setRole(n.id, NodeRole.Standby, Reason.Standby);
      }
      return;
    }
    const cur = this.cluster.primaryId();
    if (cur === n.id) return;
    if (cur === -1) {
      void this.enqueue({ name: 'adopt as the primary', nodeId: n.id }, () => this.adoptIfStillNone(n.id, `${Reason.Promoted}: pg_is_in_recovery() = false (${o.source})`));
    } else if (!this.warnedFalse.has(n.id)) {
      this.warnedFalse.add(n.id);
      this.log.warn({ event: 'false_primary_suspect', node_id: n.id, primary_id: cur },
        `node ${n.id} claims to be primary while node ${cur} is${this.config.detach_false_primary ? '' : ' (detach_false_primary is off)'}`);
    }
  }

  private onChecked(s: ReplicationSnapshot): void {
    if (this.stopped) return;
    // detach_false_primary
    const claims = [...s.reports].filter(([id, r]) => r.ok && isAlive(this.cluster.node(id) ?? { status: NodeStatus.Down }))
      .map(([id, r]) => ({ id, inRecovery: r.ok && r.inRecovery, upstream: r.ok ? r.upstream : null }));
    if (claims.filter((c) => !c.inRecovery).length > 1 && this.config.detach_false_primary) {
      const v = judgePrimaries(claims, this.cluster.nodes);
      if (v.falsePrimaries.length > 0) {
        void this.enqueue({ name: `detach_false_primary (false primaries: ${v.falsePrimaries.join(', ')})`, nodeId: v.truePrimary }, async () => {
          for (const id of v.falsePrimaries) {
            await this.detach(id, Reason.FalsePrimary, `node ${v.truePrimary} is the primary every standby streams from`, { noSearch: true });
          }
          if (this.cluster.primaryId() === -1 && this.cluster.node(v.truePrimary)?.status !== NodeStatus.Down) {
            await this.adopt(v.truePrimary, Reason.FalsePrimary, 'true primary after detach_false_primary');
          }
        });
      }
    }
    // auto_failback
    if (this.config.auto_failback && s.primaryId >= 0) {
      const pr = s.reports.get(s.primaryId);
      if (pr?.ok) {
        const ids = autoFailbackCandidates(this.cluster.nodes, pr.streaming, this.lastFailback, Date.now(), this.config.auto_failback_interval * 1000);
        for (const id of ids.filter((x) => !this.held.has(x))) {
          void this.enqueue({ name: 'auto_failback attach', nodeId: id }, () => this.attach(id, Reason.AutoFailback));
        }
      }
    }
  }

  // --- actions (run inside the queue) --------------------------------------------------------

  /**
   * Runs `fn` after every action queued before it. A failure is logged with the action and its
   * node: at error level when pgmaitre decided the action itself, at warning level when an
   * admin asked for it (the admin also gets the error as the answer).
   */
  private enqueue<T>(action: FailoverAction, fn: () => Promise<T>): Promise<T> {
    if (this.stopped) return Promise.reject(new Error('failover manager stopped'));
    const p = this.queue.then(fn);
    this.queue = p.catch((e: unknown) => {
      const level = action.requested === true ? 'warn' : 'error';
      this.log[level]({ event: 'failover_action_error', action: action.name, node_id: action.nodeId, err: errorText(e) },
        `failover action "${action.name}" for node ${action.nodeId} failed: ${errorText(e)}`);
    });
    return p;
  }

  private requireNode(id: number): BackendNode {
    const n = this.cluster.node(id);
    if (n === undefined) throw new Error(`node ${id} does not exist`);
    return n;
  }

  private setDown(id: number, reason: Reason, detail: string): void {
    this.cluster.setStatus(id, NodeStatus.Down, `${reason}: ${detail}`);
    this.log.warn({ event: 'node_down', node_id: id, reason, detail }, `node ${id} detached (${reason}: ${detail})`);
  }

  /** Degenerates a node: status down, failover_command, and a primary search if it was the primary. */
  private async detach(id: number, reason: Reason, detail: string, opts: DetachOptions = {}): Promise<string> {
    const n = this.requireNode(id);
    if (n.status === NodeStatus.Down) return `node ${id} is already down`;
    if (!opts.manual && n.flags.includes('DISALLOW_TO_FAILOVER')) {
      this.log.warn({ event: 'failover_disallowed', node_id: id, reason, detail }, `node ${id} is not detached (DISALLOW_TO_FAILOVER): ${reason}: ${detail}`);
      return `node ${id} is flagged DISALLOW_TO_FAILOVER`;
    }
    const nodes = this.cluster.nodes;
    const oldMain = mainNodeId(nodes);
    const oldPrimaryId = this.cluster.primaryId() >= 0 ? this.cluster.primaryId() : this.lastPrimary;
    const wasPrimary = this.cluster.primaryId() === id;
    this.setDown(id, reason, detail);
    if (wasPrimary) this.lastPrimary = id;
    const newMainId = opts.newMain ?? mainNodeId(nodes);
    if (this.config.failover_command !== '') {
      const vars = commandVars({
        failed: n, newMain: this.cluster.node(newMainId), oldMainId: oldMain, oldPrimary: this.cluster.node(oldPrimaryId),
      });
      await this.runHook('failover_command', expandCommand(this.config.failover_command, vars), { node_id: id }, 'down');
    }
    if (wasPrimary && !opts.noSearch) this.startSearch(`primary node ${id} detached (${reason})`);
    return `node ${id} detached`;
  }

  /** Attaches a node back (failback), runs failback_command, and sets its role from a probe. */
  private async attach(id: number, reason: Reason): Promise<string> {
    const n = this.requireNode(id);
    if (isAlive(n)) return `node ${id} is already ${n.status}`;
    const oldMain = mainNodeId(this.cluster.nodes);
    const r = await this.roleProbe(n);
    this.cluster.setStatus(id, NodeStatus.Up, `${reason}: ${r.ok ? (r.inRecovery ? 'in recovery' : 'not in recovery') : `not answering (${r.error})`}`);
    this.lastFailback.set(id, Date.now());
    this.warnedFalse.delete(id);
    this.log.info({ event: 'node_up', node_id: id, reason }, `node ${id} attached (${reason})`);
    if (this.config.failback_command !== '') {
      const vars = commandVars({
        failed: n, newMain: this.cluster.node(mainNodeId(this.cluster.nodes)), oldMainId: oldMain,
        oldPrimary: this.cluster.node(this.cluster.primaryId() >= 0 ? this.cluster.primaryId() : this.lastPrimary),
      });
      await this.runHook('failback_command', expandCommand(this.config.failback_command, vars), { node_id: id }, 'up');
    }
    if (r.ok) {
      this.cluster.setObserved(id, 'up', r.inRecovery ? NodeRole.Standby : NodeRole.Primary);
      if (r.inRecovery) {
        if (n.role === NodeRole.Primary) this.cluster.setRole(id, NodeRole.Standby, Reason.Standby);
        else this.cluster.setRole(id, NodeRole.Standby, Reason.Standby);
      } else if (this.cluster.primaryId() === -1) {
        await this.adopt(id, reason, 'attached node is not in recovery');
      }
    }
    return `node ${id} attached`;
  }

  private async adoptIfStillNone(id: number, detail: string): Promise<void> {
    const n = this.cluster.node(id);
    if (this.cluster.primaryId() !== -1 || n === undefined || !isAlive(n)) return;
    await this.adopt(id, Reason.Promoted, detail);
  }

  /** Makes `id` the primary: roles, then follow_primary_command if the primary changed. */
  private async adopt(id: number, reason: Reason, detail: string): Promise<void> {
    const prev = this.lastPrimary;
    for (const n of this.cluster.nodes) {
      if (n.id !== id && n.role === NodeRole.Primary) this.cluster.setRole(n.id, NodeRole.Standby, `${Reason.Replaced}: node ${id}`);
    }
    this.cluster.setRole(id, NodeRole.Primary, `${reason}: ${detail}`);
    this.lastPrimary = id;
    // pgpool's LOG level: shown under the default log_min_messages, as pgpool logs a failover.
    logLine(this.log, { event: 'primary_found', node_id: id, previous: prev, reason }, `primary node is ${id} (${detail})`);
    if (prev >= 0 && prev !== id && this.config.follow_primary_command !== '') this.followPrimary(id, prev);
  }

  /**
   * pgpool's follow-primary step: every node but the new primary is marked down, then the
   * command runs once per down node (beside the queue, one after the other).
   */
  private followPrimary(newPrimary: number, oldPrimary: number): void {
    const oldMain = mainNodeId(this.cluster.nodes);
    for (const n of this.cluster.nodes) {
      if (n.id !== newPrimary && isAlive(n)) this.setDown(n.id, Reason.FollowPrimary, `following new primary node ${newPrimary}`);
    }
    const targets = this.cluster.nodes.filter((n) => n.id !== newPrimary && n.status === NodeStatus.Down).map((n) => n.id);
    const template = this.config.follow_primary_command;
    const run = (async () => {
      for (const id of targets) {
        if (this.stopped) return;
        const vars = commandVars({
          failed: this.cluster.node(id), newMain: this.cluster.node(newPrimary), oldMainId: oldMain, oldPrimary: this.cluster.node(oldPrimary),
        });
        await this.runHook('follow_primary_command', expandCommand(template, vars), { node_id: id, new_primary: newPrimary });
      }
    })();
    this.background.add(run);
    void run.finally(() => this.background.delete(run));
  }

  /** Asks a node for its role: its HTTP role check when it has one, else PostgreSQL. */
  private roleProbe(n: BackendNode): ReturnType<ProbeFn> {
    if (this.health.usesHttpCheck(n.id)) return this.health.probeOnce(n.id);
    return this.probe(n, this.replication.credentials(), this.replication.limits(), this.abort.signal);
  }

  // --- primary search -----------------------------------------------------------------------

  /** Starts the bounded primary search unless one is running. */
  private startSearch(why: string): void {
    if (this.searching || this.stopped) return;
    const limitS = this.config.search_primary_node_timeout;
    this.log.info({ event: 'primary_search', reason: why, timeout_s: limitS }, `searching for the primary node (${why})`);
    this.searching = this.search(limitS).finally(() => { this.searching = null; });
  }

  private async search(limitS: number): Promise<void> {
    const deadline = limitS > 0 ? Date.now() + limitS * 1000 : Infinity;
    while (!this.stopped) {
      if (this.cluster.primaryId() >= 0) return;
      const live = this.cluster.nodes.filter(isAlive);
      const results = await Promise.all(live.map((n) => this.roleProbe(n)));
      if (this.stopped) return;
      const claimants = live.filter((_, i) => { const r = results[i]!; return r.ok && !r.inRecovery; }).map((n) => n.id);
      const always = live.find((n) => n.flags.includes('ALWAYS_PRIMARY'));
      const pick = always?.id ?? claimants[0];
      if (pick !== undefined) {
        // A failure is logged by enqueue(); the search ends either way (the regular checks keep watching).
        await this.enqueue({ name: 'adopt as the primary (primary search)', nodeId: pick },
          () => this.adoptIfStillNone(pick, `${Reason.Promoted}: pg_is_in_recovery() = false (search)`)).catch(() => undefined);
        return;
      }
      if (Date.now() >= deadline) {
        this.log.error({ event: 'primary_search_timeout', timeout_s: limitS },
          `no primary found within search_primary_node_timeout (${limitS} s); writes fail until a node is promoted`);
        return;
      }
      await sleep(this.searchIntervalMs, this.abort.signal);
    }
  }
}
