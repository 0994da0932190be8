/**
 * A session's prepared statements and portals, and the nodes that have them.
 *
 * Protocol-level statements (Parse 'name') keep a copy of their Parse frame, so that a statement
 * needed on a node that never saw it is re-parsed there first (pgbench -M prepared after a
 * failover, pgjdbc moving from a standby read to a transaction). SQL-level statements (PREPARE)
 * keep their PREPARE text for the same purpose: EXECUTE runs where the statement can run (a
 * prepared read on a standby, a prepared write on the primary), re-prepared there if needed.
 * Portals live on one node until their transaction ends.
 */
import { Buffer } from 'node:buffer';
import type { QueryClass } from '../classify/types';

/** A statement created by Parse. */
export interface ProtocolStatement {
  /** The Parse frame (re-sent to a node that lacks the statement). */
  frame: Buffer;
  readonly sql: string;
  readonly cls: QueryClass;
  /** Nodes where it exists. */
  readonly nodes: Set<number>;
  /** Transaction pooling: its server-side name (statement-names.ts), once computed. */
  server?: string;
  /** Its parameter count as PostgreSQL has it (tx-pooling.ts statementParameters; -1: not sure), once computed. */
  params?: number;
  /**
   * Transaction pooling: what the server answered to a Describe of it (connection-statements.ts
   * describeParsed): 'rows' (it returns rows), or its ParameterDescription and NoData as sent.
   * pgmaitre describes it itself where no connection that has it can be asked (an aborted
   * transaction on a connection that lacks it, seed 98096).
   */
  described?: Buffer | 'rows';
  /** Transaction pooling: the Parse that defined it failed or was skipped (a Close's restore must not bring it back). */
  gone?: boolean;
  /**
   * Transaction pooling: defined by a request not answered yet. A skipped Close of an earlier
   * request restores the statement it closed over such a definition (seed 94080).
   */
  tentative?: boolean;
}

/** A statement created by SQL PREPARE. */
export interface SqlStatement {
  /** The PREPARE statement's text (replayed on a node that lacks it). */
  readonly text: string;
  /** Class of the PREPARE (its readOnly is the prepared body's). */
  readonly cls: QueryClass;
  readonly nodes: Set<number>;
  /** Transaction pooling: its server-side name (statement-names.ts). */
  readonly server: string;
}

/** See the file header. */
export class Statements {
  readonly protocol = new Map<string, ProtocolStatement>();
  readonly sql = new Map<string, SqlStatement>();
  /** Portal name → node. */
  readonly portals = new Map<string, number>();

  /** A Parse was sent to `node`. The unnamed statement's frame is kept as a view (it is replaced at once). */
  parsed(name: string, frame: Buffer, sql: string, cls: QueryClass, node: number): void {
    const prev = this.protocol.get(name);
    if (prev !== undefined && prev.sql === sql) {
      if (name !== '') {
        prev.nodes.add(node);
        return;
      }
      // The same unnamed statement again (pgbench -M extended, most drivers' one-shot queries):
      // only `node` has it now. The entry is kept rather than replaced: a fresh one per request
      // stayed reachable from the session until the next, and V8's young collections copy what
      // every idle session still holds (work per request that grows with the number of sessions).
      if (prev.frame.equals(frame)) {
        if (prev.gone === true) prev.gone = false; // (defined again: see ProtocolStatement.gone)
        if (prev.nodes.size !== 1 || !prev.nodes.has(node)) {
          prev.nodes.clear();
          prev.nodes.add(node);
        }
        return;
      }
    }
    this.protocol.set(name, { frame: name === '' ? frame : Buffer.from(frame), sql, cls, nodes: new Set([node]) });
  }

  /** A Close of statement `name` went out: it is gone everywhere once the others are told. */
  closed(name: string): ProtocolStatement | undefined {
    const st = this.protocol.get(name);
    this.protocol.delete(name);
    return st;
  }

  /** SQL PREPARE sent to `node`; false when the name already exists (the node will say 42P05). */
  prepared(name: string, text: string, cls: QueryClass, node: number, server: string): boolean {
    if (this.sql.has(name)) return false;
    this.sql.set(name, { text, cls, nodes: new Set([node]), server });
    return true;
  }

  /** The nodes `node` no longer has: its connection was lost or replaced. */
  forgetNode(node: number): void {
    for (const st of this.protocol.values()) st.nodes.delete(node);
    for (const st of this.sql.values()) st.nodes.delete(node);
    for (const [p, n] of this.portals) if (n === node) this.portals.delete(p);
  }

  /** The transaction on `node` ended: its portals are gone. */
  transactionEnded(node: number): void {
    if (this.portals.size === 0) return;
    for (const [p, n] of this.portals) if (n === node) this.portals.delete(p);
  }

  /** DISCARD ALL / DEALLOCATE ALL reached every node. */
  clearAll(protocolToo: boolean): void {
    this.sql.clear();
    if (protocolToo) this.protocol.clear();
  }
}
