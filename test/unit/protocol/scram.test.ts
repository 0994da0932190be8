/**
 * SCRAM-SHA-256 against RFC 7677's published exchange and verifiers produced by a real
 * PostgreSQL 15 (CREATE ROLE ... PASSWORD with password_encryption=scram-sha-256), plus client
 * ↔ server sessions, ClientKey pass-through and malformed input.
 */

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  ScramClientSession,
  ScramError,
  ScramServerSession,
  parseScramVerifier,
  saslprep,
  scramVerifier,
} from '../../../src/protocol/auth/scram';

// RFC 7677 section 3: user "user", password "pencil".
const RFC = {
  clientNonce: 'rOprNGfwEbeRWgbNEkqO',
  serverNonce: '%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0',
  salt: 'W22ZaJ0SNY7soEsUEjb6gQ==',
  clientFirst: 'n,,n=user,r=rOprNGfwEbeRWgbNEkqO',
  serverFirst: 'r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096',
  clientFinal: 'c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=',
  serverFinal: 'v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=',
};

// pg_authid.rolpassword from PostgreSQL 15.
const PG_VERIFIERS: [string, string][] = [
  ['pencil', 'SCRAM-SHA-256$4096:kzhlcVdAv/1h/2oRLUWKlw==$IfI5dLj8noeYwaqtknosMEz3SZo54LmcAC6/KfIPqq4=:vvsWasyGKYVtAkGWV87FS4VTZpd93I0CD2NAAprs9zY='],
  // U+00A0 no-break space → ' '
  ['a\u00A0b', 'SCRAM-SHA-256$4096:XjjmAZqxXYeNAen2gWu86g==$FVHlaDAK8hv0KWwTDna34hpoqH1/tJr8n3x/qGpxpDI=:8GYK91GsCtxUJnpRA0gq2+HyYhuBJnE7U3RjSIT7hig='],
  // combining acute accent → NFKC composes 'é'
  ['e\u0301t\u00E9', 'SCRAM-SHA-256$4096:XpijdUv4KvvY7tc69hp8mw==$TbfHE4wWfKDMYyE6eaxydK3h2BY9Ynr9DOn1GabymK8=:smphJ7DpA/ZuCOWStzxM8mMBrjeA8FMrFNawGLB2J5E='],
  // soft hyphen removed, 'ﬁ' ligature → 'fi'
  ['x\u00ADy\uFB01', 'SCRAM-SHA-256$4096:Y8goqekFogLQYZnzNxUzvA==$oqvoJuOUdR9enXYP9Ddyz47qdMesxIW30ZuKzorH/Cw=:RwzclIWY7g6Ru8nI/94YmjJhgNY6i0Avcy5dtC2lRe4='],
  // prohibited control character in a non-ASCII password → raw bytes are used
  ['bad\u0007\u00E9', 'SCRAM-SHA-256$4096:Bs3JMwaEooOf4brampcfqg==$acWY+7f+y2LXSBRECWgw+xPTVRDTYA8slB9Wlw0ouZY=:UzPdOnd0A+2k35o1bu89ZlWVpYiH/XpBoUsXyD0TTN8='],
];

function exchange(server: ScramServerSession, client: ScramClientSession) {
  const sf = server.serverFirst(client.clientFirst());
  const result = server.serverFinal(client.clientFinal(sf));
  return { result, clientOk: result.ok ? client.verifyServerFinal(result.serverFinal as string) : false };
}

describe('SCRAM-SHA-256: RFC 7677 test vector', () => {
  it('client side produces the published messages', () => {
    const c = new ScramClientSession({ password: 'pencil' }, { clientNonce: RFC.clientNonce, username: 'user' });
    assert.equal(c.clientFirst(), RFC.clientFirst);
    assert.equal(c.clientFinal(RFC.serverFirst), RFC.clientFinal);
    assert.equal(c.verifyServerFinal(RFC.serverFinal), true);
    assert.equal(c.serverVerified, true);
  });

  it('server side produces the published messages and recovers ClientKey', () => {
    const s = ScramServerSession.fromPassword('pencil', { salt: Buffer.from(RFC.salt, 'base64'), iterations: 4096, serverNonce: RFC.serverNonce });
    assert.equal(s.serverFirst(RFC.clientFirst), RFC.serverFirst);
    const r = s.serverFinal(RFC.clientFinal);
    assert.equal(r.ok, true);
    assert.equal(r.serverFinal, RFC.serverFinal);
    assert.equal(r.clientKey?.length, 32);
  });

  it('client rejects a forged server signature', () => {
    const c = new ScramClientSession({ password: 'pencil' }, { clientNonce: RFC.clientNonce, username: 'user' });
    c.clientFirst();
    c.clientFinal(RFC.serverFirst);
    assert.equal(c.verifyServerFinal('v=' + Buffer.alloc(32).toString('base64')), false);
  });
});

describe('SCRAM-SHA-256: PostgreSQL verifiers', () => {
  it('scramVerifier reproduces PostgreSQL 15 verifiers (incl. SASLprep cases)', () => {
    for (const [password, verifier] of PG_VERIFIERS) {
      const secret = parseScramVerifier(verifier);
      assert.ok(secret);
      assert.equal(scramVerifier(password, secret.salt, secret.iterations), verifier, JSON.stringify(password));
    }
  });

  it('a server session from a PostgreSQL verifier accepts the right password only', () => {
    const [password, verifier] = PG_VERIFIERS[0] as [string, string];
    const ok = exchange(ScramServerSession.fromVerifier(verifier), new ScramClientSession({ password }));
    assert.equal(ok.result.ok, true);
    assert.equal(ok.clientOk, true);
    const bad = exchange(ScramServerSession.fromVerifier(verifier), new ScramClientSession({ password: 'pencil2' }));
    assert.deepEqual(bad.result, { ok: false });
  });

  it('verifier format: random salt, 4096 iterations, parse ∘ format', () => {
    const v = scramVerifier('x');
    assert.match(v, /^SCRAM-SHA-256\$4096:[A-Za-z0-9+/]{22}==\$[A-Za-z0-9+/]{43}=:[A-Za-z0-9+/]{43}=$/);
    assert.notEqual(scramVerifier('x'), v);
    assert.equal(parseScramVerifier('md54d45974e13472b5a0be3533de4666414'), null);
    assert.equal(parseScramVerifier('SCRAM-SHA-256$0:c2FsdA==$AAAA:AAAA'), null);
    assert.throws(() => ScramServerSession.fromVerifier('md5abc'), ScramError);
  });

  it('saslprep: ASCII untouched, invalid UTF-8 passed through as raw bytes', () => {
    assert.deepEqual(saslprep('pencil'), Buffer.from('pencil'));
    assert.deepEqual(saslprep('tab\there'), Buffer.from('tab\there'));
    const invalid = Buffer.from([0x70, 0xff, 0xfe]);
    assert.deepEqual(saslprep(invalid), invalid);
    assert.deepEqual(saslprep('\u2168'), Buffer.from('IX')); // Roman numeral nine, NFKC
  });
});

describe('SCRAM-SHA-256: sessions', () => {
  it('client ↔ server round trip from a cleartext password; wrong password → ok:false', () => {
    const good = exchange(ScramServerSession.fromPassword('s3cret ✓'), new ScramClientSession({ password: 's3cret ✓' }));
    assert.equal(good.result.ok, true);
    assert.equal(good.clientOk, true);
    const bad = exchange(ScramServerSession.fromPassword('s3cret'), new ScramClientSession({ password: 'S3cret' }));
    assert.equal(bad.result.ok, false);
    assert.equal(bad.result.serverFinal, undefined);
    assert.equal(bad.result.clientKey, undefined);
  });

  it('ClientKey pass-through: a recovered ClientKey logs in to a second server with the same verifier', () => {
    const verifier = scramVerifier('hunter2');
    const front = exchange(ScramServerSession.fromVerifier(verifier), new ScramClientSession({ password: 'hunter2' }));
    assert.equal(front.result.ok, true);
    const clientKey = front.result.clientKey as Buffer;

    const backend = ScramServerSession.fromVerifier(verifier);
    const proxyClient = new ScramClientSession({ clientKey });
    const r = exchange(backend, proxyClient);
    assert.equal(r.result.ok, true);
    assert.equal(r.clientOk, true, 'format-only acceptance without ServerKey');
    assert.equal(proxyClient.serverVerified, false);

    const withServerKey = new ScramClientSession({ clientKey, serverKey: parseScramVerifier(verifier)?.serverKey as Buffer });
    const r2 = exchange(ScramServerSession.fromVerifier(verifier), withServerKey);
    assert.equal(r2.clientOk, true);
    assert.equal(withServerKey.serverVerified, true);
  });

  it('libpq-style client-first (empty user) and y,, flag are accepted', () => {
    const s = ScramServerSession.fromPassword('p', { serverNonce: 'SRV' });
    assert.equal(s.serverFirst('y,,n=,r=abc').startsWith('r=abcSRV,s='), true);
  });

  it('malformed and unsupported client messages throw ScramError', () => {
    const first = (msg: string) => () => ScramServerSession.fromPassword('p', { iterations: 1 }).serverFirst(msg);
    assert.throws(first('p=tls-server-end-point,,n=,r=abc'), (e: unknown) => e instanceof ScramError && e.code === 'unsupported');
    assert.throws(first('n,a=admin,n=,r=abc'), (e: unknown) => e instanceof ScramError && e.code === 'unsupported');
    assert.throws(first('n,,m=ext,n=,r=abc'), (e: unknown) => e instanceof ScramError && e.code === 'unsupported');
    assert.throws(first('x,,n=,r=abc'), ScramError);
    assert.throws(first('n,,n='), ScramError);
    assert.throws(first('n,,n=,r=a,b'), ScramError);
    assert.throws(first('garbage'), ScramError);
    assert.throws(first(''), ScramError);

    const setup = () => {
      const s = ScramServerSession.fromPassword('p', { iterations: 1, serverNonce: 'SRV' });
      s.serverFirst('n,,n=,r=abc');
      return s;
    };
    assert.throws(() => setup().serverFinal('c=biws,r=abcWRONG,p=' + Buffer.alloc(32).toString('base64')), (e: unknown) => e instanceof ScramError && e.code === 'nonce-mismatch');
    assert.throws(() => setup().serverFinal('c=eSws,r=abcSRV,p=' + Buffer.alloc(32).toString('base64')), (e: unknown) => e instanceof ScramError && e.code === 'channel-binding-mismatch');
    assert.throws(() => setup().serverFinal('c=biws,r=abcSRV,p=AAAA'), ScramError);
    assert.throws(() => setup().serverFinal('c=biws,r=abcSRV,p=!!!'), ScramError);
    assert.throws(() => setup().serverFinal('c=biws,r=abcSRV'), ScramError);
    assert.throws(() => setup().serverFinal(''), ScramError);
    const s = setup();
    assert.deepEqual(s.serverFinal('c=biws,r=abcSRV,p=' + Buffer.alloc(32).toString('base64')), { ok: false });
    assert.throws(() => s.serverFinal('c=biws,r=abcSRV,p=' + Buffer.alloc(32).toString('base64')), (e: unknown) => e instanceof ScramError && e.code === 'state');
  });

  it('client rejects bad server messages', () => {
    const c = () => {
      const x = new ScramClientSession({ password: 'p' }, { clientNonce: 'abc' });
      x.clientFirst();
      return x;
    };
    assert.throws(() => c().clientFinal('r=xyz,s=c2FsdA==,i=1'), (e: unknown) => e instanceof ScramError && e.code === 'nonce-mismatch');
    assert.throws(() => c().clientFinal('r=abc,s=c2FsdA==,i=1'), ScramError, 'server must add to the nonce');
    assert.throws(() => c().clientFinal('r=abcS,s=c2FsdA==,i=0'), ScramError);
    assert.throws(() => c().clientFinal('r=abcS,s=***,i=1'), ScramError);
    assert.throws(() => c().clientFinal('r=abcS,i=1'), ScramError);
    const e = c();
    e.clientFinal('r=abcS,s=c2FsdA==,i=1');
    assert.equal(e.verifyServerFinal('e=invalid-proof'), false);
    const f = c();
    f.clientFinal('r=abcS,s=c2FsdA==,i=1');
    assert.equal(f.verifyServerFinal('v=short'), false);
    assert.throws(() => new ScramClientSession({ password: 'p' }).clientFinal('r=x'), (err: unknown) => err instanceof ScramError && err.code === 'state');
  });
});
