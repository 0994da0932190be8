/** Tests of the pgpool.conf lexer: separators, quoting, escapes, comments, errors with lines. */
import { strict as assert } from 'node:assert';
import { test } from 'node:test';
import { ConfigError } from '../../../src/config/config-error';
import { parsePgpoolConf } from '../../../src/config/pgpool-conf-parser';

test('key = value, key value, quoted and unquoted values, comments', () => {
  const text = [
    '# comment',
    '',
    'port = 9999',
    'Listen_Addresses \'*\'   # trailing comment',
    "log_line_prefix = 'it''s %m # not a comment'",
    "ssl_key = 'a\\'b\\\\c\\n'",
    'child_life_time=5min',
    '  unix_socket_permissions = 0777',
    "empty = ''",
  ].join('\n');
  const e = parsePgpoolConf(text, 'pgpool.conf');
  assert.deepEqual(e, [
    { key: 'port', value: '9999', line: 3 },
    { key: 'listen_addresses', value: '*', line: 4 },
    { key: 'log_line_prefix', value: "it's %m # not a comment", line: 5 },
    { key: 'ssl_key', value: "a'b\\c\n", line: 6 },
    { key: 'child_life_time', value: '5min', line: 7 },
    { key: 'unix_socket_permissions', value: '0777', line: 8 },
    { key: 'empty', value: '', line: 9 },
  ]);
});

test('CRLF line endings are accepted', () => {
  assert.deepEqual(parsePgpoolConf('a = 1\r\nb = 2\r\n', 'x.conf'), [
    { key: 'a', value: '1', line: 1 },
    { key: 'b', value: '2', line: 2 },
  ]);
});

test('syntax errors are all reported with FILE:LINE', () => {
  const text = "port = 99 99\nok = 1\nbad = 'unterminated\n= 3\nnovalue =\n";
  assert.throws(() => parsePgpoolConf(text, 'pgpool.conf'), (err: unknown) => {
    assert.ok(err instanceof ConfigError);
    const lines = err.message.split('\n');
    assert.equal(lines.length, 4);
    assert.match(lines[0] ?? '', /^pgpool\.conf:1: port: syntax error/);
    assert.match(lines[1] ?? '', /^pgpool\.conf:3: bad: syntax error: unterminated quoted string/);
    assert.match(lines[2] ?? '', /^pgpool\.conf:4: syntax error: expected a parameter name/);
    assert.match(lines[3] ?? '', /^pgpool\.conf:5: novalue: syntax error: missing value/);
    return true;
  });
});
