// flood.ts — memory under a client that writes requests faster than the backend consumes them:
// one connection pipelines 1 MB queries as fast as the socket takes them (reading the answers
// too, but never waiting for them) for FLOOD_SECONDS; the proxy's RSS (/proc/<pid>/status) is
// sampled every 250 ms. Prints the RSS before, the highest during, and the growth.
//   node dist/bench/e2e/flood.js <port> <proxy pid> [label]
// (start the proxy over ../shared/bench/cluster.sh's cluster first; user postgres, database bench)

import fs from 'node:fs';
import net from 'node:net';

function rssKb(pid: number): number {
  const m = /VmRSS:\s+(\d+)/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) : 0;
}

function startup(user: string, database: string): Buffer {
  const body = Buffer.concat([Buffer.from([0, 3, 0, 0]), Buffer.from(`user\0${user}\0database\0${database}\0\0`)]);
  const len = Buffer.alloc(4);
  len.writeInt32BE(body.length + 4);
  return Buffer.concat([len, body]);
}

function query(sql: string): Buffer {
  const body = Buffer.from(`${sql}\0`);
  const b = Buffer.alloc(5);
  b[0] = 0x51;
  b.writeInt32BE(body.length + 4, 1);
  return Buffer.concat([b, body]);
}

async function main(): Promise<void> {
  const port = Number(process.argv[2]);
  const pid = Number(process.argv[3]);
  const label = process.argv[4] ?? `port ${port}`;
  const seconds = Number(process.env['FLOOD_SECONDS'] ?? 5);
  if (!port || !pid) throw new Error('usage: flood.js <port> <proxy pid> [label]');
  const q = query(`SELECT length('${'x'.repeat(1024 * 1024)}')`);
  const s = net.connect({ host: '127.0.0.1', port });
  await new Promise<void>((resolve, reject) => { s.once('connect', resolve); s.once('error', reject); });
  let ready = false;
  let answered = 0;
  s.on('data', (d: Buffer) => {
    if (!ready && d.includes(Buffer.from('Z\0\0\0\x05'))) ready = true;
    for (let i = d.indexOf(0x5a); i >= 0; i = d.indexOf(0x5a, i + 1)) if (d.readInt32BE(i + 1) === 5) answered++;
  });
  s.write(startup('postgres', 'bench'));
  while (!ready) await new Promise((r) => setTimeout(r, 20));
  answered = 0;
  const before = rssKb(pid);
  let peak = before;
  let sent = 0;
  const end = Date.now() + seconds * 1000;
  const sampler = setInterval(() => { peak = Math.max(peak, rssKb(pid)); }, 250);
  while (Date.now() < end) {
    if (!s.write(q)) await new Promise((r) => s.once('drain', r));
    sent++;
  }
  clearInterval(sampler);
  peak = Math.max(peak, rssKb(pid));
  s.destroy();
  console.log(`${label.padEnd(12)} RSS before ${(before / 1024).toFixed(1)} MB, peak ${(peak / 1024).toFixed(1)} MB, growth ${((peak - before) / 1024).toFixed(1)} MB (${sent} × 1 MB queries sent, ${answered} answered in ${seconds} s)`);
}

main().catch((e: unknown) => {
  console.error(e);
  process.exit(1);
});
