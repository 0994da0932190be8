/** Prometheus text exposition (0.0.4) for tests: a strict parser that fails on any malformed line. */
import assert from 'node:assert/strict';

export interface Sample { name: string; labels: Record<string, string>; value: number }

/** A strict Prometheus text-format (0.0.4) parser: every line must be HELP, TYPE, or a valid sample of a declared family. */
export function parsePrometheus(text: string): { types: Map<string, string>; samples: Sample[] } {
  const types = new Map<string, string>();
  const helps = new Set<string>();
  const samples: Sample[] = [];
  assert.ok(text.endsWith('\n'), 'exposition ends with a newline');
  for (const line of text.split('\n')) {
    if (line === '') continue;
    let m = /^# HELP ([a-zA-Z_:][a-zA-Z0-9_:]*) (.*)$/.exec(line);
    if (m !== null) { assert.ok(!helps.has(m[1]!), `duplicate HELP ${m[1]}`); helps.add(m[1]!); continue; }
    m = /^# TYPE ([a-zA-Z_:][a-zA-Z0-9_:]*) (counter|gauge|histogram|summary|untyped)$/.exec(line);
    if (m !== null) { assert.ok(!types.has(m[1]!), `duplicate TYPE ${m[1]}`); types.set(m[1]!, m[2]!); continue; }
    m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    assert.ok(m !== null, `bad line: ${line}`);
    const labels: Record<string, string> = {};
    if (m[2] !== undefined && m[2] !== '') {
      const re = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"(,|$)/gy;
      let pos = 0;
      for (let lm = re.exec(m[2]); lm !== null; lm = re.exec(m[2])) { labels[lm[1]!] = lm[2]!; pos = re.lastIndex; }
      assert.equal(pos, m[2].length, `bad labels: ${m[2]}`);
    }
    const value = m[3] === '+Inf' ? Infinity : m[3] === '-Inf' ? -Infinity : Number(m[3]);
    assert.ok(!Number.isNaN(value) || m[3] === 'NaN', `bad value: ${line}`);
    const family = m[1]!.replace(/_(bucket|sum|count)$/, '');
    assert.ok(types.has(m[1]!) || types.get(family) === 'histogram' || types.get(family) === 'summary', `sample without TYPE: ${m[1]}`);
    samples.push({ name: m[1]!, labels, value });
  }
  return { types, samples };
}
