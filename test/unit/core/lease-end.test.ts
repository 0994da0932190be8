/** lease-end.ts: every way a lease ends, each asking leaseFate; driven with no core and no socket. */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { cancelQueries, closeLeases, endLeases, releaseIdle, tempProbed, type LeaseEndSession } from '../../../src/core/lease-end';
import { Pins, pinReasonOf, TEMP_PROBE } from '../../../src/core/tx-pooling';
import { SessionState } from '../../../src/core/session-state';
import { ExpectKind, Link, Term } from '../../../src/core/link';
import { newRouteState } from '../../../src/router/router';
import { TxStatus } from '../../../src/protocol/codes';
import { FakeConn } from './core-harness';

function session(o: { pooling?: 'session' | 'transaction'; cancelTaken?: Promise<void> } = {}) {
  const link = new Link(0);
  link.conn = new FakeConn(0, 100);
  const closed: { reusable: boolean; why: string; reset: boolean }[] = [];
  const pinned: string[] = [];
  const cancels: number[] = [];
  const sent: Buffer[] = [];
  const state = new SessionState();
  let drives = 0;
  const s: LeaseEndSession & { state: SessionState } = {
    host: {
      pooling: o.pooling ?? 'transaction',
      cluster: { primaryId: () => 0 },
      pinned: (why: string) => { pinned.push(why); },
      closeLink: (_c: unknown, reusable: boolean, why: string, reset = false) => { closed.push({ reusable, why, reset }); },
      cancelBackend: async (_n: number, pid: number) => { cancels.push(pid); await o.cancelTaken; },
    } as unknown as LeaseEndSession['host'],
    links: [link],
    pins: new Pins(),
    route: newRouteState(),
    state,
    closed: false,
    pinnedFor: '',
    cancelling: new Map(),
    stateLost: new Set(),
    copyLink: null,
    stickyNode: -1,
    cancelInFlight: (l) => s.cancelling.has(l),
    pinReason: () => pinReasonOf(s.pins, state),
    connected: function* () { if (link.conn !== null) yield link; },
    send: (_l, b) => { sent.push(b); },
    flush: () => {},
    drive: () => { drives++; },
    guard: (fn) => fn(),
  };
  return { s, link, closed, pinned, cancels, sent, drives: () => drives };
}

const tick = () => new Promise((r) => setImmediate(r));

describe('releaseIdle', () => {
  test('a connection at rest goes back clean at the end of its transaction', () => {
    const { s, link, closed } = session();
    releaseIdle(s);
    assert.equal(link.conn, null);
    assert.deepEqual(closed, [{ reusable: true, why: '', reset: false }]);
  });
  test('one inside a transaction stays; session pooling never gives back here', () => {
    const a = session();
    a.link.txStatus = TxStatus.InTransaction;
    releaseIdle(a.s);
    assert.notEqual(a.link.conn, null);
    const b = session({ pooling: 'session' });
    releaseIdle(b.s);
    assert.notEqual(b.link.conn, null);
  });
  test('a pinned session keeps its connections; the pin is reported once, and its end too', () => {
    const { s, link, pinned, closed } = session();
    s.state.listening.add('ch');
    releaseIdle(s);
    releaseIdle(s);
    assert.deepEqual(pinned, ['LISTEN']);
    assert.notEqual(link.conn, null);
    s.state.listening.clear();
    releaseIdle(s);
    assert.deepEqual(pinned, ['LISTEN', '']);
    assert.equal(closed.length, 1);
  });
  test('pinned only by temporary relations after a DROP: the probe asks, and an empty answer lifts the pin', () => {
    const { s, link, sent } = session();
    s.pins.temp = true;
    s.pins.tempProbeDue = true;
    releaseIdle(s);
    assert.equal(sent.length, 1);
    assert.ok(sent[0]!.toString('latin1').includes(TEMP_PROBE));
    assert.equal(s.pins.tempProbeDue, false);
    const e = link.head!;
    assert.equal(e.kind, ExpectKind.Probe);
    e.rows = 0;
    tempProbed(s, e);
    assert.equal(s.pins.temp, false);
    assert.equal(pinReasonOf(s.pins, s.state), '');
  });
  test('a temporary table created after the probe was sent keeps the pin', () => {
    const { s, link } = session();
    s.pins.temp = true;
    s.pins.tempProbeDue = true;
    releaseIdle(s);
    const e = link.head!;
    s.pins.tempGeneration++;
    e.rows = 0;
    tempProbed(s, e);
    assert.equal(s.pins.temp, true);
  });
});

describe('endLeases', () => {
  test('a request in flight: the query is cancelled and the connection closed', () => {
    const { s, link, closed, cancels } = session();
    link.expect(ExpectKind.Client, false, 0, Term.Query);
    endLeases(s);
    assert.deepEqual(cancels, [100]);
    assert.equal(closed.length, 1);
    assert.equal(closed[0]!.reusable, false);
  });
  test('at rest but pinned (or its settings lost): back after a reset', () => {
    const a = session();
    a.s.state.advisoryHeld = true;
    endLeases(a.s);
    assert.deepEqual(a.closed, [{ reusable: true, why: '', reset: true }]);
    const b = session();
    b.s.stateLost.add(b.link);
    endLeases(b.s);
    assert.deepEqual(b.closed, [{ reusable: true, why: '', reset: true }]);
    assert.equal(b.s.stateLost.size, 0);
  });
  test('a cancel on its way: held until the server took it, then given back if at rest', async () => {
    let taken!: () => void;
    const { s, link, closed } = session();
    s.cancelling.set(link, new Promise<void>((r) => { taken = r; }));
    endLeases(s);
    assert.equal(link.conn, null);
    await tick();
    assert.equal(closed.length, 0, 'held while the cancel is on its way');
    taken();
    await tick();
    assert.deepEqual(closed, [{ reusable: true, why: '', reset: false }]);
  });
});

describe('cancelQueries', () => {
  test('cancels the query being answered once, holds the connection meanwhile, then drives again', async () => {
    let taken!: () => void;
    const { s, link, cancels, drives } = session({ cancelTaken: new Promise<void>((r) => { taken = r; }) });
    link.expect(ExpectKind.Client, false, 0, Term.Query);
    cancelQueries(s);
    cancelQueries(s);
    assert.deepEqual(cancels, [100]);
    assert.equal(s.cancelInFlight(link), true);
    taken();
    await tick();
    await tick();
    assert.equal(s.cancelInFlight(link), false);
    assert.equal(drives(), 1);
  });
  test('nothing owed to the client: nothing to cancel', () => {
    const { s, cancels } = session();
    cancelQueries(s);
    assert.deepEqual(cancels, []);
  });
});

describe('closeLeases', () => {
  test('after an internal error every connection is closed, never given back, even one inside a transaction or pinned', () => {
    const { s, link, closed } = session();
    link.txStatus = TxStatus.InTransaction;
    s.state.listening.add('ch');
    closeLeases(s, 'session 7 ended after an internal error');
    assert.equal(link.conn, null);
    assert.deepEqual(closed, [{ reusable: false, why: 'session 7 ended after an internal error', reset: false }]);
    closeLeases(s, 'again');
    assert.equal(closed.length, 1, 'a link with no connection is left alone');
  });
  test('the connection is closed even when resetting its link throws', () => {
    const { s, link, closed } = session();
    link.reset = () => { throw new Error('bug'); };
    assert.throws(() => closeLeases(s, 'crash'), /bug/);
    assert.equal(link.conn, null);
    assert.deepEqual(closed, [{ reusable: false, why: 'crash', reset: false }]);
  });
});
