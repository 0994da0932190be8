/**
 * ErrorResponse / NoticeResponse field codes and the PgErrorFields shape.
 *
 * Both messages carry a list of (Byte1 field code, String value) pairs ended by a zero byte.
 * This file only holds the code ↔ name mapping and the types; the wire walking lives in
 * backend.ts (decodeErrorFields / encodeErrorResponse) so the hot relay path has one place to look.
 *
 * @see https://www.postgresql.org/docs/current/protocol-error-fields.html
 */

/** Severity values PostgreSQL sends in the non-localized 'V' field. */
export type Severity = 'ERROR' | 'FATAL' | 'PANIC' | 'WARNING' | 'NOTICE' | 'DEBUG' | 'INFO' | 'LOG';

/**
 * Decoded error/notice fields. `severity`, `code` and `message` are always present on the wire
 * (decoders fill '' if a misbehaving server omits them); `severity` may be localized, `severityNonLocalized` never is.
 * @see https://www.postgresql.org/docs/current/protocol-error-fields.html
 */
export interface PgErrorFields {
  severity: string;
  severityNonLocalized?: string;
  code: string;
  message: string;
  detail?: string;
  hint?: string;
  position?: string;
  internalPosition?: string;
  internalQuery?: string;
  where?: string;
  schema?: string;
  table?: string;
  column?: string;
  dataType?: string;
  constraint?: string;
  file?: string;
  line?: string;
  routine?: string;
}

/** Fields pgmaitre supplies when it builds an ErrorResponse/NoticeResponse itself ('S' and 'V' both get `severity`). */
export type ErrorFieldsInput = Omit<PgErrorFields, 'severity' | 'severityNonLocalized' | 'position' | 'line'> & {
  severity: Severity;
  position?: string | number;
  line?: string | number;
};

/** Field name → one-byte field code. @see https://www.postgresql.org/docs/current/protocol-error-fields.html */
export const ErrorFieldCode = {
  severity: 'S',
  severityNonLocalized: 'V',
  code: 'C',
  message: 'M',
  detail: 'D',
  hint: 'H',
  position: 'P',
  internalPosition: 'p',
  internalQuery: 'q',
  where: 'W',
  schema: 's',
  table: 't',
  column: 'c',
  dataType: 'd',
  constraint: 'n',
  file: 'F',
  line: 'L',
  routine: 'R',
} as const satisfies Record<keyof PgErrorFields, string>;
export type ErrorFieldName = keyof typeof ErrorFieldCode;
export type ErrorFieldCode = (typeof ErrorFieldCode)[ErrorFieldName];

/** Field names in the order encoders emit them (S, V, C, M first, as PostgreSQL does). */
export const ErrorFieldOrder: readonly ErrorFieldName[] = Object.keys(ErrorFieldCode) as ErrorFieldName[];

/**
 * Byte value → field name, indexed by the code's char code (undefined for unknown codes, which
 * frontends must ignore). A flat array so the decoder does one indexed load per field.
 * @see https://www.postgresql.org/docs/current/protocol-error-fields.html
 */
export const ErrorFieldNameByByte: readonly (ErrorFieldName | undefined)[] = (() => {
  const table: (ErrorFieldName | undefined)[] = new Array<ErrorFieldName | undefined>(128).fill(undefined);
  for (const name of ErrorFieldOrder) table[ErrorFieldCode[name].charCodeAt(0)] = name;
  return table;
})();
