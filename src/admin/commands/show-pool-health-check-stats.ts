/**
 * SHOW POOL_HEALTH_CHECK_STATS: one row per node, pgpool-II's 20 columns (also the 20 fields
 * pcp_health_check_stats receives). Durations are milliseconds; averages are printf("%f") over
 * the checks that ran (total - skipped), 0.000000 when health checks are off or none ran.
 */
import type { AdminCommand, AdminContext, ResultSet } from '../types';
import { exactly } from '../match';
import { pgTimestamp, printfF, roleText } from '../format';

/** Column names, in pgpool's order. */
export const HEALTH_CHECK_STATS_COLUMNS = [
  'node_id', 'hostname', 'port', 'status', 'role', 'last_status_change', 'total_count', 'success_count', 'fail_count',
  'skip_count', 'retry_count', 'average_retry_count', 'max_retry_count', 'max_duration', 'min_duration',
  'average_duration', 'last_health_check', 'last_successful_health_check', 'last_skip_health_check', 'last_failed_health_check',
] as const;

/** The rows, shared with PCP and HTTP. */
export function healthCheckStatsRows(ctx: AdminContext): string[][] {
  const config = ctx.config();
  return ctx.nodes().map((n) => {
    const h = n.health;
    const period = config.backends.find((b) => b.id === n.id)?.healthCheck.period ?? config.health_check_period;
    const ran = h.total_count - h.skip_count;
    const avg = (x: number): string => printfF(period > 0 && ran > 0 ? x / ran : 0);
    return [
      String(n.id), n.host, String(n.port), n.status, roleText(ctx, n), pgTimestamp(n.lastStatusChange),
      String(h.total_count), String(h.success_count), String(h.fail_count), String(h.skip_count), String(h.retry_count),
      avg(h.retry_count), String(h.max_retry_count), String(Math.round(h.max_duration)), String(Math.round(h.min_duration)),
      avg(h.total_duration),
      pgTimestamp(h.last_health_check), pgTimestamp(h.last_successful_health_check),
      pgTimestamp(h.last_skip_health_check), pgTimestamp(h.last_failed_health_check),
    ];
  });
}

export const showPoolHealthCheckStats: AdminCommand = {
  name: 'SHOW POOL_HEALTH_CHECK_STATS',
  match: exactly('SHOW', 'POOL_HEALTH_CHECK_STATS'),
  execute(ctx: AdminContext): ResultSet {
    return { columns: HEALTH_CHECK_STATS_COLUMNS, rows: healthCheckStatsRows(ctx) };
  },
};
