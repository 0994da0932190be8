/**
 * Lexer/parser for pgpool.conf syntax (the PostgreSQL postgresql.conf dialect).
 *
 * One setting per line: `key = value` or `key value` (the `=` is optional). A value is a
 * single-quoted string (`''` and backslash escapes inside) or one unquoted word/number
 * (e.g. `on`, `5min`, `0777`, `/tmp`). `#` starts a comment anywhere outside quotes.
 * Keys are case-insensitive and returned lower-cased. Nothing is interpreted here: the
 * result is the raw `{key, value, line}` list in file order, duplicates included.
 */
import { ConfigError, type ConfigIssue } from './config-error';

/** One raw setting as written in the file. */
export interface ConfEntry {
  readonly key: string;
  readonly value: string;
  /** 1-based line number. */
  readonly line: number;
}

/** Parse result that keeps going after syntax errors. */
export interface ConfParseResult {
  readonly entries: ConfEntry[];
  readonly issues: ConfigIssue[];
}

const KEY_RE = /^[A-Za-z_][A-Za-z0-9_.-]*/;
const WORD_RE = /^[^\s#'=]+/;

const ESCAPES: Readonly<Record<string, string>> = { b: '\b', f: '\f', n: '\n', r: '\r', t: '\t' };

/** Read a quoted string starting at `s[0] === "'"`; returns the value and the rest of the line. */
function readQuoted(s: string): { value: string; rest: string } | string {
  let out = '';
  let i = 1;
  while (i < s.length) {
    const ch = s[i] ?? '';
    if (ch === "'") {
      if (s[i + 1] === "'") {
        out += "'";
        i += 2;
        continue;
      }
      return { value: out, rest: s.slice(i + 1) };
    }
    if (ch === '\\' && i + 1 < s.length) {
      const next = s[i + 1] ?? '';
      const oct = /^[0-7]{1,3}/.exec(s.slice(i + 1));
      if (oct !== null) {
        out += String.fromCharCode(parseInt(oct[0], 8));
        i += 1 + oct[0].length;
      } else {
        out += ESCAPES[next] ?? next;
        i += 2;
      }
      continue;
    }
    out += ch;
    i++;
  }
  return 'unterminated quoted string';
}

/** Parse pgpool.conf text, collecting every syntax error instead of stopping at the first. */
export function parsePgpoolConfLenient(text: string, fileName: string): ConfParseResult {
  const entries: ConfEntry[] = [];
  const issues: ConfigIssue[] = [];
  const lines = text.split(/\r?\n/);
  lines.forEach((rawLine, idx) => {
    const line = idx + 1;
    let s = rawLine.trimStart();
    if (s === '' || s.startsWith('#')) return;
    const km = KEY_RE.exec(s);
    if (km === null) {
      issues.push({ file: fileName, line, message: `syntax error: expected a parameter name, got ${JSON.stringify(s.trim())}` });
      return;
    }
    const key = km[0].toLowerCase();
    s = s.slice(km[0].length).trimStart();
    if (s.startsWith('=')) s = s.slice(1).trimStart();
    let value: string;
    if (s.startsWith("'")) {
      const q = readQuoted(s);
      if (typeof q === 'string') {
        issues.push({ file: fileName, line, key, message: `syntax error: ${q}` });
        return;
      }
      value = q.value;
      s = q.rest;
    } else {
      const wm = WORD_RE.exec(s);
      if (wm === null) {
        issues.push({ file: fileName, line, key, message: 'syntax error: missing value' });
        return;
      }
      value = wm[0];
      s = s.slice(wm[0].length);
    }
    s = s.trimStart();
    if (s !== '' && !s.startsWith('#')) {
      issues.push({ file: fileName, line, key, message: `syntax error: unexpected ${JSON.stringify(s.trim())} after the value (quote values containing spaces)` });
      return;
    }
    entries.push({ key, value, line });
  });
  return { entries, issues };
}

/** Parse pgpool.conf text to `{key, value, line}[]`; throws ConfigError listing every syntax error. */
export function parsePgpoolConf(text: string, fileName: string): ConfEntry[] {
  const r = parsePgpoolConfLenient(text, fileName);
  if (r.issues.length > 0) throw new ConfigError(r.issues);
  return r.entries;
}
