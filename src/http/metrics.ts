/**
 * /metrics: Prometheus text from prom-client, on a registry of our own (not the global one).
 * Everything except the latency histogram is computed at scrape time from AdminContext, so
 * nothing on the query path pays for metrics it does not feed.
 */
import { Counter, Gauge, Registry, type Metric } from 'prom-client';
import type { AdminContext } from '../admin/types';
import { roleText } from '../admin/format';
import { leaseWait, queryLatency } from '../admin/latency';

export { observeQueryLatency } from '../admin/latency';

const KINDS = ['select', 'insert', 'update', 'delete', 'ddl', 'other'] as const;
const SEVERITIES = ['error', 'fatal', 'panic'] as const;
const STATUSES = ['up', 'waiting', 'down', 'quarantine', 'unused'] as const;

/** Builds the registry for one context. */
export function createMetricsRegistry(ctx: AdminContext): Registry {
  const registry = new Registry();
  const reg = [registry];
  const nodeLabels = (id: number): { node: string } => ({ node: String(id) });

  new Gauge({
    name: 'pgmaitre_node_info', help: 'Backend nodes (value 1) with host, port and current role.', registers: reg,
    labelNames: ['node', 'host', 'port', 'role'] as const,
    collect() {
      this.reset();
      for (const n of ctx.nodes()) this.set({ node: String(n.id), host: n.host, port: String(n.port), role: roleText(ctx, n) }, 1);
    },
  });
  new Gauge({
    name: 'pgmaitre_node_up', help: '1 when the node is up (or waiting for its first connection), else 0.', registers: reg,
    labelNames: ['node'] as const,
    collect() {
      for (const n of ctx.nodes()) this.set(nodeLabels(n.id), n.status === 'up' || n.status === 'waiting' ? 1 : 0);
    },
  });
  new Gauge({
    name: 'pgmaitre_node_status', help: "1 for the node's current status (pgpool's names), 0 for the others.", registers: reg,
    labelNames: ['node', 'status'] as const,
    collect() {
      for (const n of ctx.nodes()) for (const s of STATUSES) this.set({ node: String(n.id), status: s }, n.status === s ? 1 : 0);
    },
  });
  new Gauge({
    name: 'pgmaitre_node_primary', help: '1 for the node taking writes.', registers: reg, labelNames: ['node'] as const,
    collect() {
      const p = ctx.primaryId();
      for (const n of ctx.nodes()) this.set(nodeLabels(n.id), n.id === p ? 1 : 0);
    },
  });
  new Counter({
    name: 'pgmaitre_node_queries_total', help: 'Statements sent to each node, by kind.', registers: reg,
    labelNames: ['node', 'kind'] as const,
    collect() {
      this.reset();
      for (const n of ctx.nodes()) {
        const c = n.counters as unknown as Record<string, number>;
        for (const k of KINDS) this.inc({ node: String(n.id), kind: k }, c[`${k}_cnt`] ?? 0);
      }
    },
  });
  new Counter({
    name: 'pgmaitre_node_errors_total', help: 'Errors reported by each node, by severity.', registers: reg,
    labelNames: ['node', 'severity'] as const,
    collect() {
      this.reset();
      for (const n of ctx.nodes()) {
        const c = n.counters as unknown as Record<string, number>;
        for (const s of SEVERITIES) this.inc({ node: String(n.id), severity: s }, c[`${s}_cnt`] ?? 0);
      }
    },
  });
  new Gauge({
    name: 'pgmaitre_node_replication_lag_bytes', help: 'Replay lag of each standby behind the primary, in bytes.', registers: reg,
    labelNames: ['node'] as const,
    collect() {
      for (const n of ctx.nodes()) this.set(nodeLabels(n.id), n.id === ctx.primaryId() ? 0 : n.replication.delayBytes);
    },
  });
  new Gauge({
    name: 'pgmaitre_node_replication_lag_seconds', help: 'Replay lag in seconds (when measured by time).', registers: reg,
    labelNames: ['node'] as const,
    collect() {
      this.reset();
      for (const n of ctx.nodes()) if (n.replication.delaySeconds !== null) this.set(nodeLabels(n.id), n.replication.delaySeconds);
    },
  });
  new Counter({
    name: 'pgmaitre_health_checks_total', help: 'Health checks per node, by result.', registers: reg,
    labelNames: ['node', 'result'] as const,
    collect() {
      this.reset();
      for (const n of ctx.nodes()) {
        this.inc({ node: String(n.id), result: 'success' }, n.health.success_count);
        this.inc({ node: String(n.id), result: 'fail' }, n.health.fail_count);
        this.inc({ node: String(n.id), result: 'skip' }, n.health.skip_count);
      }
    },
  });
  new Gauge({
    name: 'pgmaitre_pool_connections', help: 'Backend connections in each node pool, by state.', registers: reg,
    labelNames: ['node', 'state'] as const,
    collect() {
      this.reset();
      for (const n of ctx.nodes()) {
        const c = ctx.poolCounts(n.id);
        if (c === undefined) continue;
        for (const state of ['idle', 'active', 'resetting', 'connecting'] as const) this.set({ node: String(n.id), state }, c[state]);
      }
    },
  });
  new Gauge({
    name: 'pgmaitre_client_sessions', help: 'Client sessions being served (slots in use).', registers: reg,
    collect() { this.set(ctx.slots().inUse); },
  });
  new Gauge({
    name: 'pgmaitre_client_slots', help: 'Client slots (num_init_children).', registers: reg,
    collect() { this.set(ctx.slots().capacity); },
  });
  new Gauge({
    name: 'pgmaitre_client_waiting', help: 'Clients queued for a free slot.', registers: reg,
    collect() { this.set(ctx.slots().waiting); },
  });
  if (ctx.classifierStats !== undefined) {
    const stats = ctx.classifierStats;
    new Counter({
      name: 'pgmaitre_classifier_cache_lookups_total', help: 'Statement classifier cache lookups, by result.', registers: reg,
      labelNames: ['result'] as const,
      collect() {
        this.reset();
        const s = stats();
        this.inc({ result: 'hit' }, s.hits);
        this.inc({ result: 'miss' }, s.misses);
      },
    });
    new Gauge({
      name: 'pgmaitre_classifier_cache_hit_ratio', help: 'Classifier cache hits / lookups since start.', registers: reg,
      collect() {
        const s = stats();
        this.set(s.hits + s.misses > 0 ? s.hits / (s.hits + s.misses) : 0);
      },
    });
  }
  new Gauge({
    name: 'pgmaitre_delay_threshold_bytes', help: 'delay_threshold: replication lag in bytes beyond which reads avoid a standby (0 = off).', registers: reg,
    collect() { this.set(ctx.config().delay_threshold); },
  });
  new Gauge({
    name: 'pgmaitre_delay_threshold_seconds', help: 'delay_threshold_by_time in seconds: replication lag beyond which reads avoid a standby (0 = off).', registers: reg,
    collect() { this.set(ctx.config().delay_threshold_by_time / 1000); },
  });
  if (ctx.eventCounts !== undefined) {
    const counts = ctx.eventCounts;
    new Counter({
      name: 'pgmaitre_cluster_events_total', help: 'Cluster events since start, by kind: node_down, node_up, failback, failover (a standby became the primary), role_change.', registers: reg,
      labelNames: ['kind'] as const,
      collect() {
        this.reset();
        for (const [kind, n] of counts()) this.inc({ kind }, n);
      },
    });
  }
  new Gauge({
    name: 'pgmaitre_start_time_seconds', help: 'When pgmaitre started (Unix time).', registers: reg,
    collect() { this.set(ctx.startedAt.getTime() / 1000); },
  });
  const merged = ctx.histograms;
  for (const h of [queryLatency, leaseWait]) {
    if (merged === undefined) {
      registry.registerMetric(h as unknown as Metric);
      continue;
    }
    // worker_processes > 1: the workers' histograms summed (this process serves no client).
    const name = (h as unknown as { name: string }).name;
    registry.registerMetric({
      name, help: (h as unknown as { help: string }).help, type: 'histogram', aggregator: 'sum',
      get: async () => merged().find((m) => m.name === name) ?? await h.get(),
      reset: () => {},
    } as unknown as Metric);
  }
  const qc = ctx.queryCache?.() ?? null;
  if (qc !== null) {
    new Counter({
      name: 'pgmaitre_query_cache_lookups_total', help: 'Query cache lookups of cacheable SELECTs: hit (answered by pgmaitre) or miss (sent to the primary).', registers: reg,
      labelNames: ['result'] as const,
      collect() {
        this.reset();
        const m = qc.metrics();
        this.inc({ result: 'hit' }, m.hits);
        this.inc({ result: 'miss' }, m.misses);
      },
    });
    new Counter({
      name: 'pgmaitre_query_cache_selects_total', help: "SELECTs seen with the query cache on (SHOW POOL_CACHE's num_selects).", registers: reg,
      collect() { this.reset(); this.inc(qc.metrics().selects); },
    });
    new Counter({
      name: 'pgmaitre_query_cache_stores_total', help: 'Answers stored in the query cache (result=stored) or collected but not stored (too large, not a plain result, transaction rolled back).', registers: reg,
      labelNames: ['result'] as const,
      collect() {
        this.reset();
        const m = qc.metrics();
        this.inc({ result: 'stored' }, m.stores);
        this.inc({ result: 'not_stored' }, m.notStored);
      },
    });
    new Counter({
      name: 'pgmaitre_query_cache_invalidations_total', help: 'Query cache invalidations by cause: write, ddl, all (fail closed: a volatile function, a trigger, an unknown table...), admin, memcached_recovered, change_stream (a write seen in the primary\'s change stream), change_stream_start (a change stream (re)started).', registers: reg,
      labelNames: ['cause'] as const,
      collect() {
        this.reset();
        for (const [cause, n] of qc.metrics().invalidations) this.inc({ cause }, n);
      },
    });
    new Counter({
      name: 'pgmaitre_query_cache_evictions_total', help: 'Answers evicted from the shmem query cache (memqcache_total_size or memqcache_max_num_cache reached).', registers: reg,
      collect() { this.reset(); this.inc(qc.metrics().evictions); },
    });
    new Counter({
      name: 'pgmaitre_query_cache_memcached_errors_total', help: 'memcached operations that failed (the cache is bypassed meanwhile).', registers: reg,
      collect() { this.reset(); this.inc(qc.metrics().memcachedErrors); },
    });
    new Gauge({
      name: 'pgmaitre_query_cache_memcached_up', help: '1 while memcached is reachable (memqcache_method = memcached; always 1 for shmem).', registers: reg,
      collect() { this.set(qc.metrics().memcachedUp ? 1 : 0); },
    });
    new Gauge({
      name: 'pgmaitre_query_cache_bytes', help: 'Bytes used by the shmem query cache (bounded by memqcache_total_size).', registers: reg,
      collect() { this.set(qc.metrics().bytes); },
    });
    if (qc.metrics().changeStreams !== undefined) {
      new Gauge({
        name: 'pgmaitre_query_cache_change_stream_up', help: "memqcache_logical_invalidation: 1 while the database's change stream vouches for hits (0: starting, broken or behind; no hits there).", registers: reg,
        labelNames: ['database'] as const,
        collect() {
          this.reset();
          for (const s of qc.metrics().changeStreams ?? []) this.set({ database: s.database }, s.up ? 1 : 0);
        },
      });
    }
    new Gauge({
      name: 'pgmaitre_query_cache_entries', help: 'Answers in the shmem query cache.', registers: reg,
      collect() { this.set(qc.metrics().entries); },
    });
  }
  if (ctx.pooling !== undefined) {
    const pooling = ctx.pooling;
    new Counter({
      name: 'pgmaitre_pool_leases_total', help: 'Backend connections leased for a transaction (transaction/statement pooling), per node.', registers: reg,
      labelNames: ['node'] as const,
      collect() {
        this.reset();
        for (const n of pooling().nodes) this.inc(nodeLabels(n.node), n.leases);
      },
    });
    new Counter({
      name: 'pgmaitre_pool_waited_leases_total', help: 'Leases that had to wait for a connection to be given back, per node.', registers: reg,
      labelNames: ['node'] as const,
      collect() {
        this.reset();
        for (const n of pooling().nodes) this.inc(nodeLabels(n.node), n.waitedLeases);
      },
    });
    new Gauge({
      name: 'pgmaitre_pool_waiting_clients', help: 'Requests waiting for a backend connection (transaction/statement pooling), per node.', registers: reg,
      labelNames: ['node'] as const,
      collect() {
        this.reset();
        for (const n of pooling().nodes) this.set(nodeLabels(n.node), n.waiting);
      },
    });
    new Gauge({
      name: 'pgmaitre_pooled_client_sessions', help: 'Client sessions in transaction or statement pooling (max_client_conn bounds them).', registers: reg,
      collect() { this.set(pooling().clients); },
    });
    new Gauge({
      name: 'pgmaitre_pinned_clients', help: 'Pooled sessions keeping their backend connection now (LISTEN, advisory lock, WITH HOLD cursor, temporary table).', registers: reg,
      collect() { this.set(pooling().pinnedNow); },
    });
    new Counter({
      name: 'pgmaitre_pinned_clients_total', help: 'Pooled sessions that had to keep their backend connection, since start.', registers: reg,
      collect() { this.reset(); this.inc(pooling().pinnedTotal); },
    });
    new Counter({
      name: 'pgmaitre_prepared_cache_total', help: 'Binds of a prepared statement on a leased connection: hit (it had the statement) or miss (parsed there first).', registers: reg,
      labelNames: ['result'] as const,
      collect() {
        this.reset();
        const p = pooling();
        this.inc({ result: 'hit' }, p.cacheHits);
        this.inc({ result: 'miss' }, p.cacheMisses);
      },
    });
  }
  return registry;
}
