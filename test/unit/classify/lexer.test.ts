/** Lexer: token kinds, quoting constructs, and safety under every truncation of them. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { K, Tok, TokenBuffer, firstKeyword, lex } from '../../../src/classify/lexer';

function kinds(sql: string): number[] {
  const b = new TokenBuffer(2);
  assert.ok(lex(sql, b), `lex failed: ${sql}`);
  return Array.from(b.kind.subarray(0, b.count));
}

test('token kinds', () => {
  assert.deepEqual(kinds('SELECT a.b, $1 FROM t;'), [Tok.Word, Tok.Word, Tok.Dot, Tok.Word, Tok.Comma, Tok.Param, Tok.Word, Tok.Word, Tok.Semi]);
  assert.deepEqual(kinds("x::int[] 'a' \"q\" 1.5e3 ( )"), [Tok.Word, Tok.TypeCast, Tok.Word, Tok.LBracket, Tok.RBracket, Tok.String, Tok.QIdent, Tok.Number, Tok.LParen, Tok.RParen]);
  assert.deepEqual(kinds('a->>b @> c'), [Tok.Word, Tok.Op, Tok.Word, Tok.Op, Tok.Word]);
  assert.deepEqual(kinds('1--1'), [Tok.Number]);
  assert.deepEqual(kinds('2+/*c*/3'), [Tok.Number, Tok.Op, Tok.Number]);
  assert.deepEqual(kinds('a$b $1'), [Tok.Word, Tok.Param]);
});

test('keywords match case-insensitively without allocation', () => {
  const b = new TokenBuffer();
  lex('SeLeCt "select" selects', b);
  assert.equal(b.kwAt(0), K.select);
  assert.equal(b.kwAt(1), 0); // quoted identifier is never a keyword
  assert.equal(b.kwAt(2), 0);
});

test('identifiers: folded unless quoted, "" unescaped', () => {
  const b = new TokenBuffer();
  lex('FooBar "Foo""Bar" U&"x"', b);
  assert.equal(b.ident(0), 'foobar');
  assert.equal(b.ident(1), 'Foo"Bar');
  assert.equal(b.ident(2), 'x');
});

/** Constructs whose content hides a write; the lexer must see one opaque token. */
const CONSTRUCTS = [
  "'a; DELETE FROM t'",
  "'it''s; DELETE FROM t'",
  "E'it\\'s; DELETE FROM t'",
  "e'\\\\'",
  "$$ ; DELETE FROM t; $$",
  "$tag$ $$ ; DELETE FROM t $x$ $tag$",
  '"a; DELETE FROM t"',
  '"a"";DELETE"',
  "U&'a; DELETE'",
  "B'1010'",
  "X'ff'",
  "N'a; DELETE'",
];

test('each quoting construct is a single token', () => {
  for (const c of CONSTRUCTS) {
    const b = new TokenBuffer();
    assert.ok(lex(`SELECT ${c} AS x`, b), c);
    assert.equal(b.count, 4, c);
    assert.equal(b.text(1), c);
  }
});

test('comments are skipped, nested comments nest', () => {
  assert.deepEqual(kinds('/* a /* b */ DELETE */ SELECT 1'), [Tok.Word, Tok.Number]);
  assert.deepEqual(kinds('-- DELETE\nSELECT 1 -- x'), [Tok.Word, Tok.Number]);
  assert.deepEqual(kinds('SELECT 1 -- x\r;'), [Tok.Word, Tok.Number, Tok.Semi]);
});

test('every truncation of a quoting construct either fails or hides its content', () => {
  for (const c of CONSTRUCTS.concat(['/* x /* DELETE */ y */', '-- DELETE\n'])) {
    for (let k = 1; k < c.length; k++) {
      const sql = `SELECT ${c.slice(0, k)}`;
      const b = new TokenBuffer();
      if (!lex(sql, b)) {
        assert.ok(b.error);
        continue;
      }
      for (let i = 0; i < b.count; i++) {
        assert.notEqual(b.kwAt(i), K.delete, `split ${k} of ${c} exposed DELETE`);
      }
    }
  }
});

test('unterminated constructs set error', () => {
  for (const s of ["'x", '"x', '/* x', '/* /* */', '$$ x', '$a$ x $b$', "E'\\'"]) {
    const b = new TokenBuffer();
    assert.equal(lex(s, b), false, s);
    assert.ok(b.error, s);
  }
});

test('leading white space, comments and NO LOAD BALANCE are noticed', () => {
  const b = new TokenBuffer();
  lex('  SELECT 1', b);
  assert.ok(b.leadingSpace && !b.leadingComment);
  lex('/*NO LOAD BALANCE*/ SELECT 1', b);
  assert.ok(b.leadingComment && b.noLoadBalance);
  lex('SELECT 1 /* NO LOAD BALANCE */', b);
  assert.ok(!b.leadingComment && !b.noLoadBalance);
  lex("SELECT 'a\\'", b);
  assert.ok(b.backslashInString);
});

test('the token buffer grows', () => {
  const b = new TokenBuffer(1);
  lex('SELECT ' + Array.from({ length: 500 }, (_, i) => `c${i}`).join(', ') + ' FROM t', b);
  assert.equal(b.count, 1 + 500 + 499 + 2);
});

test('firstKeyword', () => {
  assert.equal(firstKeyword('  /* x */ -- y\n ((SeLeCt 1))'), 'select');
  assert.equal(firstKeyword('INSERT INTO t'), 'insert');
  assert.equal(firstKeyword(''), '');
  assert.equal(firstKeyword("'x'"), '');
});
