import assert from 'node:assert/strict'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { test } from 'node:test'
import { ErrorCodes, SfmError } from '../../../src/errors.ts'
import { createLogger } from '../../../src/logger.ts'
import { acquireFolderLock, LockRoles } from '../../../src/pglite/folder-lock.ts'
import { PgvectorIndexes, PgvectorStore, ThreadedPgvectorStore } from '../../../src/sinks/pgvector/index.ts'
import { pgvectorIndexFromEnv, vectorStoreFromEnv } from '../../../src/sinks/vector/select.ts'

const quiet = createLogger('test', 'error')

test('the embedded store searches exactly unless SFM_VECTOR_INDEX=hnsw; a server store keeps HNSW unless exact', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'sfm-select-'))
  t.after(() => rmSync(dir, { recursive: true, force: true }))

  const embedded = await vectorStoreFromEnv({ SFM_DATA_DIR: dir }, quiet)
  assert.ok(embedded instanceof ThreadedPgvectorStore)
  assert.equal(embedded.index, PgvectorIndexes.EXACT)
  assert.equal(embedded.folder, join(dir, 'vectors'))
  assert.match(embedded.description, /PGlite at .*vectors \(own thread\), table memory_vectors, exact search/)
  await embedded.close()

  const hnsw = await vectorStoreFromEnv({ SFM_DATA_DIR: dir, SFM_VECTOR_INDEX: 'hnsw' }, quiet)
  assert.ok(hnsw instanceof ThreadedPgvectorStore)
  assert.equal(hnsw.index, PgvectorIndexes.HNSW)
  assert.match(hnsw.description, /HNSW index \(m 12, ef_construction 40\)/)
  await hnsw.close()

  // Constructing a server store opens no connection, so an unreachable URL is fine here.
  const server = await vectorStoreFromEnv({ VECTOR_DATABASE_URL: 'postgres://nobody@127.0.0.1:1/none' }, quiet)
  assert.ok(server instanceof PgvectorStore)
  assert.equal(server.index, PgvectorIndexes.HNSW)
  await server.close()
  const exact = await vectorStoreFromEnv(
    { VECTOR_DATABASE_URL: 'postgres://nobody@127.0.0.1:1/none', SFM_VECTOR_INDEX: 'exact' },
    quiet
  )
  assert.ok(exact instanceof PgvectorStore)
  assert.equal(exact.index, PgvectorIndexes.EXACT)
  await exact.close()
})

test('SFM_VECTOR_INDEX: unset or empty is the store default; anything but hnsw/exact is a config error', () => {
  assert.equal(pgvectorIndexFromEnv({}), undefined)
  assert.equal(pgvectorIndexFromEnv({ SFM_VECTOR_INDEX: '' }), undefined)
  assert.equal(pgvectorIndexFromEnv({ SFM_VECTOR_INDEX: 'exact' }), 'exact')
  assert.throws(
    () => pgvectorIndexFromEnv({ SFM_VECTOR_INDEX: 'HNSW' }),
    (error: unknown) =>
      error instanceof SfmError &&
      error.code === ErrorCodes.CONFIG &&
      /must be hnsw or exact, got "HNSW"/.test(error.message)
  )
})

test('lock: the embedded store takes its folder lock when built; without the option, only at open', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'sfm-select-lock-'))
  t.after(() => rmSync(dir, { recursive: true, force: true }))
  const owner = await vectorStoreFromEnv({ SFM_DATA_DIR: dir }, quiet, { lock: LockRoles.OWNER })
  assert.throws(() => acquireFolderLock(join(dir, 'vectors')), /already open in this process/)
  await owner.close()
  // Without the option nothing is locked until open.
  const lazy = await vectorStoreFromEnv({ SFM_DATA_DIR: dir }, quiet)
  const lock = acquireFolderLock(join(dir, 'vectors'))
  lock.release()
  await lazy.close()
})
