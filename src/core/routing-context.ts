/**
 * Everything routing needs, built once from a config snapshot (and again on reload): the
 * classifier with pgpool's function/pattern lists, the router's settings, the redirect
 * preference lists, the function-volatility cache and the lag view of the nodes.
 */
import type { Config } from '../config/load';
import { parsePoolModeList, poolModeFor, type PoolMode } from '../config/pool-mode';
import { createClassifier } from '../classify/classify';
import type { Classifier } from '../classify/types';
import { parseDmlRelations, type RouterConfig } from '../router/router';
import { newLbState, parseRedirectPreferences, type LbPreferences } from '../router/lb-select';

/** pg_proc volatility lookups (backend/function-volatility.ts implements it). */
export interface VolatilityLookup {
  get(fn: string): 'v' | 's' | 'i' | undefined;
  lookup(fns: readonly string[]): Promise<void>;
  /**
   * Transaction pooling: session state a call of `fn` may change that pgmaitre cannot follow
   * ('' none; looked up with the volatility), or undefined when not looked up yet. Absent: none.
   */
  sessionEffect?(fn: string): string | undefined;
  /** Forgets what was looked up (reload, primary change). */
  clear(): void;
}

/** Lag of a node as the replication check last saw it. */
export interface NodeLag {
  readonly lagging: boolean;
  readonly delay: number;
}

/** What the session's routing reads. */
export interface RoutingContext {
  /** pool_mode for a (user, database): pool_mode_user_list, pool_mode_database_list, pool_mode. */
  readonly poolMode: (user: string, database: string) => PoolMode;
  readonly classifier: Classifier;
  readonly router: RouterConfig;
  readonly prefs: LbPreferences;
  readonly statementLevel: boolean;
  readonly noticePerNode: boolean;
  readonly volatility: VolatilityLookup;
  /** Lag of a node; replaced by the replication checker when it runs. */
  lag: (nodeId: number) => NodeLag;
}

const NO_LAG: NodeLag = { lagging: false, delay: 0 };

/** Builds the routing context from a config snapshot. Throws on invalid preference lists. */
export function buildRoutingContext(c: Config, volatility: VolatilityLookup, lag?: (nodeId: number) => NodeLag): RoutingContext {
  const classifier = createClassifier({
    writeFunctions: c.write_function_list,
    readOnlyFunctions: c.read_only_function_list,
    primaryRoutingPatterns: c.primary_routing_query_pattern_list,
    allowSqlComments: c.allow_sql_comments,
    ignoreLeadingWhiteSpace: c.ignore_leading_white_space,
  });
  const modes = { users: parsePoolModeList(c.pool_mode_user_list), databases: parsePoolModeList(c.pool_mode_database_list), fallback: c.pool_mode };
  return {
    poolMode: (user, database) => poolModeFor(user, database, modes),
    classifier,
    router: {
      loadBalanceMode: c.load_balance_mode,
      loadBalanceInTransaction: c.load_balance_in_transaction,
      disableLoadBalanceOnWrite: c.disable_load_balance_on_write,
      dmlRelations: parseDmlRelations(c.dml_adaptive_object_relationship_list.split(',')),
      volatility: (fn) => volatility.get(fn),
      functionListsSet: c.write_function_list.length > 0 || c.read_only_function_list.length > 0,
    },
    prefs: {
      appName: parseRedirectPreferences(c.app_name_redirect_preference_list),
      user: parseRedirectPreferences(c.user_redirect_preference_list),
      database: parseRedirectPreferences(c.database_redirect_preference_list),
      preferLowerDelayStandby: c.prefer_lower_delay_standby,
      algorithm: c.load_balance_algorithm,
      state: newLbState(),
    },
    statementLevel: c.statement_level_load_balance,
    noticePerNode: c.notice_per_node_statement,
    volatility,
    lag: lag ?? (() => NO_LAG),
  };
}
