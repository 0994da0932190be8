/**
 * Micro benchmark: the pool's own work per lease (transaction pooling), without sessions —
 * NodePool.tryLease + giveBack when an idle connection is there (clients ≤ default_pool_size),
 * and waitInLine + the hand-off inside giveBack when every connection is leased (more clients than
 * connections). CPU ns per lease (process.cpuUsage) and, with ALLOC=1, bytes allocated per lease.
 *
 *   npx tsc -p . && node dist/bench/micro/pool-lease.js [clients...]       (env POOL=20, LEASES=2000000)
 *   POOL_DIST=/path/to/other/dist node dist/bench/micro/pool-lease.js      (another build's NodePool)
 */
import * as path from 'node:path';
import * as v8 from 'node:v8';
import type { LeaseLimit, NodePool as NodePoolType, Poolable } from '../../src/pool/node-pool';

const { NodePool } = (process.env.POOL_DIST !== undefined
  ? require(path.resolve(process.env.POOL_DIST, 'src/pool/node-pool.js'))
  : require('../../src/pool/node-pool')) as { NodePool: typeof NodePoolType };

interface Conn extends Poolable {
  id: number;
}

const newSpace = (): number => v8.getHeapSpaceStatistics().find((x) => x.space_name === 'new_space')!.space_used_size;

async function main(): Promise<void> {
  const poolSize = Number(process.env.POOL ?? 20);
  const leases = Number(process.env.LEASES ?? 2_000_000);
  const counts = process.argv.slice(2).map(Number).filter((n) => n > 0);
  const limit: LeaseLimit = { size: poolSize, reserve: 0, reserveAfterMs: 0 };
  let nextId = 0;
  // (pool fields a newer Poolable may declare are left to the pool: this object has what every build reads)
  const makeConn = (): Conn => ({ id: nextId++, key: 'u/d', createdAt: Date.now(), lastUsedAt: 0, useCount: 0, usable: true, destroy: () => {} } as Conn);
  const create = async (): Promise<Conn> => makeConn();
  for (const n of counts.length > 0 ? counts : [16, 64]) {
    const pool = new NodePool<Conn>(0, { capacity: 10_000, idleTimeoutSec: 0, maxUses: 0, connectionCache: true, reset: async () => true, discard: async () => true });
    // Open the pool's connections (each through a lease, as sessions do).
    const first: Conn[] = await Promise.all(Array.from({ length: Math.min(n, poolSize) }, () => pool.lease('u/d', create, limit, 0)));
    for (const c of first) pool.giveBack(c, true, '', limit);
    let done = 0;
    let cycle: (count: number) => void;
    if (n <= poolSize) {
      // n clients, each leasing and giving back in turn, never more than n at once.
      const held: (Conn | null)[] = new Array(n).fill(null);
      cycle = (count) => {
        for (let k = 0; k < count; k++) {
          const i = k % n;
          const c = held[i]!;
          if (c !== null) pool.giveBack(c, true, '', limit);
          held[i] = pool.tryLease('u/d');
          done++;
        }
      };
      cycle(n);
    } else {
      // poolSize holders; n - poolSize waiting in line; each give-back hands the connection to the
      // first waiter, which becomes a holder, and the giver waits in line again.
      const holders: Conn[] = [];
      const callbacks: ((c: Conn | null, e: Error | null) => void)[] = [];
      for (let i = 0; i < n; i++) callbacks.push((c) => {
        if (c !== null) holders.push(c);
      });
      for (let i = 0; i < poolSize; i++) holders.push(pool.tryLease('u/d')!);
      for (let i = poolSize; i < n; i++) pool.waitInLine('u/d', create, limit, 0, callbacks[i]!);
      let who = 0;
      cycle = (count) => {
        for (let k = 0; k < count; k++) {
          const c = holders.shift()!;
          pool.giveBack(c, true, '', limit);
          pool.waitInLine('u/d', create, limit, 0, callbacks[who++ % n]!);
          done++;
        }
      };
    }
    cycle(leases / 4); // warm-up
    const t0 = process.cpuUsage();
    const d0 = done;
    cycle(leases);
    const cu = process.cpuUsage(t0);
    let line = `${String(n).padStart(4)} clients on ${poolSize}: ${((1000 * (cu.user + cu.system)) / (done - d0)).toFixed(0).padStart(5)} ns per lease`;
    if (process.env.ALLOC !== undefined) {
      let best = Infinity;
      for (let k = 0; k < 10; k++) {
        const before = newSpace();
        cycle(1000);
        const after = newSpace();
        if (after >= before) best = Math.min(best, (after - before) / 1000);
      }
      line += `  (${best.toFixed(1)} B)`;
    }
    console.log(line);
    pool.shutdown();
  }
}

void main();
