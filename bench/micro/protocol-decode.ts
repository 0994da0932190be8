/**
 * Micro benchmark for the hot protocol codecs on typical pgbench (TPC-B, -M prepared/extended)
 * messages: decodeParse, decodeBind, decodeQuery, decodeExecute, encodeDataRow.
 * Plain script: `npx tsc -p . && node dist/bench/micro/protocol-decode.js` prints ns/op.
 */

import { encodeDataRow } from '../../src/protocol/backend';
import { decodeBind, decodeExecute, decodeParse, decodeQuery, encodeBind, encodeExecute, encodeParse, encodeQuery } from '../../src/protocol/frontend';

const UPDATE = 'UPDATE pgbench_accounts SET abalance = abalance + $1 WHERE aid = $2;';
const SELECT = 'SELECT abalance FROM pgbench_accounts WHERE aid = $1;';

// Put frames at an offset inside a larger "socket chunk", as the framer would hand them over.
function inChunk(frame: Buffer): { buf: Buffer; start: number; end: number } {
  const buf = Buffer.concat([Buffer.alloc(37, 0x41), frame, Buffer.alloc(64, 0)]);
  return { buf, start: 37, end: 37 + frame.length };
}

const parse = inChunk(encodeParse('P0_1', UPDATE, [23, 23]));
const bind = inChunk(encodeBind('', 'P0_1', ['-4231', '87243']));
const execute = inChunk(encodeExecute('', 0));
const query = inChunk(encodeQuery(`UPDATE pgbench_accounts SET abalance = abalance + -4231 WHERE aid = 87243;`));
const row = ['-4231'];
const wideRow = ['87243', '1', '-4231', '                                                                                    '];

let sink = 0;

function bench(name: string, fn: () => number, iterations = 2_000_000): void {
  for (let i = 0; i < 100_000; i++) sink ^= fn(); // warm-up
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < iterations; i++) sink ^= fn();
  const ns = Number(process.hrtime.bigint() - t0) / iterations;
  console.log(`${name.padEnd(34)} ${ns.toFixed(1).padStart(8)} ns/op`);
}

bench('decodeParse (pgbench UPDATE)', () => decodeParse(parse.buf, parse.start, parse.end).paramTypes.length);
bench('decodeBind (names only)', () => decodeBind(bind.buf, bind.start, bind.end).statement.length);
bench('decodeExecute', () => decodeExecute(execute.buf, execute.start, execute.end).maxRows);
bench('decodeQuery (simple UPDATE)', () => decodeQuery(query.buf, query.start, query.end).length);
bench('encodeDataRow (1 col)', () => encodeDataRow(row).length);
bench('encodeDataRow (4 cols)', () => encodeDataRow(wideRow).length);
void SELECT;
if (sink === 0.5) console.log(sink);
