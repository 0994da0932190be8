/** ServerParams: the version session.ts keys a login connection's encoded greeting on. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ServerParams } from '../../../src/backend/server-connection';

test('the version moves when a value changes, not when the same value is reported again', () => {
  const p = new ServerParams();
  p.set('DateStyle', 'ISO, MDY');
  const v = p.version;
  p.set('DateStyle', 'ISO, MDY');
  assert.equal(p.version, v, 'same value');
  p.set('DateStyle', 'German');
  assert.ok(p.version > v, 'changed value');
  const w = p.version;
  p.set('TimeZone', 'UTC');
  assert.ok(p.version > w, 'new name');
  assert.deepEqual([...p], [['DateStyle', 'German'], ['TimeZone', 'UTC']]);
});
