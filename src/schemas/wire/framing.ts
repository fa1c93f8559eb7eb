import { ErrorCodes, PoisonError } from '../../errors.ts'

/**
 * The Confluent wire format: byte 0 is the magic byte 0, bytes 1-4 the schema id (big-endian int32), then the
 * payload (here: the JSON text). Every Confluent serializer (Java, confluent-kafka-python, librdkafka-based clients,
 * @platformatic/kafka) writes and reads it.
 */
export const MAGIC_BYTE = 0
export const HEADER_BYTES = 5

export function frame(schemaId: number, payload: Buffer): Buffer {
  if (!Number.isInteger(schemaId) || schemaId < 0 || schemaId > 0x7fffffff) {
    throw new RangeError(`schema id must be a 31-bit non-negative integer, got ${schemaId}`)
  }
  const header = Buffer.alloc(HEADER_BYTES)
  header.writeUInt8(MAGIC_BYTE, 0)
  header.writeInt32BE(schemaId, 1)
  return Buffer.concat([header, payload])
}

/** Splits a framed value; a value that is not framed is poison (it cannot be tied to a schema). */
export function unframe(bytes: Uint8Array): { schemaId: number; payload: Buffer } {
  const buffer = Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength)
  if (buffer.length < HEADER_BYTES || buffer[0] !== MAGIC_BYTE) {
    const first = buffer.length === 0 ? 'an empty value' : `first byte 0x${buffer[0]!.toString(16).padStart(2, '0')}`
    throw new PoisonError(
      `value is not in the Confluent wire format (magic byte 0 + 4-byte schema id): ${first}${buffer[0] === 0x7b ? ' (plain JSON?)' : ''}`,
      { code: ErrorCodes.DECODE }
    )
  }
  return { schemaId: buffer.readInt32BE(1), payload: buffer.subarray(HEADER_BYTES) }
}
