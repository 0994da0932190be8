/**
 * Statement matching for admin commands: keywords compared case-insensitively, any run of
 * white space (and SQL comments before the statement) between them, an optional trailing ';'.
 */

/** Strips leading comments/space and a trailing ';' (with space around it). */
export function normalizeStatement(sql: string): string {
  let s = sql;
  for (;;) {
    const t = s.replace(/^\s+/, '');
    if (t.startsWith('--')) {
      const nl = t.indexOf('\n');
      s = nl < 0 ? '' : t.slice(nl + 1);
    } else if (t.startsWith('/*')) {
      const end = t.indexOf('*/');
      s = end < 0 ? '' : t.slice(end + 2);
    } else {
      s = t;
      break;
    }
  }
  return s.replace(/\s*;\s*$/, '').trimEnd();
}

/** A matcher for a keyword sequence; returns the text after it ('' if none), or null. */
export function keywords(...words: string[]): (sql: string) => string | null {
  const re = new RegExp(`^${words.map((w) => w.replace(/_/g, '_')).join('\\s+')}(?:\\s+([\\s\\S]*))?$`, 'i');
  return (sql: string) => {
    const m = re.exec(normalizeStatement(sql));
    if (m === null) return null;
    return (m[1] ?? '').trim();
  };
}

/** A matcher for a keyword sequence that takes no arguments. */
export function exactly(...words: string[]): (sql: string) => string | null {
  const m = keywords(...words);
  return (sql: string) => {
    const rest = m(sql);
    return rest === '' ? '' : null;
  };
}

/** Removes one level of SQL quoting ('x' or "x"); double quotes keep case, bare names are folded. */
export function unquoteIdent(s: string): string {
  const t = s.trim();
  if (t.length >= 2 && t.startsWith('"') && t.endsWith('"')) return t.slice(1, -1).replace(/""/g, '"');
  return t.toLowerCase();
}

/** A value literal: 'text' (with '' escapes), "text", or a bare word / number. */
export function unquoteValue(s: string): string {
  const t = s.trim();
  if (t.length >= 2 && t.startsWith("'") && t.endsWith("'")) return t.slice(1, -1).replace(/''/g, "'");
  if (t.length >= 2 && t.startsWith('"') && t.endsWith('"')) return t.slice(1, -1).replace(/""/g, '"');
  return t;
}
