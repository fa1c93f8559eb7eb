import assert from 'node:assert/strict'
import { join } from 'node:path'
import { describe, test } from 'node:test'
import { embeddedTopicReader, parseDeadLetterFilter } from '../../src/console/data.ts'
import { ConsoleRecorder } from '../../src/console/recorder.ts'
import { startConsole } from '../../src/console/server.ts'
import { openEmbeddedLog } from '../../src/log/embedded-log.ts'
import type { Source } from '../../src/sources/types.ts'
import { DeadLetterHeaders } from '../../src/streams/dead-letter.ts'
import type { RuntimeStats } from '../../src/streams/runtime.ts'
import { branch, defineTopology } from '../../src/streams/topology.ts'
import { tempDataDir } from '../helpers/embedded-log.ts'

const stats: RuntimeStats = {
  consumed: 5,
  done: 5,
  deadLettered: 3,
  dropped: 0,
  inFlight: 0,
  inFlightBytes: 0,
  lag: 0n,
  commits: 1,
  commitErrors: 0,
  sinkRetries: 0,
  sourceReconnects: 0,
  sourceHeld: undefined,
  sinksHeld: [],
  assigned: []
}

const topology = defineTopology<unknown>({
  name: 't',
  source: { description: 'test', next: async () => undefined } as unknown as Source,
  branches: { kv: branch({ kind: 'test', write: async () => undefined }) },
  deadLetter: { description: 'dlq', write: async () => {} }
})

function letter(stage: string, errorClass: string, n: number) {
  return {
    topic: 'memory.dlq',
    key: Buffer.from(`k${n}`),
    value: Buffer.from(`{"n":${n}}`),
    headers: new Map([
      [DeadLetterHeaders.STAGE, Buffer.from(stage)],
      [DeadLetterHeaders.ERROR_CLASS, Buffer.from(errorClass)],
      [DeadLetterHeaders.ERROR_CODE, Buffer.from(`SFM_${stage.toUpperCase()}`)],
      [DeadLetterHeaders.ERROR_MESSAGE, Buffer.from(`failed ${n}`)],
      [DeadLetterHeaders.FAILED_AT, Buffer.from(new Date(Date.UTC(2026, 0, 1, 0, 0, n)).toISOString())],
      ['traceparent', Buffer.from('00-abc')]
    ])
  }
}

describe('console API (embedded log)', () => {
  test('lists dead letters by stage and class, filters them, opens one; bad input is a clear 4xx', async (t) => {
    const dir = tempDataDir(t, 'sfm-console-')
    const log = openEmbeddedLog({ path: join(dir, 'log.sqlite') })
    log.createTopic({ name: 'memory.dlq', partitions: 1 })
    log.append([letter('decode', 'PoisonError', 1), letter('validate', 'PoisonError', 2), letter('kv', 'Error', 3)])
    const reader = embeddedTopicReader(dir)
    const recorder = new ConsoleRecorder(topology, () => stats, { intervalMs: 50 })
    const server = await startConsole({
      recorder,
      reader,
      dlqTopic: 'memory.dlq',
      memory: { auditTopic: 'memory.audit', reader },
      port: 0
    })
    t.after(async () => {
      recorder.stop()
      await server.close()
      reader.close()
      log.close()
    })
    assert.match(server.url, /^http:\/\/127\.0\.0\.1:\d+\/$/)
    const get = async (path: string, init?: RequestInit) => {
      const res = await fetch(new URL(path, server.url), init)
      return { status: res.status, body: (await res.json()) as Record<string, unknown> }
    }

    const all = await get('/api/dlq')
    assert.equal(all.status, 200)
    assert.equal(all.body.total, 3)
    assert.deepEqual(all.body.byStage, { decode: { PoisonError: 1 }, validate: { PoisonError: 1 }, kv: { Error: 1 } })
    // Newest first.
    assert.deepEqual(
      (all.body.letters as Array<{ offset: string }>).map((l) => l.offset),
      ['2', '1', '0']
    )
    const filtered = await get(`/api/dlq?filter=${encodeURIComponent('stage:validate class:PoisonError')}`)
    assert.equal(filtered.body.matching, 1)
    assert.equal((filtered.body.letters as Array<{ message: string }>)[0]?.message, 'failed 2')

    const byCode = await get(`/api/dlq?filter=${encodeURIComponent('code:SFM_KV')}`)
    assert.deepEqual(
      (byCode.body.letters as Array<{ offset: string; errorCode: string }>).map((l) => [l.offset, l.errorCode]),
      [['2', 'SFM_KV']]
    )

    const one = await get('/api/dlq/letter?partition=0&offset=1')
    assert.equal(one.status, 200)
    const headers = one.body.headers as Record<string, string>
    assert.equal(headers[DeadLetterHeaders.STAGE], 'validate')
    assert.equal(Object.keys(headers).at(-1), 'traceparent', 'sfm.dlq.* headers come first')
    assert.deepEqual(one.body.value, { text: '{"n":2}', encoding: 'utf8' })

    const malformed = await get(`/api/dlq?filter=${encodeURIComponent('stage=validate')}`)
    assert.equal(malformed.status, 400)
    assert.match(String(malformed.body.error), /malformed filter term "stage=validate"/)
    const unknownKey = await get(`/api/dlq?filter=${encodeURIComponent('color:red')}`)
    assert.equal(unknownKey.status, 400)
    assert.match(String(unknownKey.body.error), /unknown filter key "color"/)
    const missing = await get('/api/dlq/letter?partition=0&offset=9')
    assert.equal(missing.status, 404)
    assert.match(String(missing.body.error), /no letter at offset 9 \(it holds offsets 0\.\.2\)/)
    const badOffset = await get('/api/dlq/letter?partition=0&offset=-1')
    assert.equal(badOffset.status, 400)

    const unknownId = await get('/api/memory?id=nobody')
    assert.equal(unknownId.status, 404)
    assert.match(String(unknownId.body.error), /no memory with id "nobody"/)
    const badId = await get(`/api/memory?id=${encodeURIComponent('a\u0001b')}`)
    assert.equal(badId.status, 400)

    const write = await get('/api/dlq/redrive', { method: 'POST', headers: { 'x-sfm-console': '1' }, body: '{}' })
    assert.equal(write.status, 403)
    assert.match(String(write.body.error), /writes are not allowed.*--console-allow-writes/)
    // Nothing changed.
    assert.equal((await get('/api/dlq')).body.total, 3)

    const page = await fetch(server.url)
    assert.equal(page.status, 200)
    assert.match(page.headers.get('content-security-policy') ?? '', /default-src 'none'/)
    const html = await page.text()
    assert.doesNotMatch(html, /(src|href)="(https?:)?\/\//, 'no external assets')
  })

  test('with writes allowed, a redrive gets the selection npm run dlq -- redrive takes: a letter gives its stage and code', async (t) => {
    const dir = tempDataDir(t, 'sfm-console-')
    const log = openEmbeddedLog({ path: join(dir, 'log.sqlite') })
    log.createTopic({ name: 'memory.dlq', partitions: 1 })
    log.append([letter('decode', 'PoisonError', 1), letter('validate', 'PoisonError', 2)])
    const reader = embeddedTopicReader(dir)
    const recorder = new ConsoleRecorder(topology, () => stats, { intervalMs: 50 })
    const selections: unknown[] = []
    const server = await startConsole({
      recorder,
      reader,
      dlqTopic: 'memory.dlq',
      memory: { auditTopic: 'memory.audit', reader },
      port: 0,
      allowWrites: true,
      redrive: async (selection) => {
        selections.push(selection)
        return { matched: 1, redriven: 1 }
      }
    })
    t.after(async () => {
      recorder.stop()
      await server.close()
      reader.close()
      log.close()
    })
    const post = async (body: unknown, headers: Record<string, string> = { 'x-sfm-console': '1' }) => {
      const res = await fetch(new URL('/api/dlq/redrive', server.url), {
        method: 'POST',
        headers: { 'content-type': 'application/json', ...headers },
        body: JSON.stringify(body)
      })
      return { status: res.status, body: (await res.json()) as Record<string, unknown> }
    }
    const one = await post({ partition: 0, offset: 1 })
    assert.equal(one.status, 200)
    assert.deepEqual(one.body, { selection: { stage: 'validate', errorCode: 'SFM_VALIDATE' }, matched: 1, redriven: 1 })
    const set = await post({ filter: 'stage:decode code:SFM_DECODE' })
    assert.equal(set.status, 200)
    const byClass = await post({ filter: 'class:PoisonError' })
    assert.equal(byClass.status, 400)
    assert.match(String(byClass.body.error), /by stage and code.*remove class:/)
    const noHeader = await post({ filter: '' }, {})
    assert.equal(noHeader.status, 403)
    const missing = await post({ partition: 0, offset: 7 })
    assert.equal(missing.status, 404)
    assert.deepEqual(selections, [
      { stage: 'validate', errorCode: 'SFM_VALIDATE' },
      { stage: 'decode', errorCode: 'SFM_DECODE' }
    ])
  })

  test('filter grammar', () => {
    assert.deepEqual(parseDeadLetterFilter(''), {})
    assert.deepEqual(parseDeadLetterFilter('  class:PoisonError  stage:decode '), {
      class: 'PoisonError',
      stage: 'decode'
    })
    assert.throws(() => parseDeadLetterFilter('stage:a stage:b'), /given twice/)
    assert.throws(() => parseDeadLetterFilter('stage:'), /malformed/)
    assert.throws(() => parseDeadLetterFilter('x'.repeat(600)), /too long/)
  })
})
