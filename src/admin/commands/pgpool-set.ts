/**
 * PGPOOL SET <param> {TO | =} <value> | DEFAULT: a session-scoped override, for the parameters
 * pgpool lets a session change (schema `session: true`). Others fail as in pgpool:
 * `invalid Context, value for parameter "x" cannot be changed`. Answers CommandComplete "SET"
 * with no rows (columns empty: the frontend sends no RowDescription).
 */
import type { AdminCommand, AdminContext, AdminError, AdminSession, ResultSet } from '../types';
import { keywords, unquoteIdent, unquoteValue } from '../match';
import { lookupParam } from '../../config/schema';
import { parseValue } from '../../config/param-spec';
import { adminError, notSessionParam, unrecognizedParam } from '../errors';

const SET_RE = /^("(?:[^"]|"")+"|[A-Za-z_][A-Za-z0-9_]*)\s*(?:=|\s+TO\s+|\s+TO$)\s*([\s\S]*)$/i;

export const pgpoolSet: AdminCommand = {
  name: 'PGPOOL SET',
  match: keywords('PGPOOL', 'SET'),
  execute(_ctx: AdminContext, session: AdminSession, args: string): ResultSet | AdminError {
    const m = SET_RE.exec(args);
    if (m === null) return adminError('syntax error in PGPOOL SET', { detail: 'expected PGPOOL SET parameter {TO | =} value' });
    const name = unquoteIdent(m[1] ?? '');
    const raw = (m[2] ?? '').trim();
    const spec = lookupParam(name);
    if (spec === undefined) return unrecognizedParam(name);
    if (!spec.session) return notSessionParam(name);
    if (/^default$/i.test(raw)) {
      session.resetParam(name);
      return { columns: [], rows: [], tag: 'SET' };
    }
    if (raw === '') return adminError('syntax error in PGPOOL SET', { detail: 'missing value' });
    const value = unquoteValue(raw);
    const r = parseValue(spec, value);
    if (!r.ok) {
      const hint = spec.type === 'enum' ? `Available values: ${spec.values.join(', ')}.` : undefined;
      return adminError(`invalid value for parameter "${name}": "${value}"`, hint !== undefined ? { hint } : {});
    }
    session.setParam(name, r.value);
    return { columns: [], rows: [], tag: 'SET' };
  },
};
