/**
 * Who runs failover_command, failback_command and follow_primary_command when several pgmaitre
 * instances stand in front of the same cluster (an HA pair behind a keepalived virtual IP).
 *
 * Every instance still checks the nodes and routes around a failed one at once; only the
 * *commands* are gated, because running a promotion script twice is what hurts. The instances
 * elect, through an existing lock service rather than a protocol of our own (pgpool-II's
 * watchdog is what its users complain about), one holder of a lease — etcd's election recipe,
 * through the npm `etcd3` client: the holder's lease lives as long as it keeps it alive, and
 * expires etcd_lease_ttl seconds after the holder stopped answering. Only the holder runs
 * commands, and records each node failover it handled under `<etcd_prefix>nodes/<id>`.
 * An instance that skipped a failover because it did not hold the lease remembers it; if it wins
 * the lease later (the holder stopped or crashed), it runs that failover_command unless the
 * record says the old holder already did. So a command runs once per event — twice only if a
 * holder dies between running it and recording it. Without etcd_endpoints there is no gate.
 * While etcd cannot be reached nobody holds the lease: commands wait, routing goes on.
 */
import * as os from 'node:os';
import type { Etcd3, Campaign, Namespace } from 'etcd3';
import type { Logger } from '../log/logger';

/** The gate's view for the failover manager. */
export interface CommandGate {
  /** True while this instance holds the lease (may run commands). */
  readonly leading: boolean;
  /** This instance's name. */
  readonly name: string;
  /** Starts campaigning; `onElected` runs each time this instance wins the lease. */
  start(onElected: () => void): void;
  /** Gives the lease up (so the other instance takes over at once) and closes the client. */
  stop(): Promise<void>;
  /** Records that this node's failover (down) or failback (up) was handled. */
  record(nodeId: number, state: 'down' | 'up'): Promise<void>;
  /** What was last recorded for a node. */
  recorded(nodeId: number): Promise<string | undefined>;
}

/** Settings of the etcd gate. */
export interface EtcdGateOptions {
  readonly endpoints: string;
  readonly prefix: string;
  readonly ttlSec: number;
  readonly name: string;
  readonly port: number;
  readonly log: Logger;
}

/** The etcd-backed gate; see the file header. */
export class EtcdCommandGate implements CommandGate {
  readonly name: string;
  private leadingNow = false;
  private readonly client: Etcd3;
  private readonly ns: Namespace;
  private campaign: Campaign | null = null;
  private stopped = false;
  private retry: NodeJS.Timeout | null = null;

  constructor(private readonly o: EtcdGateOptions) {
    this.name = o.name !== '' ? o.name : `${os.hostname()}:${o.port}`;
    const hosts = o.endpoints.split(',').map((h) => h.trim()).filter((h) => h !== '');
    // etcd3 (grpc-js, protobufjs) is loaded only by a configuration that names etcd_endpoints:
    // loading it took about a fifth of pgmaitre's start-up without one.
    const { Etcd3: Client } = require('etcd3') as typeof import('etcd3');
    this.client = new Client({ hosts, dialTimeout: 2000 });
    this.ns = this.client.namespace(o.prefix);
  }

  get leading(): boolean {
    return this.leadingNow;
  }

  start(onElected: () => void): void {
    if (this.stopped) return;
    const c = this.ns.election('failover', this.o.ttlSec).campaign(this.name);
    this.campaign = c;
    c.on('elected', () => {
      if (this.campaign !== c || this.stopped) return;
      this.leadingNow = true;
      this.o.log.warn({ event: 'failover_lease_acquired', instance: this.name }, `this instance (${this.name}) holds the failover lease: it runs failover/failback/follow_primary commands`);
      onElected();
    });
    c.on('error', (e: Error) => {
      if (this.campaign !== c || this.stopped) return;
      const was = this.leadingNow;
      this.leadingNow = false;
      this.campaign = null;
      this.o.log.error({ event: 'failover_lease_error', instance: this.name, err: e.message },
        `${was ? 'lost the failover lease' : 'cannot campaign for the failover lease'} (${e.message}); trying again in 1 s`);
      void c.resign().catch(() => undefined);
      this.retry = setTimeout(() => { this.retry = null; this.start(onElected); }, 1000);
      this.retry.unref();
    });
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.retry !== null) clearTimeout(this.retry);
    const c = this.campaign;
    this.campaign = null;
    this.leadingNow = false;
    if (c !== null) await Promise.race([c.resign().catch(() => undefined), new Promise((r) => setTimeout(r, 2000).unref())]);
    this.client.close();
  }

  async record(nodeId: number, state: 'down' | 'up'): Promise<void> {
    await this.ns.put(`nodes/${nodeId}`).value(`${state} ${this.name} ${new Date().toISOString()}`);
  }

  async recorded(nodeId: number): Promise<string | undefined> {
    const v = await this.ns.get(`nodes/${nodeId}`).string();
    return v === null ? undefined : v.split(' ')[0];
  }
}
