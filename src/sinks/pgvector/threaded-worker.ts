/**
 * The worker side of ThreadedPgvectorStore (threaded.ts): the vector index's own PGlite and a PgvectorStore on it.
 * The folder's lock is held by the calling thread's process; this worker is the only thing that opens the folder.
 */
import { workerData } from 'node:worker_threads'
import { serveRpc } from '../../workers/rpc.ts'
import type { VectorDelete, VectorEvict, VectorRecord } from '../vector/types.ts'
import { pgliteDatabase } from './database.ts'
import { PgvectorStore, type PgvectorStoreOptions } from './store.ts'

const { folder, options } = workerData as { folder: string; options: Partial<PgvectorStoreOptions> }
const store = new PgvectorStore(await pgliteDatabase(folder), options)

serveRpc({
  open: (dimensions: number) => store.open(dimensions),
  fences: (ids: readonly string[]) => store.fences(ids),
  points: (ids: readonly string[]) => store.points(ids),
  write: (upserts: readonly VectorRecord[], deletes: readonly VectorDelete[]) => store.write(upserts, deletes),
  reembed: (records: readonly VectorRecord[]) => store.reembed(records),
  reinstate: (records: readonly VectorRecord[]) => store.reinstate(records),
  evict: (points: readonly VectorEvict[]) => store.evict(points),
  search: (vector: Float32Array, k: number, namespace?: string, type?: string) =>
    store.search(vector, {
      k,
      ...(namespace === undefined ? {} : { namespace }),
      ...(type === undefined ? {} : { type })
    }),
  count: () => store.count(),
  close: () => store.close()
})
