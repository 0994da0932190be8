/**
 * The errors admin commands report, worded as pgpool-II words them. pgpool raises them with
 * ereport(ERROR) and no errcode, so the SQLSTATE is PostgreSQL's default for ERROR, XX000.
 */
import type { AdminError } from './types';

/** SQLSTATE pgpool uses for its admin errors (ereport without errcode). */
export const ADMIN_SQLSTATE = 'XX000';

/** Builds an AdminError. */
export function adminError(message: string, extra: { detail?: string; hint?: string; code?: string } = {}): AdminError {
  return {
    error: {
      code: extra.code ?? ADMIN_SQLSTATE,
      message,
      ...(extra.detail !== undefined ? { detail: extra.detail } : {}),
      ...(extra.hint !== undefined ? { hint: extra.hint } : {}),
    },
  };
}

/** `unrecognized configuration parameter "x"`. */
export function unrecognizedParam(name: string): AdminError {
  return adminError(`unrecognized configuration parameter "${name}"`);
}

/** PGPOOL SET/RESET of a parameter that is not session-scoped. */
export function notSessionParam(name: string): AdminError {
  return adminError(`invalid Context, value for parameter "${name}" cannot be changed`);
}

/** True when a command's result is an error. */
export function isAdminError(r: unknown): r is AdminError {
  return typeof r === 'object' && r !== null && 'error' in r;
}
