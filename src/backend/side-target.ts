/**
 * Where and as whom pgmaitre opens its side connections (pg_proc lookups, WAL positions): never a
 * client's backend connection, always a `pg` client of its own.
 */

/** Connection settings of one side connection. */
export interface SideTarget {
  readonly host: string;
  readonly port: number;
  readonly user: string;
  readonly password: string;
  readonly database: string;
  readonly timeoutMs: number;
}
