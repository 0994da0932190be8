/**
 * Which pgpool-II release pgmaitre answers as (pgpool_compatibility): the version SHOW
 * POOL_VERSION and the status page show, and the columns of SHOW POOL_POOLS / pcp_proc_info.
 */

/** The pgpool-II version per compatibility level. */
export const PGPOOL_COMPAT_VERSIONS: Readonly<Record<string, string>> = { '4.6': '4.6.0', '4.7': '4.7.0' };

/** The version string for a level ('4.7.0' for an unknown one). */
export function pgpoolVersion(level: string): string {
  return PGPOOL_COMPAT_VERSIONS[level] ?? '4.7.0';
}
