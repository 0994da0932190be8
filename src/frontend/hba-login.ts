/**
 * Client authentication with pool_hba.conf (enable_pool_hba = on), once for every entry point:
 * the smart endpoint (handshake.ts), the dedicated ports (ports/relay-session.ts) and the
 * replication relay (ports/replication-relay.ts). It gathers the secret sources (auth_query,
 * allow_clear_text_frontend_auth), looks the user's roles up when a +group/samerole line needs
 * them, runs the hba method (client-auth.ts), and logs every failure the same way, counting wrong
 * passwords in the failed-login guard (rate-limit.ts) before the FATAL goes out.
 */
import { rolesNeeded } from '../config/hba';
import { clientErrors } from '../errors/client-errors';
import type { ErrorFieldsInput } from '../protocol/error-fields';
import { LogEvent } from '../log/logger';
import { authenticateClient, type AuthRequestInfo, type ClientAuthOutcome, type HandshakeIO, type SecretSources } from './client-auth';
import type { FrontendContext } from './context';

/** The outcome for the entry point: a credential for the backends, or the FATAL to send. */
export type HbaLoginResult =
  | Extract<ClientAuthOutcome, { ok: true }>
  | { readonly ok: false; readonly fatal: ErrorFieldsInput };

/** Where the client came in, for the log line (`database=…` or `replication connection`). */
export interface HbaLoginWhere {
  /** Log fields besides user/host/method/code (e.g. database, port kind, replication mode). */
  readonly fields: Readonly<Record<string, unknown>>;
  /** Text after `user=…` in the log line. */
  readonly describe: string;
  /** True once the client went away (no guard delay for it). */
  readonly gone: () => boolean;
}

/**
 * Authenticates `who` against ctx.hba (which must be set). Rethrows ClientGone (the client left);
 * other lookup failures become 28000 "authentication failed" with the cause in the log.
 */
export async function hbaLogin(ctx: FrontendContext, io: HandshakeIO, who: AuthRequestInfo, where: HbaLoginWhere): Promise<HbaLoginResult> {
  const hba = ctx.hba!;
  const aq = ctx.authQuery;
  const sources: SecretSources = {
    ...(aq?.enabled ? { lookup: (u: string) => aq.lookup(u) } : {}),
    allowClearText: ctx.config.allow_clear_text_frontend_auth,
  };
  let outcome: ClientAuthOutcome;
  try {
    const roles = aq?.canLookUpRoles && rolesNeeded(hba) ? { roles: await aq.rolesOf(who.user) } : {};
    outcome = await authenticateClient(io, { ...who, ...roles }, hba, ctx.poolPasswd, sources);
  } catch (e) {
    if ((e as Error).name === 'ClientGone') throw e;
    // AuthLookupError, or the membership query failing: not the client's fault, details logged.
    ctx.log.error({ event: LogEvent.AuthFailed, user: who.user, host: who.address, ...where.fields, err: (e as Error).message },
      `auth_query / role lookup for user "${who.user}" failed: ${(e as Error).message}`);
    return { ok: false, fatal: clientErrors.authQueryFailed(who.user) };
  }
  if (outcome.ok) return outcome;
  ctx.log.warn({ event: LogEvent.AuthFailed, user: who.user, host: who.address, ...where.fields, method: outcome.method, code: outcome.error.code },
    `authentication failed: ${outcome.error.message}${outcome.logDetail !== undefined ? `: ${outcome.logDetail}` : ''} (host=${who.address} user=${who.user} ${where.describe} method=${outcome.method})`);
  if (outcome.error.code === '28P01' && ctx.authGuard !== undefined && !where.gone()) await ctx.authGuard.failed(who.address);
  return { ok: false, fatal: outcome.error };
}
