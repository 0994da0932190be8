/**
 * Protocol 3.2 (PostgreSQL 18) through pgmaitre: a client asking for 3.2 gets what PostgreSQL
 * itself answers. The backends here are PostgreSQL 15, which speak 3.0: PostgreSQL answers a
 * 3.2 StartupMessage (and unknown `_pq_.` options) with NegotiateProtocolVersion (newest minor it
 * supports: 3.0, and the options it does not know) before authentication, then carries on in 3.0
 * with a 4-byte cancel key. A raw client asks the same of PostgreSQL directly and of pgmaitre,
 * and the answers are compared message by message (NegotiateProtocolVersion byte for byte).
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { freePort, withCluster } from '../harness/cluster';
import { backendLines, startInProcess, type InProcess } from '../harness/in-process';
import { RawClient, types, type ServerMessage } from '../harness/raw-client';
import { encodeCancelRequest, encodeStartupMessage } from '../../src/protocol/startup';
import { decodeBackendKeyData } from '../../src/protocol/backend';
import { encodeQuery } from '../../src/protocol/frontend';

/** Logs in with a StartupMessage of protocol 3.`minor`; returns every message up to ReadyForQuery (or the error). */
async function startup(port: number, minor: number, extra: Record<string, string> = {}): Promise<{ c: RawClient; msgs: ServerMessage[] }> {
  const c = await RawClient.open(port);
  c.send(encodeStartupMessage({ user: 'postgres', database: 'postgres', ...extra }, { major: 3, minor }));
  const msgs: ServerMessage[] = [];
  for (;;) {
    const m = await c.next(10_000);
    msgs.push(m);
    if (m.type === 'Z' || m.type === 'E') return { c, msgs };
  }
}

/** The message types of a login, ParameterStatus runs collapsed (their order and count differ). */
function shape(ms: readonly ServerMessage[]): string {
  return types(ms).replace(/S+/g, 'S');
}

describe('protocol 3.2 through pgmaitre against PostgreSQL 15', { timeout: 180_000 }, () => {
  const fx = withCluster({ standbys: 0 });
  let px: InProcess;
  let writePort: number;
  before(async () => {
    writePort = await freePort();
    px = await startInProcess(`${backendLines(fx.cluster)}\nsr_check_user = 'postgres'\nwrite_port = ${writePort}\n`);
  });
  after(async () => { await px?.stop(); });

  test('the dedicated write port answers a 3.2 StartupMessage as PostgreSQL does too', async () => {
    const extra = { '_pq_.test_option': 'on' };
    const direct = await startup(fx.cluster.primary.port, 2, extra);
    const relayed = await startup(writePort, 2, extra);
    try {
      assert.equal(shape(relayed.msgs), shape(direct.msgs), `direct ${types(direct.msgs)} vs write port ${types(relayed.msgs)}`);
      assert.equal(relayed.msgs[0]!.frame.toString('hex'), direct.msgs[0]!.frame.toString('hex'));
      relayed.c.send(encodeQuery('SELECT 1'));
      assert.equal(types(await relayed.c.untilReady()), 'TDCZ');
    } finally {
      direct.c.close();
      relayed.c.close();
    }
  });

  test('a 3.2 CancelRequest with a 32-byte key (PostgreSQL 18\'s) is read and harms nothing', async () => {
    const s = await startup(px.port, 0);
    try {
      const cc = await RawClient.open(px.port);
      const key = Buffer.alloc(32, 7);
      cc.send(encodeCancelRequest(Number(s.c.pid || 1), key));
      await cc.waitClosed(5000); // closed without a word, as PostgreSQL does
      s.c.send(encodeQuery('SELECT 1'));
      assert.equal(types(await s.c.untilReady()), 'TDCZ');
    } finally {
      s.c.close();
    }
  });

  for (const [what, minor, extra] of [
    ['a 3.2 StartupMessage', 2, {}],
    ['a 3.2 StartupMessage with an unknown _pq_ option', 2, { '_pq_.test_option': 'on' }],
    ['a 3.0 StartupMessage with an unknown _pq_ option', 0, { '_pq_.test_option': 'on' }],
    ['a 3.0 StartupMessage', 0, {}],
  ] as const) {
    test(`${what}: the same answer as PostgreSQL's`, async () => {
      const direct = await startup(fx.cluster.primary.port, minor, extra);
      const proxied = await startup(px.port, minor, extra);
      try {
        assert.equal(shape(proxied.msgs), shape(direct.msgs), `direct ${types(direct.msgs)} vs pgmaitre ${types(proxied.msgs)}`);
        const dv = direct.msgs.filter((m) => m.type === 'v');
        const pv = proxied.msgs.filter((m) => m.type === 'v');
        assert.deepEqual(pv.map((m) => m.frame.toString('hex')), dv.map((m) => m.frame.toString('hex')));
        // The session works in 3.0 afterwards, with a 4-byte cancel key as PostgreSQL 15 gives.
        const k = proxied.msgs.find((m) => m.type === 'K')!;
        assert.equal(k.frame.length, 1 + 4 + 4 + 4);
        proxied.c.send(encodeQuery('SELECT 1'));
        assert.equal(types(await proxied.c.untilReady()), 'TDCZ');
        // And its cancel key cancels (the key pgmaitre gave, in a 16-byte CancelRequest).
        const key = decodeBackendKeyData(k.frame, 0, k.frame.length);
        proxied.c.send(encodeQuery('SELECT pg_sleep(30)'));
        await new Promise((r) => setTimeout(r, 300));
        const cc = await RawClient.open(px.port);
        cc.send(encodeCancelRequest(key.pid, key.secret));
        const answer = await proxied.c.untilReady(20_000);
        assert.ok(answer.some((m) => m.type === 'E' && m.error?.code === '57014'), types(answer));
        cc.close();
      } finally {
        direct.c.close();
        proxied.c.close();
      }
    });
  }
});
