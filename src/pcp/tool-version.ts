/**
 * pcp_client_version = 'auto' (the default): which pcp_node_info reply layout the pcp_* tools of
 * this host read. pgpool-II 4.4 added a field in the middle of the node-info record, and a 4.3
 * tool (Debian 12's pgpool2 package) reads a 4.4 record shifted ("Replication State: 0",
 * "Last Status Change: 1970-01-01"); the requests of both are byte for byte the same, so the
 * server cannot tell them apart. A DBA trying pgmaitre on the host where pgpool-II runs uses
 * that host's tools: their `--version` decides, once at start. No tools here: 4.4's layout
 * (the tools of every pgpool-II since 4.4, and of the 4.7 pgmaitre answers as).
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { PcpClientVersion } from './handlers';

/** The version family a `pcp_node_info --version` line names ("pcp_node_info (pgpool-II) 4.3.5"), or null. */
export function versionFamily(text: string): PcpClientVersion | null {
  const m = /\(pgpool-II\)\s+(\d+)\.(\d+)/.exec(text) ?? /(\d+)\.(\d+)\.\d+/.exec(text);
  if (m === null) return null;
  const major = Number(m[1]);
  const minor = Number(m[2]);
  return major < 4 || (major === 4 && minor <= 3) ? '4.3' : '4.4';
}

/** Where pcp_node_info is on this host (PATH, then the sbin directories a service's PATH may lack), or null. */
export function findPcpNodeInfo(envPath: string = process.env['PATH'] ?? ''): string | null {
  const dirs = [...envPath.split(path.delimiter).filter((d) => d !== ''), '/usr/sbin', '/usr/bin', '/usr/local/sbin', '/usr/local/bin'];
  for (const d of dirs) {
    const f = path.join(d, 'pcp_node_info');
    try {
      fs.accessSync(f, fs.constants.X_OK);
      return f;
    } catch {
      // not in this directory
    }
  }
  return null;
}

/** `configured` as it is, or for 'auto' the family of the pcp_* tools installed here ('4.4' when none answers). */
export function resolvePcpClientVersion(configured: 'auto' | PcpClientVersion): { version: PcpClientVersion; from: string } {
  if (configured !== 'auto') return { version: configured, from: 'pcp_client_version' };
  const tool = findPcpNodeInfo();
  if (tool === null) return { version: '4.4', from: 'no pcp_node_info on this host' };
  // The tools print their version on stderr (pgpool-II's pcp_* do), exit 0.
  const r = spawnSync(tool, ['--version'], { timeout: 2000, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  const out = `${r.stdout ?? ''}${r.stderr ?? ''}`.trim();
  const v = versionFamily(out);
  return v === null ? { version: '4.4', from: `${tool} --version: no version in its answer` } : { version: v, from: `${tool} --version: ${out}` };
}
