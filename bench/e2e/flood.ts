// flood.ts — memory under a client that writes requests faster than the backend consumes them:
// one connection pipelines 1 MB queries as fast as the socket takes them (reading the answers
// too, but never waiting for them) for FLOOD_SECONDS; the proxy's RSS (/proc/<pid>/status) is
// sampled every 250 ms. Prints the RSS before, the highest during, and the growth.
// `npm run bench` (run.ts) calls runFlood() against a fresh pgmaitre; by hand:
//   node dist/bench/e2e/flood.js <port> <proxy pid> [label]
// (start the proxy over ../shared/bench/cluster.sh's cluster first; user postgres, database bench)

import fs from 'node:fs';
import net from 'node:net';

/** What one flood did to the proxy's memory. */
export interface FloodSample {
  readonly beforeMb: number;
  readonly peakMb: number;
  /** peak − before: what the flood added. */
  readonly growthMb: number;
  /** 1 MB queries written. */
  readonly sent: number;
  /** ReadyForQuery seen (approximate: a 'Z' header split across reads is missed). */
  readonly answered: number;
  /** Why the flood ended early (the proxy closed the connection), if it did. */
  readonly closedEarly: string | undefined;
}

/** Options of runFlood. */
export interface FloodOptions {
  readonly port: number;
  /** The proxy process whose RSS is sampled. */
  readonly pid: number;
  readonly seconds: number;
  readonly user?: string;
  readonly database?: string;
}

/** Resident set size of a process in kB (0 once it is gone). */
export function rssKb(pid: number): number {
  try {
    const m = /VmRSS:\s+(\d+)/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) : 0;
  } catch {
    return 0;
  }
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

/** Count ReadyForQuery headers ('Z', length 5) wholly inside one chunk. */
function countReady(d: Buffer): number {
  let n = 0;
  for (let i = d.indexOf(0x5a); i >= 0 && i + 5 <= d.length; i = d.indexOf(0x5a, i + 1)) if (d.readInt32BE(i + 1) === 5) n++;
  return n;
}

/** Flood the proxy on 127.0.0.1:port with 1 MB queries for `seconds`, sampling its RSS every 250 ms. */
export async function runFlood(opts: FloodOptions): Promise<FloodSample> {
  const q = query(`SELECT length('${'x'.repeat(1024 * 1024)}')`);
  const s = net.connect({ host: '127.0.0.1', port: opts.port });
  let closed: string | undefined;
  s.on('error', (err) => (closed ??= err.message));
  s.on('close', () => (closed ??= 'connection closed by the proxy'));
  await new Promise<void>((resolve, reject) => {
    s.once('connect', resolve);
    s.once('error', reject);
  });
  let ready = false;
  let answered = 0;
  let sawError = '';
  s.on('data', (d: Buffer) => {
    if (!ready) {
      if (d.includes(Buffer.from('Z\0\0\0\x05'))) ready = true;
      else if (d[0] === 0x45) sawError = d.subarray(5).toString('utf8').replace(/\0/g, ' ').trim();
    }
    answered += countReady(d);
  });
  s.write(startup(opts.user ?? 'postgres', opts.database ?? 'bench'));
  const loginBy = Date.now() + 10_000;
  while (!ready) {
    if (closed !== undefined || sawError || Date.now() > loginBy) {
      s.destroy();
      throw new Error(`flood: login to 127.0.0.1:${opts.port} failed: ${sawError || closed || 'no ReadyForQuery in 10 s'}`);
    }
    await new Promise((r) => setTimeout(r, 20));
  }
  answered = 0;
  const before = rssKb(opts.pid);
  let peak = before;
  let sent = 0;
  const end = Date.now() + opts.seconds * 1000;
  const sampler = setInterval(() => {
    peak = Math.max(peak, rssKb(opts.pid));
  }, 250);
  try {
    // a 1 MB write is above the socket's high-water mark: every write waits for 'drain' (or the end)
    while (Date.now() < end && closed === undefined) {
      if (!s.write(q)) {
        await new Promise<void>((resolve) => {
          const done = (): void => {
            s.off('drain', done);
            s.off('close', done);
            clearTimeout(timer);
            resolve();
          };
          const timer = setTimeout(done, Math.max(0, end - Date.now()));
          s.once('drain', done);
          s.once('close', done);
        });
      }
      sent++;
    }
  } finally {
    clearInterval(sampler);
  }
  peak = Math.max(peak, rssKb(opts.pid));
  const closedEarly = closed;
  s.destroy();
  return { beforeMb: before / 1024, peakMb: peak / 1024, growthMb: (peak - before) / 1024, sent, answered, closedEarly };
}

async function main(): Promise<void> {
  const port = Number(process.argv[2]);
  const pid = Number(process.argv[3]);
  const label = process.argv[4] ?? `port ${port}`;
  const seconds = Number(process.env['FLOOD_SECONDS'] ?? 5);
  if (!port || !pid) throw new Error('usage: flood.js <port> <proxy pid> [label]');
  const r = await runFlood({ port, pid, seconds });
  console.log(
    `${label.padEnd(12)} RSS before ${r.beforeMb.toFixed(1)} MB, peak ${r.peakMb.toFixed(1)} MB, growth ${r.growthMb.toFixed(1)} MB ` +
      `(${r.sent} × 1 MB queries sent, ${r.answered} answered in ${seconds} s${r.closedEarly ? `; ended early: ${r.closedEarly}` : ''})`,
  );
}

if (require.main === module) {
  main().catch((e: unknown) => {
    console.error(e);
    process.exit(1);
  });
}
