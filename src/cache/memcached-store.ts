/**
 * memqcache_method = 'memcached': answers and table generations kept in a memcached server, so
 * that every pgmaitre sharing it sees the same cache and the same invalidations.
 *
 * Client: memjs (binary protocol; its increment takes an initial value, which generations need).
 * Chosen by a small measurement against memcache-client (16 concurrent loops of 40 000 gets of a
 * 200-byte value on one loopback memcached, two rounds on a shared 2-core machine): memjs 22-24 k
 * gets/s at 27-33 µs of CPU per get, memcache-client 20-41 k gets/s at 24-33 µs — the same within
 * the noise; memjs is the one kept for its binary protocol, its `add`/`set` with expiry and its 2 M
 * weekly users (memcache-client ~0.1 M).
 *
 * Keys: `pgmq:e:<sha1>` for an answer (its key hashes user, database, settings, text and
 * parameters; the value starts with the generations of what it read when it was computed, and is
 * served only while they are the current ones), `pgmq:g:<name>` for a generation. A lookup asks
 * for the answer and the generations in one round trip. A generation is an
 * opaque random value (a UUID): a bump sets a new one, and one found missing (never bumped,
 * evicted, memcached restarted) is created with `add` (a racing instance's value wins), so a
 * generation never comes back to a value old answers were stored under. (memjs's increment
 * takes only a 32-bit initial value: random 128-bit values leave no room for a collision.)
 */
import { randomUUID } from 'node:crypto';
import { Socket } from 'node:net';
import { Client } from 'memjs';

/** Operation timeout: memcached answers in well under a millisecond on a LAN. */
const TIMEOUT_SEC = 0.5;

/** See the file header. */
export class MemcachedStore {
  private readonly client: Client;

  constructor(host: string, port: number, readonly expireSec: number, log: (msg: string) => void) {
    const h = host.includes(':') && !host.startsWith('[') ? `[${host}]` : host;
    this.client = Client.create(`${h}:${port}`, {
      retries: 0, timeout: TIMEOUT_SEC, conntimeout: TIMEOUT_SEC, keepAlive: true, expires: expireSec,
      logger: { log }, failover: false,
    });
  }

  /**
   * One round trip: the answer stored under `key` and the current generations of `names`, sent
   * together. An answer is stored with the generations it was computed under (set()) and is
   * returned only when they are still the current ones: a bump anywhere makes it unreachable.
   * `gens` is what a miss's answer must be stored with.
   */
  async lookup(key: string, names: readonly string[]): Promise<{ gens: string; value: Buffer | undefined }> {
    // memjs writes each request on its own; corked, the lookup's requests leave in one write.
    const sock = this.socket();
    sock?.cork();
    const asked = [this.client.get(`pgmq:e:${key}`), ...names.map((n) => this.client.get(`pgmq:g:${n}`))];
    sock?.uncork();
    const [entry, ...rs] = await Promise.all(asked);
    const gens = (await Promise.all(rs.map((r, i) => (r.value !== null && r.value !== undefined ? r.value.toString('latin1') : this.create(names[i]!))))).join(',');
    const v = entry!.value;
    let value: Buffer | undefined;
    if (v !== null && v !== undefined && v.length >= 4) {
      const n = v.readUInt32BE(0);
      if (4 + n <= v.length && v.toString('latin1', 4, 4 + n) === gens) value = v.subarray(4 + n);
    }
    return { gens, value };
  }

  /** Stores an answer with the generations it was computed under (lookup()'s `gens`). */
  async set(key: string, gens: string, value: Buffer): Promise<void> {
    const tag = Buffer.from(gens, 'latin1');
    const head = Buffer.allocUnsafe(4);
    head.writeUInt32BE(tag.length, 0);
    await this.client.set(`pgmq:e:${key}`, Buffer.concat([head, tag, value]), { expires: this.expireSec });
  }

  /** memjs's connected socket to the one server, if any (memjs internals, checked: else null and no corking). */
  private socket(): Socket | null {
    const srv = (this.client as unknown as { servers?: { connected?: boolean; _socket?: unknown }[] }).servers?.[0];
    const s = srv?.connected === true ? srv._socket : undefined;
    return s instanceof Socket ? s : null;
  }

  async delete(key: string): Promise<void> {
    await this.client.delete(`pgmq:e:${key}`);
  }

  /** A generation found missing (never bumped, evicted, memcached restarted): created (a racing instance's value wins). */
  private async create(name: string): Promise<string> {
    const key = `pgmq:g:${name}`;
    const fresh = randomUUID();
    if (await this.client.add(key, fresh, { expires: 0 })) return fresh;
    const again = await this.client.get(key); // another instance created it meanwhile
    if (again.value === null || again.value === undefined) throw new Error(`generation ${key} vanished`);
    return again.value.toString('latin1');
  }

  /** Current generations of `names` (tests). */
  async gens(names: readonly string[]): Promise<string[]> {
    const rs = await Promise.all(names.map((n) => this.client.get(`pgmq:g:${n}`)));
    return Promise.all(rs.map((r, i) => (r.value !== null && r.value !== undefined ? r.value.toString('latin1') : this.create(names[i]!))));
  }

  /** Moves each generation on: a new random value (every answer keyed with an old one becomes unreachable). */
  async bump(names: readonly string[]): Promise<void> {
    await Promise.all(names.map((n) => this.client.set(`pgmq:g:${n}`, randomUUID(), { expires: 0 })));
  }

  close(): void {
    this.client.close();
  }
}
