import { isCanonicalUuid, writeUuidBytes } from '../uuid.ts'

/**
 * Array parameters in PostgreSQL's binary format, for the batch statement (dialect.ts).
 *
 * Why: a text array literal is read by `array_in`, a character-by-character parser (quotes, escapes, element
 * boundaries) that then calls each element type's text input function: `timestamptz_in` parses a date and time per
 * element, `uuid_in` hex digits. In binary (`array_recv`) PostgreSQL reads a length and copies bytes: a timestamp
 * is 8 bytes, a uuid 16. On our side the arrays are written straight into one Buffer each, without building and
 * joining per-element strings (array-literal.ts, the text form, stays for what has no binary fast path here).
 *
 * Both clients send a `Buffer` parameter in binary format: pg (`prepareValue` returns a Buffer as is;
 * pg-protocol's `writeValues` marks it with format code 1) and PGlite (its protocol writer does the same for any
 * ArrayBuffer view, once src/pglite/parameters.ts's serializer hands the bytes over unchanged).
 *
 * Format (`array_recv`, src/backend/utils/adt/arrayfuncs.c): int32 number of dimensions (0 for an empty array),
 * int32 flags (1 if any element is NULL), int32 element type OID, then per dimension int32 size and int32 lower
 * bound (1), then per element an int32 byte length (-1 for NULL) and the element in its type's binary form
 * (`<type>_recv`). All integers big-endian.
 */

/** Element type OIDs (pg_type.oid), which array_recv checks against the parameter's declared element type. */
export const ElementOids = {
  BOOL: 16,
  INT8: 20,
  INT4: 23,
  TEXT: 25,
  FLOAT8: 701,
  TIMESTAMPTZ: 1184,
  UUID: 2950,
  JSONB: 3802
} as const

const TWO_32 = 4_294_967_296
/** PostgreSQL's timestamp epoch, 2000-01-01T00:00:00Z, in microseconds since 1970-01-01T00:00:00Z. */
const PG_EPOCH_MICROS = 946_684_800_000_000
const PG_EPOCH_MICROS_BIG = 946_684_800_000_000n
/** Below this magnitude, µs since 1970 minus PG_EPOCH_MICROS is exact in a Number (years ~1827..2112). */
const SAFE_MICROS = 2 ** 52

/** Allocates the array with its header written; returns the buffer (elements start at `headerBytes(n)`). */
function withHeader(n: number, hasNull: boolean, elementOid: number, elementBytes: number): Buffer {
  const buffer = Buffer.allocUnsafe(headerBytes(n) + elementBytes)
  buffer.writeInt32BE(n === 0 ? 0 : 1, 0)
  buffer.writeInt32BE(hasNull ? 1 : 0, 4)
  // Unsigned: an OID is a uint32 (an extension's type, e.g. pgvector's, gets whatever the database hands out).
  buffer.writeUInt32BE(elementOid, 8)
  if (n > 0) {
    buffer.writeInt32BE(n, 12)
    buffer.writeInt32BE(1, 16)
  }
  return buffer
}

function headerBytes(n: number): number {
  return n === 0 ? 12 : 20
}

function nullCount(values: readonly unknown[]): number {
  let nulls = 0
  for (let i = 0; i < values.length; i++) if (values[i] === null || values[i] === undefined) nulls++
  return nulls
}

/** A signed 64-bit integer given as a Number that is a safe integer. */
function writeInt64(buffer: Buffer, offset: number, value: number): void {
  const high = Math.floor(value / TWO_32)
  buffer.writeInt32BE(high, offset)
  buffer.writeUInt32BE(value - high * TWO_32, offset + 4)
}

/**
 * Elements of a fixed width: the header, then per element its length and `write`, or -1 for NULL. Also for types
 * this module does not know (pgvector's vector[]: src/sinks/pgvector/binary.ts).
 */
export function fixedArray<T>(
  values: readonly (T | null)[],
  elementOid: number,
  width: number,
  write: (buffer: Buffer, offset: number, value: T) => void
): Buffer {
  const n = values.length
  const nulls = nullCount(values)
  const buffer = withHeader(n, nulls > 0, elementOid, n * 4 + (n - nulls) * width)
  let offset = headerBytes(n)
  for (let i = 0; i < n; i++) {
    const value = values[i]
    if (value === null || value === undefined) {
      buffer.writeInt32BE(-1, offset)
      offset += 4
      continue
    }
    buffer.writeInt32BE(width, offset)
    write(buffer, offset + 4, value)
    offset += 4 + width
  }
  return buffer
}

/** bool[]: one byte per element (boolrecv). */
export function boolArrayBinary(values: readonly (boolean | null)[]): Buffer {
  return fixedArray(values, ElementOids.BOOL, 1, (buffer, offset, value) => {
    buffer[offset] = value ? 1 : 0
  })
}

/** int4[]: callers pass integers in -2^31..2^31-1. */
export function int4ArrayBinary(values: readonly (number | null)[]): Buffer {
  return fixedArray(values, ElementOids.INT4, 4, (buffer, offset, value) => {
    buffer.writeInt32BE(value, offset)
  })
}

/** int8[]: callers pass safe integers (Number.isSafeInteger), which are exact in 64 bits. */
export function int8ArrayBinary(values: readonly (number | null)[]): Buffer {
  return fixedArray(values, ElementOids.INT8, 8, writeInt64)
}

/** float8[]: the IEEE 754 double as is (float8recv), so every value, -0, NaN and ±Infinity included, round-trips. */
export function float8ArrayBinary(values: readonly (number | null)[]): Buffer {
  return fixedArray(values, ElementOids.FLOAT8, 8, (buffer, offset, value) => {
    buffer.writeDoubleBE(value, offset)
  })
}

/**
 * timestamptz[] from exact microseconds since 1970-01-01T00:00:00Z (src/event-time.ts): timestamptz_recv reads int64
 * microseconds since 2000-01-01T00:00:00Z, so the instant is the same one to the microsecond, with no text to parse
 * or round. Callers pass instants inside PostgreSQL's range (src/event-time.ts keeps to 0001..9999).
 */
export function timestamptzArrayBinary(values: readonly (bigint | null)[]): Buffer {
  return fixedArray(values, ElementOids.TIMESTAMPTZ, 8, (buffer, offset, micros) => {
    const small = Number(micros)
    if (small > -SAFE_MICROS && small < SAFE_MICROS) writeInt64(buffer, offset, small - PG_EPOCH_MICROS)
    else buffer.writeBigInt64BE(micros - PG_EPOCH_MICROS_BIG, offset)
  })
}

/**
 * uuid[] from `xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx` (hex digits in either case), 16 bytes each (uuid_recv); or
 * undefined if any element has another form. uuid_in accepts more forms (braces, no hyphens, hyphens after any
 * group of four) and refuses the rest with an error: callers send those arrays as text (array-literal.ts), so that
 * PostgreSQL accepts or refuses exactly what it did before.
 */
export function uuidArrayBinary(values: readonly (string | null)[]): Buffer | undefined {
  for (const value of values) if (value !== null && value !== undefined && !isCanonicalUuid(value)) return undefined
  return fixedArray(values, ElementOids.UUID, 16, writeUuidBytes)
}

/**
 * Elements written as UTF-8 text, each after `prefix` bytes (`prefixByte`): the header, then per element its length
 * and bytes, or -1 for NULL. The buffer is allocated at its exact size, not a worst case (3 bytes per UTF-16 unit):
 * V8 counts Buffer memory as external memory, and oversized buffers schedule full garbage collections.
 */
function textLikeArray(
  values: readonly (string | Uint8Array | null)[],
  elementOid: number,
  prefixByte: number
): Buffer {
  const n = values.length
  const prefix = prefixByte < 0 ? 0 : 1
  let bytes = 0
  let nulls = 0
  for (let i = 0; i < n; i++) {
    const value = values[i]
    if (value === null || value === undefined) nulls++
    else bytes += typeof value === 'string' ? Buffer.byteLength(value, 'utf8') : value.length
  }
  const buffer = withHeader(n, nulls > 0, elementOid, n * 4 + (n - nulls) * prefix + bytes)
  let offset = headerBytes(n)
  for (let i = 0; i < n; i++) {
    const value = values[i]
    if (value === null || value === undefined) {
      buffer.writeInt32BE(-1, offset)
      offset += 4
      continue
    }
    const start = offset + 4
    if (prefix === 1) buffer[start] = prefixByte
    // Buffer#write is native and beats a JavaScript loop even for a few characters; lone surrogates become U+FFFD,
    // as they do in pg's text parameters (written by Buffer#write as well) and in Buffer.byteLength.
    let length = prefix
    if (typeof value === 'string') length += buffer.write(value, start + prefix, 'utf8')
    else {
      buffer.set(value, start + prefix)
      length += value.length
    }
    buffer.writeInt32BE(length, offset)
    offset = start + length
  }
  return buffer
}

/**
 * text[] (textrecv: UTF-8 bytes, checked by the server like any text it receives; a NUL is refused as in the text
 * form, so such an item still fails alone when the writer bisects).
 */
export function textArrayBinary(values: readonly (string | null)[]): Buffer {
  return textLikeArray(values, ElementOids.TEXT, -1)
}

/** jsonb's binary format version (jsonb_recv): the byte 1, then the JSON text, which jsonb_recv parses as jsonb_in. */
const JSONB_VERSION = 1

/**
 * jsonb[] from JSON texts (each one complete JSON value, as JSON.stringify makes it, or its UTF-8 bytes as received):
 * every element is parsed by jsonb_recv on its own, as the column's input would; one it refuses (e.g. `\u0000`)
 * fails the statement as it did in the text form, and the writer's bisection isolates that item.
 */
export function jsonbArrayBinary(values: readonly (string | Uint8Array | null)[]): Buffer {
  return textLikeArray(values, ElementOids.JSONB, JSONB_VERSION)
}
