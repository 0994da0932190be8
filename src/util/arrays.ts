/**
 * Emptying the small scratch arrays of the request path.
 *
 * `a.length = 0` is not a plain store in V8: it goes through the length accessor into the
 * runtime (C++) even when the array is already empty, and it drops the backing store, so the
 * next push allocates a new one. Measured here at ~280 ns per call on an empty array and
 * ~300–800 ns per push-then-clear, against ~15 ns and ~65 ns for this function, which pops the
 * few elements (keeping the backing store, no allocation). The request path empties about twenty
 * such arrays per request. Large arrays still get the single truncation.
 */
export function emptyArray(a: unknown[]): void {
  const n = a.length;
  if (n === 0) return;
  if (n > 16) {
    a.length = 0;
    return;
  }
  for (let i = 0; i < n; i++) a.pop();
}
