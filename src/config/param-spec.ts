/**
 * Parameter specification types and the value parsers shared by every config key.
 *
 * A spec says how a raw pgpool.conf string becomes a typed value: booleans the way
 * PostgreSQL spells them, integers (decimal, 0x hex or leading-0 octal as strtol base 0
 * does) with optional time/memory units converted to the key's base unit, reals, enums
 * (case-insensitive), and separator-split lists. Conversions never round: a value that
 * is not a whole number of base units is an error, not a silent truncation.
 */

/** When a change to the key takes effect: on SIGHUP reload, or only after a restart. */
export type Reload = 'hot' | 'restart';

/** Base unit of a time or memory parameter, as pgpool defines it for that key. */
export type UnitKind = 'ms' | 's' | 'min' | 'B' | 'kB';

/** Flags common to every parameter spec. */
export interface SpecFlags {
  /** pgmaitre acts on this key (false: accepted, warned about, ignored). */
  readonly implemented: boolean;
  /** pgpool lets `PGPOOL SET` change it for one session (CFGCXT_SESSION). */
  readonly session: boolean;
  /** A key of pgmaitre's own, not pgpool-II's. */
  readonly pgmaitre: boolean;
  /** Never show the value in logs or SHOW output. */
  readonly secret: boolean;
  /** A file name: relative values resolve against the config file's directory. */
  readonly path: boolean;
}

interface SpecCommon extends SpecFlags {
  readonly reload: Reload;
  readonly doc: string;
}

/** Boolean parameter. */
export interface BoolSpec extends SpecCommon { readonly type: 'bool'; readonly default: boolean }
/** Integer parameter, possibly with a unit. */
export interface IntSpec extends SpecCommon {
  readonly type: 'int';
  readonly default: number;
  readonly min: number;
  readonly max: number;
  readonly unit?: UnitKind;
}
/** Floating-point parameter. */
export interface RealSpec extends SpecCommon {
  readonly type: 'real';
  readonly default: number;
  readonly min: number;
  readonly max: number;
}
/** Free-form string parameter. */
export interface StringSpec extends SpecCommon { readonly type: 'string'; readonly default: string }
/** One value out of a fixed set (matched case-insensitively). */
export interface EnumSpec<V extends readonly string[] = readonly string[]> extends SpecCommon {
  readonly type: 'enum';
  readonly values: V;
  readonly default: V[number];
}
/** A separator-split list of strings. */
export interface ListSpec extends SpecCommon {
  readonly type: 'list';
  readonly default: readonly string[];
  readonly separator: ',' | ';';
}

/** Any parameter spec. */
export type ParamSpec = BoolSpec | IntSpec | RealSpec | StringSpec | EnumSpec | ListSpec;

/** The TypeScript type of a parsed value for a given spec. */
export type ValueOf<S> = S extends { type: 'bool' }
  ? boolean
  : S extends { type: 'int' | 'real' }
    ? number
    : S extends { type: 'enum'; values: readonly (infer V)[] }
      ? V
      : S extends { type: 'list' }
        ? readonly string[]
        : string;

/** Any parsed parameter value. */
export type ParamValue = boolean | number | string | readonly string[];

/** Optional flags accepted by the spec constructors below. */
export interface FlagOpts {
  impl?: boolean;
  session?: boolean;
  pgmaitre?: boolean;
  secret?: boolean;
  path?: boolean;
}

const INT_MAX = 2147483647;
/** Upper bound of pgpool's `long` parameters that we can represent exactly. */
export const LONG_MAX = Number.MAX_SAFE_INTEGER;
/** Upper bound of pgpool's `int` parameters. */
export const INT32_MAX = INT_MAX;

function flags(o: FlagOpts | undefined): SpecFlags {
  return {
    implemented: o?.impl === true,
    session: o?.session === true,
    pgmaitre: o?.pgmaitre === true,
    secret: o?.secret === true,
    path: o?.path === true,
  };
}

/** Declare a boolean parameter. */
export function bool(def: boolean, reload: Reload, doc: string, o?: FlagOpts): BoolSpec {
  return { type: 'bool', default: def, reload, doc, ...flags(o) };
}

/** Declare an integer parameter. */
export function int(
  def: number,
  reload: Reload,
  doc: string,
  o?: FlagOpts & { min?: number; max?: number; unit?: UnitKind },
): IntSpec {
  const spec: IntSpec = {
    type: 'int',
    default: def,
    min: o?.min ?? 0,
    max: o?.max ?? INT_MAX,
    reload,
    doc,
    ...flags(o),
    ...(o?.unit !== undefined ? { unit: o.unit } : {}),
  };
  return spec;
}

/** Declare a floating-point parameter. */
export function real(def: number, reload: Reload, doc: string, o?: FlagOpts & { min?: number; max?: number }): RealSpec {
  return { type: 'real', default: def, min: o?.min ?? 0, max: o?.max ?? Number.MAX_VALUE, reload, doc, ...flags(o) };
}

/** Declare a string parameter. */
export function str(def: string, reload: Reload, doc: string, o?: FlagOpts): StringSpec {
  return { type: 'string', default: def, reload, doc, ...flags(o) };
}

/** Declare an enum parameter. */
export function oneOf<const V extends readonly string[]>(
  values: V,
  def: V[number],
  reload: Reload,
  doc: string,
  o?: FlagOpts,
): EnumSpec<V> {
  return { type: 'enum', values, default: def, reload, doc, ...flags(o) };
}

/** Declare a list parameter (comma-separated unless told otherwise). */
export function list(
  def: readonly string[],
  reload: Reload,
  doc: string,
  o?: FlagOpts & { separator?: ',' | ';' },
): ListSpec {
  return { type: 'list', default: def, separator: o?.separator ?? ',', reload, doc, ...flags(o) };
}

// ---------------------------------------------------------------------------
// Value parsing
// ---------------------------------------------------------------------------

/** Result of parsing one raw value. */
export type ParseResult = { ok: true; value: ParamValue } | { ok: false; error: string };

const TRUE_WORDS = new Set(['on', 'true', 'yes', '1', 't', 'y']);
const FALSE_WORDS = new Set(['off', 'false', 'no', '0', 'f', 'n']);

/** Multipliers from a unit suffix to the milliseconds / bytes base. */
const TIME_MS: Readonly<Record<string, number>> = { us: 0.001, ms: 1, s: 1000, min: 60_000, h: 3_600_000, d: 86_400_000 };
const MEM_B: Readonly<Record<string, number>> = { B: 1, kB: 1024, MB: 1024 ** 2, GB: 1024 ** 3, TB: 1024 ** 4 };
const BASE: Readonly<Record<UnitKind, { table: Readonly<Record<string, number>>; factor: number; name: string }>> = {
  ms: { table: TIME_MS, factor: 1, name: 'milliseconds' },
  s: { table: TIME_MS, factor: 1000, name: 'seconds' },
  min: { table: TIME_MS, factor: 60_000, name: 'minutes' },
  B: { table: MEM_B, factor: 1, name: 'bytes' },
  kB: { table: MEM_B, factor: 1024, name: 'kilobytes' },
};

function quote(raw: string): string {
  return JSON.stringify(raw);
}

function rangeText(spec: IntSpec | RealSpec, what: string): string {
  if (spec.max >= INT_MAX || spec.max >= LONG_MAX || spec.max === Number.MAX_VALUE) return `must be ${what} >= ${spec.min}`;
  return `must be ${what} between ${spec.min} and ${spec.max}`;
}

/** strtol(…, 0)-style integer: decimal, 0x hex, or leading-0 octal; undefined if not one. */
function parseCInteger(s: string): number | undefined {
  const m = /^([+-]?)(0[xX][0-9a-fA-F]+|0[0-7]*|[1-9][0-9]*)$/.exec(s);
  if (m === null) return undefined;
  const sign = m[1] === '-' ? -1 : 1;
  const body = m[2] ?? '';
  let n: number;
  if (/^0[xX]/.test(body)) n = parseInt(body.slice(2), 16);
  else if (body.length > 1 && body.startsWith('0')) n = parseInt(body.slice(1), 8);
  else n = parseInt(body, 10);
  return sign * n;
}

function parseIntValue(spec: IntSpec, raw: string): ParseResult {
  const s = raw.trim();
  const what = spec.unit !== undefined ? `an integer number of ${BASE[spec.unit].name}` : 'an integer';
  let n = parseCInteger(s);
  if (n === undefined) {
    const m = /^([+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)\s*([a-zA-Z]+)?$/.exec(s);
    if (m === null || m[2] === undefined) return { ok: false, error: `${rangeText(spec, what)}, got ${quote(raw)}` };
    if (spec.unit === undefined) return { ok: false, error: `does not accept units, got ${quote(raw)}` };
    const base = BASE[spec.unit];
    const mult = base.table[m[2]];
    if (mult === undefined) {
      const valid = Object.keys(base.table).join(', ');
      return { ok: false, error: `invalid unit ${quote(m[2])} in ${quote(raw)} (valid units: ${valid})` };
    }
    const converted = (Number(m[1]) * mult) / base.factor;
    const rounded = Math.round(converted);
    if (Math.abs(converted - rounded) > 1e-9 * Math.max(1, Math.abs(converted))) {
      return { ok: false, error: `${quote(raw)} is not an integral number of ${base.name}` };
    }
    n = rounded;
  }
  if (!Number.isSafeInteger(n) || n < spec.min || n > spec.max) {
    return { ok: false, error: `${rangeText(spec, what)}, got ${quote(raw)}` };
  }
  return { ok: true, value: n };
}

function parseReal(spec: RealSpec, raw: string): ParseResult {
  const s = raw.trim();
  if (!/^[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?$/.test(s)) {
    return { ok: false, error: `${rangeText(spec, 'a number')}, got ${quote(raw)}` };
  }
  const n = Number(s);
  if (!Number.isFinite(n) || n < spec.min || n > spec.max) {
    return { ok: false, error: `${rangeText(spec, 'a number')}, got ${quote(raw)}` };
  }
  return { ok: true, value: n };
}

/** Split a list value on the separator; a backslash keeps a separator inside an item. */
export function splitList(raw: string, separator: ',' | ';'): string[] {
  const items: string[] = [];
  let cur = '';
  for (let i = 0; i < raw.length; i++) {
    const ch = raw[i] ?? '';
    if (ch === '\\' && raw[i + 1] === separator) {
      cur += separator;
      i++;
    } else if (ch === separator) {
      items.push(cur);
      cur = '';
    } else {
      cur += ch;
    }
  }
  items.push(cur);
  return items.map((x) => x.trim()).filter((x) => x.length > 0);
}

/** Parse one raw pgpool.conf value according to its spec. */
export function parseValue(spec: ParamSpec, raw: string): ParseResult {
  switch (spec.type) {
    case 'bool': {
      const w = raw.trim().toLowerCase();
      if (TRUE_WORDS.has(w)) return { ok: true, value: true };
      if (FALSE_WORDS.has(w)) return { ok: true, value: false };
      return { ok: false, error: `must be a boolean (on/off, true/false, yes/no, 1/0), got ${quote(raw)}` };
    }
    case 'int':
      return parseIntValue(spec, raw);
    case 'real':
      return parseReal(spec, raw);
    case 'string':
      return { ok: true, value: raw };
    case 'enum': {
      const w = raw.trim().toLowerCase();
      const hit = spec.values.find((v) => v.toLowerCase() === w);
      if (hit === undefined) return { ok: false, error: `must be one of ${spec.values.join(', ')}; got ${quote(raw)}` };
      return { ok: true, value: hit };
    }
    case 'list':
      return { ok: true, value: splitList(raw, spec.separator) };
    default: {
      const never: never = spec;
      return never;
    }
  }
}
