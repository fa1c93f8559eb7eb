import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { test } from 'node:test'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import { embedderFromEnv } from '../../src/embedders/index.ts'
import { LexicalEmbedder } from '../../src/embedders/lexical.ts'
import { ThreadedEmbedder } from '../../src/embedders/threaded.ts'
import { ErrorCodes, SfmError } from '../../src/errors.ts'
import { textCorpus } from '../helpers/vectors.ts'

test('on its worker thread the lexical embedder gives the inline vectors bit for bit, same revision', async (t) => {
  const options = { dimensions: 96, charNgram: 4 }
  const threaded = new ThreadedEmbedder(options)
  t.after(() => threaded.close())
  const inline = new LexicalEmbedder(options)
  assert.equal(threaded.revision, inline.revision)
  assert.equal(threaded.dimensions, 96)
  const texts = [...textCorpus(500, 7), 'Grüße aus Köln 🧠', '…', '', 'x'.repeat(20_000)]
  const expected = await inline.embed(texts)
  // Several calls in flight at once: each gets its own vectors, in order.
  const halves = await Promise.all([threaded.embed(texts.slice(0, 250)), threaded.embed(texts.slice(250))])
  const got = halves.flat()
  assert.equal(got.length, texts.length)
  for (let i = 0; i < texts.length; i++) assert.deepEqual(got[i], expected[i], `text ${i}`)
  assert.deepEqual(await threaded.embed([]), [])
})

test('closed: calls in flight and later calls fail retriable (the runtime holds the batch), never hang', async () => {
  const threaded = new ThreadedEmbedder()
  const isShutdown = (error: unknown) =>
    error instanceof SfmError && error.canRetry && error.code === ErrorCodes.SHUTDOWN
  // The expectation is attached before close() rejects the call.
  const inFlight = assert.rejects(threaded.embed(textCorpus(2000, 1)), isShutdown)
  await threaded.close()
  await inFlight
  await assert.rejects(threaded.embed(['late']), isShutdown)
})

test('an aborted call rejects with the signal’s reason; the embedder keeps working', async (t) => {
  const threaded = new ThreadedEmbedder()
  t.after(() => threaded.close())
  const controller = new AbortController()
  const call = threaded.embed(textCorpus(3000, 2), controller.signal)
  controller.abort(new Error('stop'))
  await assert.rejects(call, /stop/)
  const [v] = await threaded.embed(['still here'])
  assert.equal(v?.length, 384)
})

test('the worker keeps the process alive only while a call is in flight', async (t) => {
  // A script that embeds once and never closes: it must print the vector (the pending call holds the process) and
  // then exit by itself (an idle worker does not).
  const dir = mkdtempSync(join(tmpdir(), 'sfm-threaded-'))
  t.after(() => rmSync(dir, { recursive: true, force: true }))
  const module = fileURLToPath(new URL('../../src/embedders/threaded.ts', import.meta.url))
  const script = join(dir, 'once.mjs')
  writeFileSync(
    script,
    `const { ThreadedEmbedder } = await import(${JSON.stringify(module)})
const [v] = await new ThreadedEmbedder().embed(['hello world'])
console.log('dims', v.length)
`
  )
  const { stdout } = await promisify(execFile)(process.execPath, [script], { timeout: 30_000 })
  assert.equal(stdout.trim(), 'dims 384')
})

test('embedderFromEnv: a worker thread only when asked ({ thread: true }) and SFM_EMBEDDER_THREAD is not off', async () => {
  assert.ok(embedderFromEnv({}) instanceof LexicalEmbedder)
  const threaded = embedderFromEnv({}, { thread: true })
  assert.ok(threaded instanceof ThreadedEmbedder)
  await threaded.close?.()
  assert.ok(embedderFromEnv({ SFM_EMBEDDER_THREAD: 'off' }, { thread: true }) instanceof LexicalEmbedder)
  assert.throws(() => embedderFromEnv({ SFM_EMBEDDER_THREAD: 'yes' }, { thread: true }), /must be "on" or "off"/)
})
