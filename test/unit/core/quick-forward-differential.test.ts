/**
 * The quick forward path must be invisible: the same random client traffic through two cores, one
 * offering each read to SessionCore.quickForward (as frontend/session.ts does) and one framing
 * every read, with backends that answer what they are sent the same way, must write the same
 * bytes to the backends and to the client, and count the same statements.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { makeCore, type CoreFixture } from './core-harness';
import { cstr, i16, i32, msg, u8 } from '../../fixtures/bytes';

const Q = (sql: string): Buffer => msg('Q', cstr(sql));
const P = (name: string, sql: string): Buffer => msg('P', cstr(name), cstr(sql), i16(0));
const B = (portal: string, stmt: string): Buffer => msg('B', cstr(portal), cstr(stmt), i16(0), i16(0), i16(0));
const E = (): Buffer => msg('E', cstr(''), i32(0));
const S = msg('S');
const Z = (s: string): Buffer => msg('Z', u8(s));
const C = (tag: string): Buffer => msg('C', cstr(tag));
const ERR = (code: string): Buffer => msg('E', u8('S'), cstr('ERROR'), u8('V'), cstr('ERROR'), u8('C'), cstr(code), u8('M'), cstr('failed'), u8(0));

/** A deterministic generator (mulberry32). */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** One client read, picked mostly among reads of one shape (what the quick path takes). */
function pick(r: () => number): Buffer {
  const x = r();
  const n = Math.floor(r() * 1000);
  if (x < 0.55) return Q(`SELECT abalance FROM pgbench_accounts WHERE aid = ${n};`);
  if (x < 0.62) return Q(`SELECT bbalance FROM pgbench_branches WHERE bid = ${n}`);
  if (x < 0.66) return Q(`SELECT abalance FROM pgbench_accounts WHERE aid = ${n} /* ERR */;`);
  if (x < 0.70) return Q(`UPDATE pgbench_accounts SET abalance = ${n} WHERE aid = 1`);
  if (x < 0.74) return Q('BEGIN');
  if (x < 0.78) return Q('COMMIT');
  if (x < 0.80) return Q('ROLLBACK');
  if (x < 0.83) return Q(`SET work_mem = ${64 + n}`);
  if (x < 0.86) return Q('SELECT pg_backend_pid()');
  if (x < 0.89) return Buffer.concat([P('', 'SELECT abalance FROM pgbench_accounts WHERE aid = $1'), B('', ''), E(), S]);
  if (x < 0.92) return Buffer.concat([Q(`SELECT abalance FROM pgbench_accounts WHERE aid = ${n};`), Q('SELECT 1')]);
  if (x < 0.95) return Q(`SELECT ${n}`);
  return Q('CREATE TEMP TABLE tmp_x (a int)');
}

/** A backend that answers the frames it was sent, keeping its transaction status. */
class Backend {
  status = 'I';
  private skipping = false;
  answer(sent: Buffer): Buffer {
    const out: Buffer[] = [];
    for (let pos = 0; pos + 5 <= sent.length; pos += 1 + sent.readInt32BE(pos + 1)) {
      const code = String.fromCharCode(sent[pos]!);
      const body = sent.subarray(pos + 5, pos + 1 + sent.readInt32BE(pos + 1));
      if (code === 'Q') {
        const sql = body.toString('latin1', 0, body.length - 1);
        this.skipping = false;
        if (sql.includes('ERR')) {
          out.push(ERR('42601'));
          if (this.status === 'T') this.status = 'E';
        } else if (/^BEGIN/.test(sql)) {
          out.push(C('BEGIN'));
          if (this.status === 'I') this.status = 'T';
        } else if (/^(COMMIT|ROLLBACK)/.test(sql)) {
          out.push(C(sql.startsWith('COMMIT') && this.status === 'E' ? 'ROLLBACK' : sql.split(' ')[0]!));
          this.status = 'I';
        } else if (this.status === 'E') {
          out.push(ERR('25P02'));
        } else {
          for (const _ of sql.split(';').filter((s) => s.trim() !== '')) out.push(msg('T', i16(0)), C('SELECT 1'));
          if (sql.trim() === '') out.push(msg('I'));
        }
        out.push(Z(this.status));
      } else if (code === 'S') {
        this.skipping = false;
        out.push(Z(this.status));
      } else if (this.skipping) {
        continue;
      } else if (code === 'P') {
        out.push(msg('1'));
      } else if (code === 'B') {
        out.push(msg('2'));
      } else if (code === 'D') {
        out.push(msg('n'));
      } else if (code === 'E') {
        out.push(C('SELECT 1'));
      } else if (code === 'C') {
        out.push(msg('3'));
      } else if (code === 'H') {
        // nothing
      }
    }
    return Buffer.concat(out);
  }
}

interface Side {
  f: CoreFixture;
  backends: Map<number, Backend>;
  trace: string[];
}

async function side(quick: boolean, pooling: 'session' | 'transaction', weights: number[]): Promise<Side> {
  const f = await makeCore({ weights, pooling, quick, idle: [] });
  return { f, backends: new Map(), trace: [] };
}

/** Sends `read`, then lets each backend answer what it was sent until nothing is left. */
async function step(s: Side, read: Buffer): Promise<void> {
  s.f.send(read);
  for (let round = 0; round < 8; round++) {
    await s.f.settle();
    let any = false;
    for (const [node, conn] of [...s.f.conns.entries()].sort((a, b) => a[0] - b[0])) {
      if (conn.written.length === 0) continue;
      any = true;
      const sent = conn.take();
      s.trace.push(`node ${node} <- ${sent.toString('latin1')}`);
      let be = s.backends.get(conn.backendPid);
      if (be === undefined) s.backends.set(conn.backendPid, (be = new Backend()));
      const ans = be.answer(sent);
      if (ans.length > 0) s.f.answer(node, ans);
    }
    if (!any) break;
  }
  s.trace.push(`client -> ${s.f.received().toString('latin1')}`);
}

for (const pooling of ['session', 'transaction'] as const) {
  for (const weights of [[1, 0, 0], [0, 1, 0]]) { // (one node for reads: the balancing pick is random)
    test(`quick or not, the same bytes everywhere (${pooling} pooling, weights ${weights.join(',')})`, async () => {
      for (const seed of [1, 2, 3]) {
        const quick = await side(true, pooling, weights);
        const full = await side(false, pooling, weights);
        const r = rng(seed * 7919 + weights[0]!);
        for (let i = 0; i < 400; i++) {
          const read = pick(r);
          await step(quick, read);
          await step(full, read);
          assert.equal(quick.trace.join('\n'), full.trace.join('\n'), `seed ${seed}, step ${i}: ${read.toString('latin1')}`);
        }
        const counters = (f: CoreFixture): string => JSON.stringify(f.cluster.nodes.map((n) => n.counters));
        // (Two cores, two clusters: each counts its own.)
        assert.equal(counters(quick.f), counters(full.f));
        assert.ok(quick.f.core.quickForwards > 20, `seed ${seed}: ${quick.f.core.quickForwards} quick`);
        assert.equal(full.f.core.quickForwards, 0);
      }
    });
  }
}
