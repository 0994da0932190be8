/**
 * memqcache_method = 'memcached': answers and table generations kept in a memcached server, so
 * that every pgmaitre sharing it sees the same cache and the same invalidations.
 *
 * Client: memcached-meta.ts, a small hand-written client of memcached's meta protocol, because a
 * lookup is on the hot path of every cache hit. memjs (binary protocol) was used first, chosen
 * over memcache-client by measurement (the same within the noise: 24-33 µs of CPU per get);
 * with it a memcached hit cost more pgmaitre CPU than forwarding the query (bench/query-cache.sh:
 * 150-260 µs per hot-key transaction against 85-95 µs forwarded); see docs/query-cache.md for
 * the figures with this client.
 *
 * Keys: `pgmq:e:<sha1>` for an answer (its key hashes user, database, settings, text and
 * parameters; the value starts with the generations of what it read when it was computed, and is
 * served only while they are the current ones), `pgmq:g:<name>` for a generation (metaKey(): a
 * name that is not a valid text key, such as a database name with a space, is hashed). A lookup
 * asks for the answer and the generations in one round trip (one write, shared with the other
 * sessions' lookups of the same event-loop turn). A generation is an opaque random value (a
 * UUID): a bump sets a new one, and one found missing (never bumped, evicted, memcached
 * restarted) is created with an add (a racing instance's value wins), so a generation never
 * comes back to a value old answers were stored under.
 */
import { randomUUID } from 'node:crypto';
import { MetaClient, metaKey, type MetaReply } from './memcached-meta';

/** A lookup's result: the answer when it is current, and the generations a miss's answer must be stored with. */
export interface Lookup {
  readonly gens: string;
  readonly value: Buffer | undefined;
}

/** See the file header. */
export class MemcachedStore {
  private readonly mc: MetaClient;
  /** Generation name → its `mg` command (names are few: '*', one per database, one per table read). */
  private readonly getGen = new Map<string, string>();

  constructor(host: string, port: number, readonly expireSec: number) {
    this.mc = new MetaClient(host.startsWith('[') && host.endsWith(']') ? host.slice(1, -1) : host, port);
  }

  private genCommand(name: string): string {
    let c = this.getGen.get(name);
    if (c === undefined) {
      if (this.getGen.size >= 100_000) this.getGen.clear();
      c = `mg ${metaKey('pgmq:g:', name)} v\r\n`;
      this.getGen.set(name, c);
    }
    return c;
  }

  /**
   * One round trip: the answer stored under `key` and the current generations of `names`, sent
   * together. An answer is stored with the generations it was computed under (set()) and is
   * returned only when they are still the current ones: a bump anywhere makes it unreachable.
   * `gens` is what a miss's answer must be stored with.
   */
  lookup(key: string, names: readonly string[]): Promise<Lookup> {
    let text = `mg pgmq:e:${key} v\r\n`;
    for (const n of names) text += this.genCommand(n);
    return new Promise((resolve, reject) => {
      this.mc.send(text, names.length + 1, (err, r) => {
        if (err !== null) {
          reject(err);
          return;
        }
        let gens = '';
        for (let i = 1; i < r.length; i++) {
          const g = r[i];
          if (!(g instanceof Buffer)) {
            if (g instanceof Error) reject(g);
            // A generation missing (never bumped, evicted, memcached restarted): created, off the hot path.
            else this.currentGens(names, r.slice(1)).then((all) => resolve(current(r[0]!, all.join(','))), reject);
            return;
          }
          gens += i === 1 ? g.toString('latin1') : `,${g.toString('latin1')}`;
        }
        resolve(current(r[0]!, gens));
      });
    });
  }

  /** Stores an answer with the generations it was computed under (lookup()'s `gens`). */
  async set(key: string, gens: string, value: Buffer): Promise<void> {
    const n = Buffer.byteLength(gens, 'latin1');
    const v = Buffer.allocUnsafe(4 + n + value.length);
    v.writeUInt32BE(n, 0);
    v.write(gens, 4, 'latin1');
    value.copy(v, 4 + n);
    const r = await this.mc.storeValue(`pgmq:e:${key}`, v, this.expireSec > 0 ? `T${this.expireSec}` : '');
    // SERVER_ERROR (out of memory, too large for its item size): not stored, memcached itself is fine.
    void r;
  }

  async delete(key: string): Promise<void> {
    const [r] = await this.mc.request(`md pgmq:e:${key}\r\n`, 1);
    if (r instanceof Error) throw r;
  }

  /** Current generations of `names` (tests): created where missing. */
  async gens(names: readonly string[]): Promise<string[]> {
    let text = '';
    for (const n of names) text += this.genCommand(n);
    return this.currentGens(names, await this.mc.request(text, names.length));
  }

  /** `got` (mg replies for `names`) completed: missing generations created. */
  private async currentGens(names: readonly string[], got: readonly MetaReply[]): Promise<string[]> {
    return Promise.all(names.map(async (name, i) => {
      const g = got[i];
      if (g instanceof Buffer) return g.toString('latin1');
      if (g instanceof Error) throw g;
      return this.create(name);
    }));
  }

  /** A generation found missing: created (a racing instance's value wins). */
  private async create(name: string): Promise<string> {
    const key = metaKey('pgmq:g:', name);
    const fresh = randomUUID();
    const added = await this.mc.storeValue(key, Buffer.from(fresh, 'latin1'), 'ME');
    if (added === true) return fresh;
    if (added instanceof Error) throw added;
    const [again] = await this.mc.request(`mg ${key} v\r\n`, 1); // another instance created it meanwhile
    if (!(again instanceof Buffer)) throw again instanceof Error ? again : new Error(`generation ${key} vanished`);
    return again.toString('latin1');
  }

  /** Moves each generation on: a new random value (every answer keyed with an old one becomes unreachable). */
  async bump(names: readonly string[]): Promise<void> {
    const rs = await Promise.all(names.map((n) => this.mc.storeValue(metaKey('pgmq:g:', n), Buffer.from(randomUUID(), 'latin1'), '')));
    for (const r of rs) {
      if (r instanceof Error) throw r;
      if (r !== true) throw new Error('memcached did not store a generation');
    }
  }

  close(): void {
    this.mc.close();
  }
}

/** The answer in `entry` when it was stored under `gens` (the current generations), else undefined. */
function current(entry: MetaReply, gens: string): Lookup {
  let value: Buffer | undefined;
  if (entry instanceof Buffer && entry.length >= 4) {
    const n = entry.readUInt32BE(0);
    if (4 + n <= entry.length && n === gens.length && entry.toString('latin1', 4, 4 + n) === gens) value = entry.subarray(4 + n);
  }
  return { gens, value };
}
