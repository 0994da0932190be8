/**
 * Micro benchmark of the per-request routing work pgmaitre adds on top of relaying bytes:
 * framing a client chunk, reading the request (frame walk + SQL decode), classifying and routing
 * it, for pgbench's select-only statement in each protocol mode. Plain script:
 * `npx tsc -p . && node dist/bench/micro/routing-path.js` (or `npm run bench:micro`).
 */
import { Framer } from '../../src/protocol/framer';
import { encodeBind, encodeDescribe, encodeExecute, encodeParse, encodeQuery, encodeSync } from '../../src/protocol/frontend';
import { RequestInfo } from '../../src/core/request';
import { createClassifier, initClassifier } from '../../src/classify';
import { newRouteState, routeStatement, type RouterConfig } from '../../src/router/router';

function bench(label: string, iterations: number, fn: (i: number) => void): void {
  for (let i = 0; i < 20_000; i++) fn(i); // warm-up
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < iterations; i++) fn(i);
  const ns = Number(process.hrtime.bigint() - t0) / iterations;
  console.log(`${label.padEnd(56)} ${(ns / 1000).toFixed(3)} µs/request`);
}

async function main(): Promise<void> {
  await initClassifier();
  const classifier = createClassifier({});
  const cfg: RouterConfig = {
    loadBalanceMode: true, loadBalanceInTransaction: false, disableLoadBalanceOnWrite: 'transaction',
    dmlRelations: new Map(), volatility: () => undefined, functionListsSet: false,
  };
  const state = newRouteState();
  const sql = 'SELECT abalance FROM pgbench_accounts WHERE aid = 4242;';
  const simple = encodeQuery(sql);
  const extended = Buffer.concat([
    encodeParse('', 'SELECT abalance FROM pgbench_accounts WHERE aid = $1;'), encodeBind('', '', ['4242']),
    encodeDescribe('P', ''), encodeExecute('', 0), encodeSync(),
  ]);
  const prepared = Buffer.concat([encodeBind('', 'P0_1', ['4242']), encodeDescribe('P', ''), encodeExecute('', 0), encodeSync()]);
  const framer = new Framer(1 << 30);
  const sink = { onFrame: () => {} };
  const info = new RequestInfo();

  for (const [mode, chunk] of [['simple', simple], ['extended', extended], ['prepared', prepared]] as const) {
    bench(`frame ${mode}`, 500_000, () => { framer.push(chunk, sink); });
    bench(`frame + read + classify + route ${mode}`, 300_000, () => {
      framer.push(chunk, sink);
      const c = info.read(chunk);
      for (const q of c.queries) routeStatement(classifier.classify(q), state, cfg);
      for (const p of c.parses) routeStatement(classifier.classify(p.sql), state, cfg);
    });
  }
}

void main();
