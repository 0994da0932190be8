/**
 * SessionState.replayFor (transaction pooling): what a leased connection needs to carry this
 * client's settings. A connection coming from another client with the same settings needs
 * nothing and gets nothing built (issue 17, item 9: this runs on nearly every lease once clients
 * outnumber the connections); a different one gets the differences; an unknown one a full reset.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { SessionState, type AppliedState } from '../../../src/core/session-state';

function conn(): AppliedState {
  return { applied: new Map(), appliedVersion: -1, appliedOwner: null };
}

function client(sets: string[], base: [string, string][] = [['application_name', "SET application_name = 'pgbench'"]]): SessionState {
  const s = new SessionState();
  s.setBase(new Map(base));
  if (sets.length > 0) {
    s.stage(sets.map((text) => ({ kind: 'set' as const, name: text.split(' ')[1]!, value: null, text })));
    s.commit(null, s);
  }
  return s;
}

test('a connection left by a client with the same settings: nothing sent, its applied map kept as is', () => {
  const a = client([]);
  const b = client([]);
  const c = conn();
  assert.deepEqual([...a.replayFor(c, a)], ["SET application_name = 'pgbench'"]);
  const applied = c.applied;
  for (let i = 0; i < 100; i++) {
    const who = i % 2 === 0 ? b : a;
    assert.deepEqual([...who.replayFor(c, who)], [], 'same settings: nothing to replay');
    assert.equal(c.applied, applied, 'and no new map built for the connection');
    assert.equal(c.appliedOwner, who);
  }
});

test('differences are replayed, and an unknown connection gets a full reset first', () => {
  const a = client(['SET work_mem = 64kB']);
  const b = client([]);
  const c = conn();
  assert.deepEqual([...a.replayFor(c, a)], ["SET application_name = 'pgbench'", 'SET work_mem = 64kB']);
  assert.deepEqual([...b.replayFor(c, b)], ['RESET work_mem']);
  assert.deepEqual([...a.replayFor(c, a)], ['SET work_mem = 64kB']);
  assert.deepEqual([...a.replayFor(c, a)], [], 'the same owner and version: nothing');
  c.applied = null;
  assert.deepEqual([...b.replayFor(c, b)], ['RESET ALL', 'RESET ROLE', 'RESET SESSION AUTHORIZATION', "SET application_name = 'pgbench'"]);
  // A SET committed later changes what the connection needs.
  b.stage([{ kind: 'set', name: 'work_mem', value: null, text: 'SET work_mem = 1MB' }]);
  b.commit(null, b);
  assert.deepEqual([...b.replayFor(c, b)], ['SET work_mem = 1MB']);
});
