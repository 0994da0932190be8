/**
 * A fuzzer for pgmaitre's frontend: the startup phase, the SSL negotiation, the login handshake
 * (cleartext/md5/SCRAM messages) and the typed-message framer, fed random and mutated byte
 * streams over real TCP connections, split into random chunks.
 *
 * Deterministic for a seed (the byte streams; timing is not), bounded by a duration. Each case
 * opens a connection, plays its script and closes it after a short wait (or when pgmaitre does).
 * Used by test/integration/fuzz.test.ts (a few seconds in `npm test`) and test/fuzz/run.ts
 * (`npm run fuzz -- --seconds 300`).
 */
import * as net from 'node:net';
import { encodeCancelRequest, encodeGSSENCRequest, encodeSSLRequest, encodeStartupMessage } from '../../src/protocol/startup';
import {
  encodeBind, encodeExecute, encodeParse, encodePassword, encodeQuery, encodeSASLInitialResponse, encodeSASLResponse, encodeSync, encodeTerminate,
} from '../../src/protocol/frontend';
import { ScramClientSession } from '../../src/protocol/auth/scram';
import { md5PasswordHash, md5Response } from '../../src/protocol/auth/md5';

/** Deterministic PRNG (mulberry32). */
export class Rng {
  constructor(private state: number) {}
  next(): number {
    let t = (this.state = (this.state + 0x6d2b79f5) | 0);
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }
  int(n: number): number {
    return Math.floor(this.next() * n);
  }
  pick<T>(xs: readonly T[]): T {
    return xs[this.int(xs.length)]!;
  }
  bytes(n: number): Buffer {
    const b = Buffer.alloc(n);
    for (let i = 0; i < n; i++) b[i] = this.int(256);
    return b;
  }
}

/** Users the fuzzer logs in as (they must exist with these pool_hba methods). */
export interface FuzzUsers {
  readonly trust: string;
  readonly md5: { user: string; password: string };
  readonly scram: { user: string; password: string };
}

/** Randomly damages a buffer: bit flips, truncation, extension, a rewritten length field. */
export function mutate(rng: Rng, buf: Buffer): Buffer {
  let b = Buffer.from(buf);
  const ops = 1 + rng.int(3);
  for (let i = 0; i < ops; i++) {
    switch (rng.int(6)) {
      case 0: if (b.length > 0) { const k = rng.int(b.length); b[k] = b[k]! ^ (1 << rng.int(8)); } break;
      case 1: b = b.subarray(0, rng.int(b.length + 1)); break;
      case 2: b = Buffer.concat([b, rng.bytes(rng.int(64))]); break;
      case 3: if (b.length >= 5) b.writeInt32BE(rng.pick([0, 3, 4, 5, -1, 0x7fffffff, 0x40000000, b.length + rng.int(100), rng.int(1 << 20)]), rng.pick([0, 1])); break;
      case 4: if (b.length > 0) b[0] = rng.int(256); break;
      default: if (b.length > 0) b[rng.int(b.length)] = 0; break;
    }
  }
  return b;
}

/** A random typed frame: random type byte, a length that may or may not match its body. */
function randomFrame(rng: Rng): Buffer {
  const body = rng.bytes(rng.int(40));
  const f = Buffer.alloc(5 + body.length);
  f[0] = rng.pick([rng.int(256), 0x51, 0x50, 0x42, 0x45, 0x53, 0x48, 0x58, 0x64, 0x63, 0x66, 0x70, 0x46]);
  f.writeInt32BE(rng.int(4) === 0 ? rng.int(1 << 30) : 4 + body.length, 1);
  body.copy(f, 5);
  return rng.int(5) === 0 ? mutate(rng, f) : f;
}

type Step = { send: Buffer } | { wait: number } | { react: 'scram' | 'md5'; mutateAt: number };

/** One fuzz case: what to send, step by step. */
function makeCase(rng: Rng, users: FuzzUsers): { kind: string; steps: Step[] } {
  const startup = (user: string): Buffer => encodeStartupMessage({ user, database: 'postgres', application_name: 'fuzz' });
  const kind = rng.pick(['random', 'startup-mutated', 'trust-garbage', 'sslstorm', 'scram', 'md5', 'password-mutated', 'cancel', 'ready-then-frames', 'extended-garbage'] as const);
  const steps: Step[] = [];
  switch (kind) {
    case 'random':
      steps.push({ send: rng.bytes(rng.int(300)) });
      break;
    case 'startup-mutated':
      steps.push({ send: mutate(rng, startup(rng.pick([users.trust, users.md5.user, users.scram.user]))) });
      break;
    case 'trust-garbage':
      steps.push({ send: Buffer.concat([startup(users.trust), rng.bytes(rng.int(200))]) });
      break;
    case 'sslstorm': {
      const n = 1 + rng.int(40);
      const parts: Buffer[] = [];
      for (let i = 0; i < n; i++) parts.push(rng.int(3) === 0 ? encodeGSSENCRequest() : encodeSSLRequest());
      if (rng.int(2) === 0) parts.push(startup(users.trust));
      steps.push({ send: Buffer.concat(parts) });
      break;
    }
    case 'scram':
      steps.push({ send: startup(users.scram.user) }, { react: 'scram', mutateAt: rng.int(3) });
      break;
    case 'md5':
      steps.push({ send: startup(users.md5.user) }, { react: 'md5', mutateAt: rng.int(2) });
      break;
    case 'password-mutated':
      steps.push({ send: startup(users.md5.user) }, { wait: 30 }, { send: mutate(rng, encodePassword('whatever')) });
      break;
    case 'cancel':
      steps.push({ send: rng.int(2) === 0 ? encodeCancelRequest(rng.int(1 << 30), rng.int(1 << 30)) : mutate(rng, encodeCancelRequest(1, 2)) });
      break;
    case 'ready-then-frames': {
      const frames: Buffer[] = [startup(users.trust)];
      for (let i = 0, n = 1 + rng.int(6); i < n; i++) frames.push(rng.int(3) === 0 ? encodeQuery('select 1') : randomFrame(rng));
      steps.push({ send: frames[0]! }, { wait: 40 }, { send: Buffer.concat(frames.slice(1)) });
      break;
    }
    case 'extended-garbage': {
      const msgs = [encodeParse('', 'select $1::int'), encodeBind('', '', ['1']), encodeExecute(), encodeSync()];
      const i = rng.int(msgs.length);
      msgs[i] = mutate(rng, msgs[i]!);
      if (rng.int(2) === 0) msgs.push(encodeTerminate());
      steps.push({ send: startup(users.trust) }, { wait: 40 }, { send: Buffer.concat(msgs) });
      break;
    }
  }
  return { kind, steps };
}

/** Writes `buf` in random chunks. */
function writeSplit(rng: Rng, s: net.Socket, buf: Buffer): void {
  let pos = 0;
  while (pos < buf.length && !s.destroyed) {
    const n = rng.int(4) === 0 ? 1 + rng.int(3) : 1 + rng.int(buf.length);
    s.write(buf.subarray(pos, pos + n));
    pos += n;
  }
}

/** Reads authentication requests as they arrive (enough to drive SCRAM and md5 exchanges). */
function authRequests(s: net.Socket): () => Promise<{ code: number; body: Buffer } | null> {
  let acc = Buffer.alloc(0);
  const queue: { code: number; body: Buffer }[] = [];
  let waiter: (() => void) | null = null;
  let closed = false;
  s.on('data', (d: Buffer) => {
    acc = Buffer.concat([acc, d]);
    while (acc.length >= 5) {
      const len = acc.readInt32BE(1);
      if (len < 4 || acc.length < len + 1) break;
      if (acc[0] === 0x52) queue.push({ code: acc.readInt32BE(5), body: acc.subarray(9, len + 1) });
      acc = acc.subarray(len + 1);
    }
    waiter?.();
  });
  s.on('close', () => { closed = true; waiter?.(); });
  return async () => {
    for (;;) {
      const q = queue.shift();
      if (q !== undefined) return q;
      if (closed) return null;
      const got = await Promise.race([new Promise<boolean>((r) => { waiter = () => r(true); }), new Promise<boolean>((r) => setTimeout(() => r(false), 500))]);
      waiter = null;
      if (!got) return null;
    }
  };
}

/** Runs one case against host:port; resolves when the connection is done. */
async function runCase(rng: Rng, port: number, users: FuzzUsers): Promise<void> {
  const c = makeCase(rng, users);
  const s = net.connect({ host: '127.0.0.1', port });
  s.on('error', () => undefined);
  const closed = new Promise<void>((r) => s.once('close', () => r()));
  await Promise.race([new Promise((r) => s.once('connect', r)), closed]);
  const next = authRequests(s);
  for (const step of c.steps) {
    if (s.destroyed) break;
    if ('send' in step) writeSplit(rng, s, step.send);
    else if ('wait' in step) await new Promise((r) => setTimeout(r, step.wait));
    else if (step.react === 'scram') {
      const u = users.scram;
      const client = new ScramClientSession({ password: rng.int(3) === 0 ? 'wrong' : u.password });
      const sasl = await next();
      if (sasl === null) break;
      let first = encodeSASLInitialResponse('SCRAM-SHA-256', Buffer.from(client.clientFirst()));
      if (step.mutateAt === 0) first = mutate(rng, first);
      writeSplit(rng, s, first);
      const cont = await next();
      if (cont === null || cont.code !== 11) break;
      let final: Buffer;
      try {
        final = encodeSASLResponse(Buffer.from(client.clientFinal(cont.body.toString('utf8'))));
      } catch {
        final = rng.bytes(40);
      }
      if (step.mutateAt === 1) final = mutate(rng, final);
      writeSplit(rng, s, final);
      if (step.mutateAt === 2) writeSplit(rng, s, randomFrame(rng));
    } else {
      const u = users.md5;
      const req = await next();
      if (req === null || req.code !== 5) break;
      let answer = encodePassword(md5Response(md5PasswordHash(u.user, rng.int(3) === 0 ? 'wrong' : u.password), req.body.subarray(0, 4)));
      if (step.mutateAt === 0) answer = mutate(rng, answer);
      writeSplit(rng, s, answer);
      if (step.mutateAt === 1) writeSplit(rng, s, randomFrame(rng));
    }
  }
  await Promise.race([closed, new Promise((r) => setTimeout(r, 50 + rng.int(200)))]);
  s.destroy();
  await closed;
}

/** Fuzzing statistics. */
export interface FuzzStats {
  cases: number;
}

/** Runs `concurrency` fuzz workers against `port` for `seconds`; worker i uses seed + i. */
export async function fuzzFrontend(opts: { port: number; seconds: number; seed: number; users: FuzzUsers; concurrency?: number }): Promise<FuzzStats> {
  const deadline = Date.now() + opts.seconds * 1000;
  const stats: FuzzStats = { cases: 0 };
  const worker = async (i: number): Promise<void> => {
    const rng = new Rng(opts.seed + i);
    while (Date.now() < deadline) {
      await runCase(rng, opts.port, opts.users);
      stats.cases++;
    }
  };
  await Promise.all(Array.from({ length: opts.concurrency ?? 12 }, (_, i) => worker(i)));
  return stats;
}
