import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { test } from 'node:test'
import { promisify } from 'node:util'
import { formatHits, parseRecallArguments } from '../../src/cli/recall.ts'
import { LexicalEmbedder } from '../../src/embedders/lexical.ts'
import { createLogger } from '../../src/logger.ts'
import { memoryVectorSink } from '../../src/memory/vectors/sink.ts'
import { ThreadedPgvectorStore } from '../../src/sinks/pgvector/index.ts'
import { vectorStoreFromEnv } from '../../src/sinks/vector/select.ts'
import { serverPgvectorSkip } from '../helpers/pgvector.ts'
import { memoryEnvelopes, upsert } from '../helpers/vectors.ts'
import { databaseUrl, testSchema } from '../sinks/postgres/helpers.ts'

const run = promisify(execFile)

test('arguments', () => {
  assert.deepEqual(parseRecallArguments(['kafka', 'lag', '-k', '3', '--namespace', 'ops']), {
    query: 'kafka lag',
    k: 3,
    json: false,
    namespace: 'ops'
  })
  assert.equal(parseRecallArguments(['-h']), 'help')
  assert.throws(() => parseRecallArguments([]), /query text is required/)
  assert.throws(() => parseRecallArguments(['q', '-k', '0']), /-k must be/)
  assert.equal(formatHits([]), 'no memories found\n')
})

test('npm run recall prints the nearest memories of the embedded store', { timeout: 60_000 }, async (t) => {
  const dataDir = await mkdtemp(join(tmpdir(), 'sfm-recall-test-'))
  t.after(() => rm(dataDir, { recursive: true, force: true }))
  const sink = memoryVectorSink({
    embedder: new LexicalEmbedder(),
    store: new ThreadedPgvectorStore({ dataDir })
  })
  await sink.write(
    memoryEnvelopes([
      upsert('k1', 'the kafka consumer group is rebalancing too often', { namespace: 'ops', type: 'incident' }),
      upsert('k2', 'kafka broker disk is almost full', { namespace: 'ops', type: 'alert' }),
      upsert('b1', 'bread recipe: flour, water, salt and yeast', { namespace: 'kitchen', type: 'note' })
    ])
  )
  await sink.close()
  const env = { ...process.env, SFM_DATA_DIR: dataDir, QDRANT_URL: '', VECTOR_DATABASE_URL: '', SFM_EMBEDDER: '' }
  const node = process.execPath
  const json = await run(node, ['src/cli/recall.ts', 'kafka consumer rebalancing', '-k', '2', '--json'], { env })
  const hits = json.stdout
    .trim()
    .split('\n')
    .map((line) => JSON.parse(line) as { id: string; score: number })
  assert.deepEqual(
    hits.map((h) => h.id),
    ['k1', 'k2']
  )
  assert.ok(hits[0]!.score > hits[1]!.score)

  const table = await run(node, ['src/cli/recall.ts', 'recipe with flour', '--namespace', 'kitchen'], { env })
  const lines = table.stdout.trim().split('\n')
  assert.match(lines[0]!, /^score\s+id\s+namespace\/type\s+excerpt/)
  assert.equal(lines.length, 2)
  assert.match(lines[1]!, /^0\.\d{4} {2}b1 {2}kitchen\/note {2}bread recipe: flour, water, salt and yeast$/)
})

test('npm run recall reads pgvector on a server PostgreSQL (VECTOR_DATABASE_URL)', {
  timeout: 60_000,
  skip: await serverPgvectorSkip()
}, async (t) => {
  const { schema } = await testSchema(t, 'sfm_recall')
  const env = {
    ...process.env,
    QDRANT_URL: '',
    VECTOR_DATABASE_URL: databaseUrl(),
    SFM_VECTOR_TABLE: `${schema}.memory_vectors`,
    SFM_EMBEDDER: ''
  }
  const sink = memoryVectorSink({
    embedder: new LexicalEmbedder(),
    store: await vectorStoreFromEnv(env, createLogger('test', 'error'))
  })
  await sink.write(
    memoryEnvelopes([
      upsert('k1', 'the kafka consumer group is rebalancing too often', { namespace: 'ops', type: 'incident' }),
      upsert('k2', 'kafka broker disk is almost full', { namespace: 'ops', type: 'alert' }),
      upsert('b1', 'bread recipe: flour, water, salt and yeast', { namespace: 'kitchen', type: 'note' })
    ])
  )
  await sink.close()
  const node = process.execPath
  const json = await run(node, ['src/cli/recall.ts', 'kafka consumer rebalancing', '-k', '2', '--json'], { env })
  const hits = json.stdout
    .trim()
    .split('\n')
    .map((line) => JSON.parse(line) as { id: string; namespace: string })
  assert.deepEqual(
    hits.map((h) => h.id),
    ['k1', 'k2']
  )
  const kitchen = await run(node, ['src/cli/recall.ts', 'kafka recipe', '--namespace', 'kitchen', '--json'], { env })
  assert.deepEqual(
    kitchen.stdout
      .trim()
      .split('\n')
      .map((line) => (JSON.parse(line) as { id: string }).id),
    ['b1']
  )
})
