/**
 * Transaction pooling: the prepared statements one server connection really has, as facts.
 *
 * A name sent in a Parse (or a SQL PREPARE) is *tentative* until the server answered the request
 * that carried it: confirmed on success, forgotten when the request failed or was skipped (a
 * failed Parse creates nothing). When a request with several messages failed, which of its
 * Parses succeeded is not known: those names become *unsure* and are closed (Close of a name that
 * does not exist is not an error) before the connection's next use. DISCARD ALL and DEALLOCATE
 * ALL clear everything. The set is capped by `max_prepared_statements` (PgBouncer's name): the
 * least recently used names beyond it are evicted, with a Close sent before the request that
 * made room (PgBouncer keeps an LRU per server connection the same way).
 *
 * A tentative name counts as present for the requests that follow it on the same connection
 * (they are behind it in the server's input, so it exists by the time they run, or they are
 * skipped with it).
 */

/** Generation value of a name whose Parse is still unanswered. */
const TENTATIVE = -1;

/** See the file header. */
export class ServerStatements {
  /** name → generation of last use (TENTATIVE while unanswered), oldest use first. */
  private readonly names = new Map<string, number>();
  /** Names that may or may not exist (closed before the next use). */
  readonly unsure = new Set<string>();
  /** Tentative names that were unsure when their Parse was sent (unsure again if it is skipped). */
  private readonly beganUnsure = new Set<string>();
  /** Advanced once per request that uses names: names used by the current request are never evicted. */
  private generation = 0;
  /** Tentative names: the generation (request) whose Parse of them is unanswered. */
  private readonly begunIn = new Map<string, number>();

  /** `cap`: most names kept (0 = no limit). */
  constructor(public cap = 0) {}

  /** Names known (confirmed or tentative). */
  get size(): number {
    return this.names.size;
  }

  /** A new request starts using names (see evict). */
  nextRequest(): void {
    this.generation++;
  }

  /** True when the connection has `name` (or a Parse of it is on its way); counts as a use. */
  has(name: string): boolean {
    const g = this.names.get(name);
    if (g === undefined) return false;
    if (g !== TENTATIVE) {
      // Most recently used last (Map keeps insertion order).
      this.names.delete(name);
      this.names.set(name, this.generation);
    }
    return true;
  }

  /** True while a Parse of `name` is unanswered. */
  pending(name: string): boolean {
    return this.names.get(name) === TENTATIVE;
  }

  /** True while a Parse of `name` sent by an earlier request (not the current one: nextRequest) is unanswered. */
  pendingBefore(name: string): boolean {
    return this.names.get(name) === TENTATIVE && (this.begunIn.get(name) ?? this.generation) < this.generation;
  }

  /** A Parse (or PREPARE) of `name` is sent: tentative until `confirm` or `failed`. */
  begin(name: string): void {
    if (this.unsure.delete(name)) this.beganUnsure.add(name);
    this.names.delete(name);
    this.names.set(name, TENTATIVE);
    this.begunIn.set(name, this.generation);
  }

  /** The request that parsed `name` succeeded. */
  confirm(name: string): void {
    this.beganUnsure.delete(name);
    this.begunIn.delete(name);
    if (this.names.get(name) === TENTATIVE) {
      this.names.delete(name);
      this.names.set(name, this.generation);
    }
  }

  /**
   * The request that parsed `name` failed or was skipped. `surely`: the request was that one
   * Parse (it created nothing); otherwise the name may exist and is closed before the next use.
   */
  failed(name: string, surely: boolean): void {
    if (this.names.get(name) !== TENTATIVE) return;
    this.names.delete(name);
    this.begunIn.delete(name);
    // (Skipped, it created nothing; but a name unsure before it may still exist, seed 31030.)
    if (!surely || this.beganUnsure.has(name)) this.unsure.add(name);
    this.beganUnsure.delete(name);
  }

  /** The name was closed on the server (or is about to be, in order). */
  forget(name: string): void {
    this.names.delete(name);
    this.begunIn.delete(name);
    this.unsure.delete(name);
    this.beganUnsure.delete(name);
  }

  /** DISCARD ALL / DEALLOCATE ALL ran (or the connection was reset): nothing is prepared. */
  clear(): void {
    // (Map/Set clear() is a call into V8's runtime even when empty: session pooling clears at
    // every disconnect, and most connections prepared nothing.)
    if (this.names.size > 0) this.names.clear();
    if (this.unsure.size > 0) this.unsure.clear();
    if (this.beganUnsure.size > 0) this.beganUnsure.clear();
    if (this.begunIn.size > 0) this.begunIn.clear();
  }

  /**
   * Names to close so that at most `cap` remain: least recently used first, never a tentative
   * one nor one the current request uses. They are forgotten here; the caller sends the Close.
   */
  evict(): string[] | null {
    if (this.cap <= 0 || this.names.size <= this.cap) return null;
    let excess = this.names.size - this.cap;
    let out: string[] | null = null;
    for (const [name, g] of this.names) {
      if (excess === 0) break;
      if (g === TENTATIVE || g === this.generation) continue;
      (out ??= []).push(name);
      excess--;
    }
    if (out !== null) for (const name of out) this.names.delete(name);
    return out;
  }

  /** Names, oldest use first (tests, admin). */
  list(): string[] {
    return [...this.names.keys()];
  }
}
