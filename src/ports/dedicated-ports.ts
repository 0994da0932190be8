/**
 * HAProxy-style dedicated ports beside the smart endpoint (issue 12):
 *   write_port — every connection goes to the current primary, as pgmaitre's own checks find it
 *                (so it follows failovers without a Patroni check);
 *   read_port  — every connection goes to a standby chosen by load_balance_algorithm (BACKUP
 *                standbys only when no other is up), the primary when no standby is up and
 *                read_port_primary_fallback = on.
 * The node is chosen once per connection; after login the connection is a pure byte relay
 * (relay-session.ts, backend-link.ts). When the primary changes, write-port connections to the
 * old one are closed, and read-port connections to a node that went down or became primary are
 * closed too (HAProxy's on-marked-down shutdown-sessions): no client keeps writing to a demoted
 * node. Listeners bind write/read_listen_addresses ('' = listen_addresses) and, like the smart
 * endpoint, `.s.PGSQL.<port>` in each unix_socket_directories entry.
 */
import type * as net from 'node:net';
import type { Logger } from '../log/logger';
import type { FrontendContext } from '../frontend/context';
import { bindHosts, closeAll, listenAll } from '../frontend/listener';
import { admitConnection, type ConnectionRateLimiter } from '../frontend/conn-rate-limit';
import { lbCandidates } from '../frontend/lb-candidates';
import { newLbState, selectReadPortNode } from '../router/lb-select';
import { clientErrors } from '../errors/client-errors';
import { nodeLatency } from '../admin/latency';
import type { NodeChange } from '../cluster/cluster';
import { RelaySession, type PortHost, type PortKind } from './relay-session';

export type { PortKind } from './relay-session';

/** The running dedicated ports. */
export interface DedicatedPorts {
  /** Bound TCP ports (0 when that port is off). */
  readonly writePort: number;
  readonly readPort: number;
  /** Relays open on a node (least_connections). */
  relayCount(nodeId: number): number;
  /** Relays open now, per port. */
  counts(): { write: number; read: number };
  /** Connections relayed since start, per port and node (admin counters). */
  served(kind: PortKind, nodeId: number): number;
  close(): Promise<void>;
}

/** Starts the ports configured (write_port, read_port); resolves once they listen. */
export async function startDedicatedPorts(ctx: FrontendContext, log: Logger, limiter?: ConnectionRateLimiter): Promise<DedicatedPorts> {
  const cfg = ctx.config;
  const relays = new Set<RelaySession>();
  const perNode = new Map<number, number>();
  const servedBy = new Map<string, number>();
  const readState = newLbState();
  const bump = (id: number, d: number): void => { perNode.set(id, (perNode.get(id) ?? 0) + d); };

  const host = (kind: PortKind): PortHost => ({
    kind,
    chooseNode: () => {
      const primary = ctx.cluster.primaryId();
      if (kind === 'write') return primary >= 0 ? primary : clientErrors.noPrimary();
      const pick = selectReadPortNode(lbCandidates(ctx, primary), ctx.config.load_balance_algorithm, readState, ctx.config.read_port_primary_fallback);
      return pick >= 0 ? pick : clientErrors.noStandby();
    },
    relayStarted: (s) => {
      relays.add(s);
      bump(s.nodeId, 1);
      servedBy.set(`${kind}${s.nodeId}`, (servedBy.get(`${kind}${s.nodeId}`) ?? 0) + 1);
    },
    relayEnded: (s) => { if (relays.delete(s)) bump(s.nodeId, -1); },
    measureLatency: () => kind === 'read' && ctx.config.load_balance_algorithm === 'least_latency',
    observeLatency: (nodeId, seconds) => nodeLatency(nodeId).observe(seconds),
  });

  // on-marked-down shutdown-sessions: close relays whose node is no longer a valid target.
  const onChange = (c: NodeChange): void => {
    const primary = ctx.cluster.primaryId();
    for (const s of [...relays]) {
      const n = ctx.cluster.node(s.nodeId);
      const down = n === undefined || n.status === 'down' || n.status === 'unused';
      if (s.host.kind === 'write' ? s.nodeId !== primary : down || (!s.onPrimary && s.nodeId === primary)) {
        log.warn({ event: 'relay_closed', port: s.host.kind, node_id: s.nodeId, pid: s.pid, reason: `${c.field} of node ${c.nodeId}: ${c.from} -> ${c.to}` },
          `closing ${s.host.kind}-port connection to node ${s.nodeId}: it is no longer ${s.host.kind === 'write' ? 'the primary' : 'a valid read target'}`);
        s.close(`node ${s.nodeId} is no longer a valid ${s.host.kind} target`);
      }
    }
  };
  ctx.cluster.on('change', onChange);

  const servers: net.Server[] = [];
  const socketDirs = cfg.unix_socket_directories.map((d) => d.trim()).filter((d) => d !== '');
  const open = async (kind: PortKind, port: number, addresses: string): Promise<number> => {
    if (port <= 0) return 0;
    const h = host(kind);
    const onSocket = (socket: net.Socket): void => {
      if (ctx.shuttingDown) {
        socket.destroy();
        return;
      }
      if (!admitConnection(limiter, socket)) return;
      new RelaySession(socket, ctx, h);
    };
    const keys = { tcp: `${addresses === '' ? 'listen_addresses' : `${kind}_listen_addresses`}/${kind}_port`, unix: `unix_socket_directories (${kind}_port)` };
    const list = await listenAll(bindHosts(addresses === '' ? cfg.listen_addresses : addresses), port, socketDirs, onSocket, keys);
    servers.push(...list);
    const a = list.map((s) => s.address()).find((x): x is net.AddressInfo => typeof x === 'object' && x !== null);
    const bound = a?.port ?? port;
    log.info({ event: 'listening', port: bound, kind }, `${kind} port listening on ${addresses === '' ? cfg.listen_addresses : addresses}:${bound}`);
    return bound;
  };
  let writePort = 0;
  let readPort = 0;
  try {
    writePort = await open('write', cfg.write_port, cfg.write_listen_addresses);
    readPort = await open('read', cfg.read_port, cfg.read_listen_addresses);
  } catch (e) {
    ctx.cluster.off('change', onChange);
    await closeAll(servers);
    throw e;
  }
  return {
    writePort, readPort,
    relayCount: (id) => perNode.get(id) ?? 0,
    served: (kind, id) => servedBy.get(`${kind}${id}`) ?? 0,
    counts: () => {
      let write = 0;
      for (const s of relays) if (s.host.kind === 'write') write++;
      return { write, read: relays.size - write };
    },
    close: async () => {
      ctx.cluster.off('change', onChange);
      await closeAll(servers);
    },
  };
}
