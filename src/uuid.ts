/**
 * The canonical text form of a uuid, `xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx` with hex digits of either case: the form
 * `randomUUID()` and nearly every producer send. One check for the two places that take a fast path on it: the
 * Postgres sink's binary uuid[] (src/postgres/binary-array.ts, 16 bytes instead of text) and the `uuid`
 * format of validation (src/schemas/formats.ts, before ajv-formats' regular expression). Dedupe's window parses the
 * same shape (`hasCanonicalUuidShape`) into four 32-bit words with a table of its own that takes lowercase digits
 * only, since there 'A' and 'a' make different keys (src/streams/operators/uuid-set.ts).
 */

/** Hex digit values by character code (0x00..0x7f), -1 for anything else. */
const HEX = new Int8Array(128).fill(-1)
for (let d = 0; d < 10; d++) HEX[0x30 + d] = d
for (let d = 0; d < 6; d++) {
  HEX[0x41 + d] = 10 + d
  HEX[0x61 + d] = 10 + d
}

/** The byte written as two hex digits at `value[at..at+2)`, or -1. */
function hexByte(value: string, at: number): number {
  const highCode = value.charCodeAt(at)
  const lowCode = value.charCodeAt(at + 1)
  if ((highCode | lowCode) > 0x7f) return -1
  const high = HEX[highCode]!
  const low = HEX[lowCode]!
  return (high | low) < 0 ? -1 : (high << 4) | low
}

/** Where each of the 16 bytes' two hex digits start in the 36-character form (hyphens at 8, 13, 18, 23). */
const UUID_BYTES = [0, 2, 4, 6, 9, 11, 14, 16, 19, 21, 24, 26, 28, 30, 32, 34]

const HYPHEN = 0x2d

/** 36 characters with hyphens at 8, 13, 18 and 23: the canonical form's frame, before its digits are read. */
export function hasCanonicalUuidShape(value: string): boolean {
  return (
    value.length === 36 &&
    value.charCodeAt(8) === HYPHEN &&
    value.charCodeAt(13) === HYPHEN &&
    value.charCodeAt(18) === HYPHEN &&
    value.charCodeAt(23) === HYPHEN
  )
}

/** Whether `value` is a uuid in the canonical form (hex digits of either case, no braces, no `urn:uuid:`). */
export function isCanonicalUuid(value: string): boolean {
  if (!hasCanonicalUuidShape(value)) return false
  for (let b = 0; b < 16; b++) if (hexByte(value, UUID_BYTES[b]!) < 0) return false
  return true
}

/** Writes the 16 bytes of a uuid that isCanonicalUuid accepted at `bytes[offset..offset+16)`. */
export function writeUuidBytes(bytes: Uint8Array, offset: number, value: string): void {
  for (let b = 0; b < 16; b++) bytes[offset + b] = hexByte(value, UUID_BYTES[b]!)
}
