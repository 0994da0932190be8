/**
 * Plays one slot's script on one side (through pgmaitre, or on direct connections to the primary)
 * with the raw protocol client, and records every server message of every step as normalised
 * text. After sending a step, it reads exactly the answers the step owes: a Query or a Sync up to
 * ReadyForQuery; Parse/Bind/Close/Describe/Execute their own answers unless an error made the
 * server skip to the next Sync. Async messages (NoticeResponse, NotificationResponse,
 * ParameterStatus) are recorded where they arrive.
 */
import * as net from 'node:net';
import { RawClient, type ServerMessage } from '../../harness/raw-client';
import {
  encodeBind, encodeClose, encodeCopyData, encodeCopyDone, encodeCopyFail, encodeDescribe, encodeExecute, encodeFlush,
  encodeParse, encodeQuery, encodeSync, encodeTerminate,
} from '../../../src/protocol/frontend';
import { encodeCancelRequest } from '../../../src/protocol/startup';
import {
  decodeCommandComplete, decodeDataRow, decodeErrorFields, decodeNotification, decodeParameterStatus, decodeRowDescription,
} from '../../../src/protocol/backend';
import type { Msg, SlotScript, Step } from './grammar';

/** Which side a run is on: 'd' direct (the oracle), 'p' through pgmaitre. */
export type Side = 'd' | 'p';

/** Replaces a step's placeholders with the names of this slot on this side. */
export function bindNames(sql: string, side: Side, slot: number): string {
  const k = (side === 'd' ? 100_000 : 200_000) + slot * 2;
  return sql.replaceAll('{t}', `fz${side}${slot}_t`).replaceAll('{ch}', `fz${side}${slot}_ch`)
    .replaceAll('{k2}', String(k + 1)).replaceAll('{k}', String(k));
}

/** Text of a server message with what legitimately differs (pids, side prefixes) normalised. */
export function normalise(m: ServerMessage): string {
  const f = m.frame;
  // side prefixes of shared objects; pids; server-side statement names (pgmaitre renames them: the
  // name in a message is normalised, which name it is is not what the fuzzer compares)
  const side = (s: string): string => s.replace(/fz[dp](\d+)_/g, 'fz$1_').replace(/\bpid \d+/g, 'pid N')
    .replace(/prepared statement "[^"]*"/g, 'prepared statement "<name>"');
  switch (m.type) {
    case 'E': case 'N': {
      const e = decodeErrorFields(f, 0, f.length);
      return `${m.type} ${e.severity ?? ''} ${e.code ?? ''} ${side(e.message ?? '')}${e.detail ? ` (${side(e.detail)})` : ''}`;
    }
    case 'T': return `T ${decodeRowDescription(f, 0, f.length).map((c) => `${c.name}:${c.typeOid}:${c.format}`).join(',')}`;
    case 'D': return `D ${JSON.stringify(decodeDataRow(f, 0, f.length))}`;
    case 'C': return `C ${decodeCommandComplete(f, 0, f.length)}`;
    case 'Z': return `Z ${String.fromCharCode(f[5] ?? 0)}`;
    case 'S': { const p = decodeParameterStatus(f, 0, f.length); return `S ${p.name}=${p.value}`; }
    case 'A': { const n = decodeNotification(f, 0, f.length); return `A ${side(n.channel)} ${n.payload}`; }
    case 'd': return `d ${JSON.stringify(f.subarray(5).toString('utf8'))}`;
    case 't': return `t ${f.subarray(5).toString('hex')}`;
    default: return m.type;
  }
}

/** What one slot saw: per generation, per step, the normalised messages. */
export interface SlotTranscript {
  readonly slot: number;
  /** transcript[g][s] = messages of step s of generation g; a step that failed locally holds `!! reason`. */
  readonly gens: string[][][];
}

/** How a side is reached. */
export interface SideTarget {
  readonly side: Side;
  readonly port: number;
  readonly params: Record<string, string>;
  /** ms to wait for one answer (a small pool and pinned clients make pgmaitre's slower). */
  readonly timeoutMs: number;
  /** The primary's port, to watch pg_stat_activity before a cancel. */
  readonly adminPort: number;
}

let tags = 0;

/** Resolves once a backend runs a query containing `tag` and sleeps in pg_sleep, or the answer came (an aborted transaction), or after timeoutMs. */
async function waitSleeping(adminPort: number, tag: string, timeoutMs: number, answered: () => boolean): Promise<void> {
  const c = await RawClient.connect(adminPort, { user: 'postgres', database: 'postgres' });
  try {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline && !answered()) {
      c.send(encodeQuery(`SELECT count(*) FROM pg_stat_activity WHERE query LIKE '%${tag} %' AND wait_event = 'PgSleep' AND pid <> pg_backend_pid()`));
      const rows = (await c.untilReady(timeoutMs)).filter((m) => m.type === 'D');
      if (rows.length > 0 && decodeDataRow(rows[0]!.frame, 0, rows[0]!.frame.length)[0] !== '0') return;
      await new Promise((r) => setTimeout(r, 50));
    }
  } finally {
    c.close();
  }
}

const ASYNC = new Set(['N', 'A', 'S']);

class StepReader {
  readonly out: string[] = [];
  constructor(private readonly c: RawClient, private readonly timeoutMs: number) {}

  async next(): Promise<ServerMessage> {
    const m = await this.c.next(this.timeoutMs);
    this.out.push(normalise(m));
    return m;
  }

  /** Next non-async message. */
  async main(): Promise<ServerMessage> {
    for (;;) {
      const m = await this.next();
      if (!ASYNC.has(m.type)) return m;
    }
  }

  async untilReady(): Promise<void> {
    for (;;) if ((await this.main()).type === 'Z') return;
  }
}

function frame(m: Exclude<Msg, { k: 'copyIn' }>, side: Side, slot: number, tag: string): Buffer {
  switch (m.k) {
    case 'Q': return encodeQuery(bindNames(m.sql, side, slot).replaceAll('{tag}', tag));
    case 'P': return encodeParse(m.name, bindNames(m.sql, side, slot));
    case 'B': return encodeBind(m.portal, m.stmt, m.params);
    case 'D': return encodeDescribe(m.kind, m.name);
    case 'E': return encodeExecute(m.portal, m.maxRows);
    case 'C': return encodeClose(m.kind, m.name);
    case 'S': return encodeSync();
    case 'H': return encodeFlush();
  }
}

/** Sends one CancelRequest and resolves when the server closed that connection (it has acted on it). */
export function sendCancel(port: number, pid: number, secret: number, timeoutMs = 10_000): Promise<void> {
  return new Promise((resolve) => {
    const s = net.connect({ host: '127.0.0.1', port }, () => s.write(encodeCancelRequest(pid, secret)));
    const done = (): void => { clearTimeout(t); s.destroy(); resolve(); };
    const t = setTimeout(done, timeoutMs);
    s.on('close', done);
    s.on('error', () => undefined);
  });
}

/** Reads the answers `msgs` owe, in order (the client state "errored" skips to Sync like the server). */
async function readAnswers(c: RawClient, r: StepReader, msgs: readonly Msg[], st: { errored: boolean }): Promise<void> {
  for (const m of msgs) {
    switch (m.k) {
      case 'Q': await r.untilReady(); st.errored = false; break;
      case 'S': await r.untilReady(); st.errored = false; break;
      case 'H': break;
      case 'copyIn': {
        for (;;) {
          const a = await r.main();
          if (a.type === 'G') {
            c.send(...m.rows.map((row) => encodeCopyData(row)), m.fail ? encodeCopyFail('fz abort') : encodeCopyDone());
          } else if (a.type === 'Z') break;
        }
        st.errored = false;
        break;
      }
      default: {
        if (st.errored) break;
        const want = m.k === 'P' ? '1' : m.k === 'B' ? '2' : m.k === 'C' ? '3' : '';
        if (want !== '') {
          const a = await r.main();
          if (a.type === 'E') st.errored = true;
          else if (a.type !== want) throw new Error(`expected '${want}' for ${m.k}, got '${a.type}'`);
        } else if (m.k === 'D') {
          let a = await r.main();
          if (a.type === 'E') { st.errored = true; break; }
          if (m.kind === 'S') {
            if (a.type !== 't') throw new Error(`expected 't' for Describe S, got '${a.type}'`);
            a = await r.main();
            if (a.type === 'E') { st.errored = true; break; }
          }
          if (a.type !== 'T' && a.type !== 'n') throw new Error(`expected 'T' or 'n' for Describe, got '${a.type}'`);
        } else {
          // Execute: rows until CommandComplete, EmptyQueryResponse, PortalSuspended or an error
          for (;;) {
            const a = await r.main();
            if (a.type === 'E') { st.errored = true; break; }
            if (a.type === 'C' || a.type === 'I' || a.type === 's') break;
            if (a.type === 'G' || a.type === 'H') throw new Error(`COPY through Execute is not in the grammar (got '${a.type}')`);
          }
        }
      }
    }
  }
}

/** Plays a slot's script on one side; never throws (a local failure is recorded in the transcript). */
export async function playSlot(script: SlotScript, target: SideTarget): Promise<SlotTranscript> {
  const { port } = target;
  const slot = script.slot;
  const gens: string[][][] = [];
  for (const gen of script.generations) {
    const steps: string[][] = [];
    gens.push(steps);
    let c: RawClient;
    try {
      c = await RawClient.connect(port, target.params);
    } catch (e) {
      steps.push([`!! login failed: ${(e as Error).message}`]);
      continue;
    }
    const st = { errored: false };
    let ended = false;
    for (const s of gen.steps) {
      const r = new StepReader(c, target.timeoutMs);
      try {
        ended = await playStep(c, r, s, target, slot, st);
        steps.push(r.out);
      } catch (e) {
        steps.push([...r.out, `!! ${(e as Error).message}`]);
        ended = true;
      }
      if (ended) break;
    }
    if (!ended) {
      c.send(encodeTerminate());
      try { await c.waitClosed(target.timeoutMs); } catch { /* recorded below only if it matters */ }
    }
    c.close();
  }
  return { slot, gens };
}

async function playStep(c: RawClient, r: StepReader, s: Step, target: SideTarget, slot: number, st: { errored: boolean }): Promise<boolean> {
  const { side, port } = target;
  const tag = `fzc_${side}${slot}_${++tags}`;
  const bufs: Buffer[] = [];
  for (const m of s.msgs) {
    if (m.k === 'copyIn') {
      // send what precedes, then the COPY query; its data follows CopyInResponse (readAnswers)
      bufs.push(encodeQuery(bindNames(m.sql, side, slot)));
    } else {
      bufs.push(frame(m, side, slot, tag));
    }
  }
  if (bufs.length > 0) c.send(...bufs);
  switch (s.mode) {
    case 'disconnect':
      c.close();
      return true;
    case 'cancel-disconnect':
      // the query has (probably) started; a cancel is sent and the client leaves at once
      await new Promise((res) => setTimeout(res, 50));
      void sendCancel(port, c.pid, c.secret);
      c.close();
      return true;
    case 'cancel': {
      // cancel, each cancel complete before the next, until the error (or the end) arrives
      let stop = false;
      const reading = (async () => {
        for (;;) {
          const m = await r.main();
          if (m.type === 'E') stop = true;
          if (m.type === 'Z') { stop = true; return; }
        }
      })();
      reading.catch(() => { stop = true; });
      await waitSleeping(target.adminPort, tag, target.timeoutMs, () => stop);
      for (let i = 0; i < 200 && !stop; i++) {
        await sendCancel(port, c.pid, c.secret);
        await Promise.race([reading.catch(() => undefined), new Promise((res) => setTimeout(res, 300))]);
      }
      await reading;
      st.errored = false;
      return false;
    }
    default:
      await readAnswers(c, r, s.msgs, st);
      return false;
  }
}
