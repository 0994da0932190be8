// idle-clients.ts — what idle client connections cost a pooler in memory: opens N connections
// (startup + login, user postgres, database bench, trust), runs one `SELECT 1` on each so that a
// transaction pooler has really served them, leaves them idle, and reports the pooler's RSS
// (/proc/<pid>/status) before and after, per 1000 connections. bench/pooling.sh runs it for
// pgmaitre and PgBouncer; by hand: node dist/bench/e2e/idle-clients.js <port> <pid> [n] [label]

import { Client } from 'pg';
import { rssKb } from './flood';

async function main(): Promise<void> {
  const [port, pid, n = '1000', label = 'proxy'] = process.argv.slice(2);
  if (port === undefined || pid === undefined) {
    console.error('usage: idle-clients <port> <proxy pid> [connections] [label]');
    process.exit(2);
  }
  const count = Number(n);
  const before = rssKb(Number(pid));
  const clients: Client[] = [];
  let failed = 0;
  let firstError = '';
  // 50 at a time: a login storm is not what is measured here.
  for (let i = 0; i < count; i += 50) {
    const batch: Promise<void>[] = [];
    for (let j = i; j < Math.min(count, i + 50); j++) {
      const c = new Client({ host: '127.0.0.1', port: Number(port), user: 'postgres', database: 'bench' });
      c.on('error', () => {});
      clients.push(c);
      batch.push(c.connect().then(() => c.query('SELECT 1')).then(() => undefined, (e: Error) => {
        failed++;
        firstError ||= e.message;
      }));
    }
    await Promise.all(batch);
  }
  await new Promise((r) => setTimeout(r, 2000));
  const after = rssKb(Number(pid));
  const open = count - failed;
  const per1000 = open > 0 ? ((after - before) / 1024) * (1000 / open) : 0;
  console.log(`${label.padEnd(12)} RSS ${(before / 1024).toFixed(1)} MB -> ${(after / 1024).toFixed(1)} MB with ${open} idle clients: ` +
    `${per1000.toFixed(1)} MB per 1000${failed > 0 ? ` (${failed} failed: ${firstError})` : ''}`);
  await Promise.all(clients.map((c) => c.end().catch(() => {})));
}

main().catch((e: unknown) => {
  console.error(e);
  process.exit(1);
});
