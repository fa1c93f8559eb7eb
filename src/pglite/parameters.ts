import type { PGlite, QueryOptions } from '@electric-sql/pglite'

/** What PGlite's types say a serializer returns; a byte view returned instead is sent in binary format. */
export type Serializer = (value: unknown) => string

/**
 * Query options under which a byte view (Buffer, Uint8Array) is sent as a binary-format parameter, whatever the
 * parameter's type — as node-postgres sends a Buffer — so one encoder serves both clients: the Postgres sink's binary
 * arrays (src/postgres/binary-array.ts) and pgvector's vectors (src/sinks/pgvector/binary.ts).
 *
 * Why a proxy: PGlite picks a parameter's serializer by the type OID the statement declares
 * (`options.serializers[oid]`, else its own, else `String(value)`), has none that passes bytes through, and an
 * extension's type (pgvector's `vector[]`) has no fixed OID to register one for. So every OID gets one that passes
 * bytes and otherwise applies `overrides[oid]`, else PGlite's own serializer for the type (looked up per call:
 * PGlite registers its array serializers once it has read pg_type), else `String(value)`.
 */
export function binaryParameters(db: PGlite, overrides: Readonly<Record<number, Serializer>> = {}): QueryOptions {
  const serializers = new Proxy({} as Record<string, Serializer>, {
    get: (_target, oid) => (value: unknown) => {
      if (value instanceof Uint8Array) return value as unknown as string
      if (typeof oid !== 'string') return String(value)
      const serialize = overrides[Number(oid)] ?? (db.serializers[oid] as Serializer | undefined)
      return serialize ? serialize(value) : String(value)
    }
  })
  return { serializers }
}
