/**
 * Micro benchmark of the classifier's three paths: lexer fast path, cache hit, cache miss
 * (lexer + libpg-query + tree walk). Plain script: `npx tsc -p . && node dist/bench/micro/classifier.js`.
 */
import { createClassifier, initClassifier } from '../../src/classify';

const FAST = [
  'SELECT abalance FROM pgbench_accounts WHERE aid = $1;',
  'UPDATE pgbench_accounts SET abalance = abalance + $1 WHERE aid = $2;',
  'BEGIN;',
  'SELECT "users".* FROM "users" WHERE "users"."id" = $1 LIMIT $2',
];
const PARSED = 'WITH x AS (SELECT id, f(a) FROM t WHERE b = $1) SELECT * FROM x ORDER BY id LIMIT 10';

function bench(label: string, iterations: number, fn: (i: number) => void): void {
  for (let i = 0; i < Math.min(iterations, 20_000); i++) fn(i); // warm-up
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < iterations; i++) fn(i);
  const ns = Number(process.hrtime.bigint() - t0) / iterations;
  console.log(`${label.padEnd(48)} ${(ns / 1000).toFixed(3)} µs/stmt`);
}

async function main(): Promise<void> {
  await initClassifier();
  const c = createClassifier();
  for (const sql of FAST) {
    bench(`lexer fast path: ${sql.slice(0, 30)}…`, 500_000, () => c.classify(sql));
  }
  c.classify(PARSED);
  bench('cache hit (WITH … f())', 500_000, () => c.classify(PARSED));
  const misses = Array.from({ length: 20_000 }, (_, i) => PARSED.replace('$1', String(i)));
  const nocache = createClassifier({ cacheSize: 1 });
  bench('cache miss: lexer + libpg-query + walk', misses.length, (i) => nocache.classify(misses[i] as string));
  const big = 'SELECT a FROM t WHERE a IN (' + Array.from({ length: 30000 }, (_, i) => String(i)).join(',') + ')';
  bench(`lexer only, ${Math.round(big.length / 1024)} KB statement`, 50, () => c.classify(big));
}

void main();
