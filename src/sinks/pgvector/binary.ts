/**
 * Vectors as binary-format parameters: what pgvector's `vector_recv` reads (int16 dimensions, int16 unused = 0, then
 * each element a big-endian float4), and PostgreSQL's `array_recv` format for a `vector[]` of them.
 *
 * Why not the text form (`'[0.1,0.2,…]'`): PostgreSQL parses it character by character (array_in, then vector_in's
 * strtof per element). In PGlite that runs in WebAssembly on the runner's own thread, where parsing the text form
 * costs many times the binary form (docs/BENCHMARKS.md, `embedded`); on a server it is the backend's CPU, shared with
 * everything else. The binary form also carries the float32 exactly.
 *
 * node-postgres sends a Buffer parameter in binary format; PGlite does when the serializer for the parameter's type
 * returns the bytes (src/pglite/parameters.ts).
 */
import { endianness } from 'node:os'
import { fixedArray } from '../../postgres/binary-array.ts'

/** Bytes of one vector in `vector_recv` format. */
function vectorSize(dimensions: number): number {
  return 4 + 4 * dimensions
}

const LITTLE_ENDIAN = endianness() === 'LE'

function writeVector(out: Buffer, offset: number, vector: Float32Array): number {
  let o = out.writeInt16BE(vector.length, offset)
  o = out.writeInt16BE(0, o)
  // The floats' bytes copied at once, then put in network order by one native swap (4x fewer JS calls than a
  // writeFloatBE per element).
  const bytes = vector.length * 4
  out.set(new Uint8Array(vector.buffer, vector.byteOffset, bytes), o)
  if (LITTLE_ENDIAN) out.subarray(o, o + bytes).swap32()
  return o + bytes
}

/** One `vector` parameter (`$1::vector`). */
export function vectorBinary(vector: Float32Array): Buffer {
  const out = Buffer.allocUnsafe(vectorSize(vector.length))
  writeVector(out, 0, vector)
  return out
}

/**
 * One `vector[]` parameter (`$1::vector[]`): a one-dimensional array whose elements are vectors or NULL.
 * `vectorOid` is the `vector` type's OID in that database (an extension's type has no fixed OID; array_recv refuses
 * an array that names another element type).
 */
export function vectorArrayBinary(vectors: readonly (Float32Array | null)[], vectorOid: number): Buffer {
  const dimensions = vectors.find((v) => v !== null)?.length ?? 0
  for (const v of vectors) {
    // The store checks every vector against its table first; mixed lengths here would be a bug, not bad input.
    if (v !== null && v.length !== dimensions) throw new Error(`vector[] of ${dimensions} and ${v.length} dimensions`)
  }
  return fixedArray(vectors, vectorOid, vectorSize(dimensions), writeVector)
}
