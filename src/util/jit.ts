/**
 * V8 settings for the server process, applied when this module loads (src/main.ts imports it
 * first, before the modules whose code they concern).
 *
 * Feedback from the first call on. By default V8 records type feedback for a function only from
 * about its eighth call (lazy feedback allocation): what a function does in its first calls is
 * not remembered. A server's first connections run code paths its later ones rarely take — the
 * first client's second request, another kind of statement, a function call in a query — and
 * when the optimizing compiler later meets one of those paths without feedback, it throws its
 * code away (a deoptimization), runs that function in the interpreter again until it is hot
 * again, and compiles it again on a background thread. Measured (issue 21 item 5,
 * docs/performance.md): `pgbench -C -S` opens each run with one connection that sends
 * `select count(*) from pgbench_branches` and a query on pg_class; after a warm-up made of
 * such runs, the next run deoptimized nine functions of the request path (the session's step,
 * the planner, the classifier...), which ran unoptimized for thousands of connections — about
 * a fifth more CPU per connection over the run. With feedback from the first call, the warm-up's
 * own first connection leaves its feedback, and nothing is thrown away later. The cost is a
 * feedback vector for functions called fewer than eight times: a few hundred KB of heap.
 */
import { setFlagsFromString } from 'node:v8';

/** The flags applied (read by tests). */
export const JIT_FLAGS = ['--no-lazy-feedback-allocation'] as const;

for (const f of JIT_FLAGS) setFlagsFromString(f);
