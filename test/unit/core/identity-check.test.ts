/** identity-check.ts: a Sync to the client's own backend after a pg_terminate_backend() went through pgmaitre; no core, no socket. */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { IdentityCheck, identityUnsure, noteTermination, type IdentitySession } from '../../../src/core/identity-check';
import { ExpectKind, Link } from '../../../src/core/link';
import { FakeConn } from './core-harness';

function session(pooling: 'session' | 'transaction' = 'session') {
  const links = [new Link(0), new Link(1)];
  links[0]!.conn = new FakeConn(0, 100);
  links[1]!.conn = new FakeConn(1, 101);
  const sent: number[] = [];
  const s: IdentitySession = {
    host: { pooling },
    links,
    identityNode: 0,
    identity: new IdentityCheck(),
    send: (l) => { sent.push(l.node); },
  };
  return { s, links, sent };
}

describe('identityUnsure', () => {
  test('nothing terminated since the session last looked: the request goes on', () => {
    const { s, sent } = session();
    assert.equal(identityUnsure(s, 1), false);
    assert.deepEqual(sent, []);
  });
  test('after a termination, a request for another node waits for a Sync on the own backend', () => {
    const { s, links, sent } = session();
    noteTermination();
    assert.equal(identityUnsure(s, 0), false, 'a request for the own backend needs no check');
    assert.equal(identityUnsure(s, 1), true);
    assert.deepEqual(sent, [0]);
    assert.equal(links[0]!.head!.kind, ExpectKind.Cleanup);
    assert.equal(identityUnsure(s, 1), true, 'waits while the Sync is unanswered');
    links[0]!.drain();
    assert.equal(identityUnsure(s, 1), false, 'answered: alive');
    assert.deepEqual(sent, [0]);
  });
  test('transaction pooling never checks', () => {
    const { s, sent } = session('transaction');
    noteTermination();
    assert.equal(identityUnsure(s, 1), false);
    assert.deepEqual(sent, []);
  });
  test('an own backend in an open extended-protocol sequence is not interrupted', () => {
    const { s, links } = session();
    links[0]!.unsynced = true;
    noteTermination();
    assert.equal(identityUnsure(s, 1), false);
  });
});
