/**
 * The mutable accumulator both classification paths (lexer and parse tree) fill in, and the
 * per-statement verdict they return. Kept apart so neither path depends on the other.
 */
import type { AdminCommand, QueryFlags, QueryKind } from './types';

/** Flags without `parsedBy`, which is decided by the caller. */
export type StmtFlags = Omit<QueryFlags, 'parsedBy' | 'parseError' | 'primaryReason'>;

/** What one statement is. `needParser`: the lexer's verdict is conservative but not authoritative. */
export interface StmtVerdict {
  kind: QueryKind;
  readOnly: boolean;
  needParser: boolean;
}

/** Names and flags gathered over all statements of one query string. */
export interface Collector {
  functions: string[];
  relations: string[];
  flags: StmtFlags;
  admin: AdminCommand | undefined;
}

export function newCollector(): Collector {
  return { functions: [], relations: [], flags: {}, admin: undefined };
}

/** Adds a name once (lists are short; a linear scan beats a Set here). */
export function addUnique(list: string[], name: string): void {
  for (let i = 0; i < list.length; i++) if (list[i] === name) return;
  list.push(name);
}
