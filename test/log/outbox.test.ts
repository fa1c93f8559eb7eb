import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { test } from 'node:test'
import { partitionForKey } from '../../src/log/partitioner.ts'
import { EmbeddedLogSource } from '../../src/sources/embedded/index.ts'
import { openLog, readAll, tempDataDir } from '../helpers/embedded-log.ts'

const python = spawnSync('python3', ['--version'], { encoding: 'utf8' })
const skip = python.status === 0 ? false : 'python3 is not installed: the documented Python outbox is not run'

/** The ```python block of docs/EMBEDDED-LOG.md, run as written. */
function documentedOutbox(): string {
  const doc = readFileSync(new URL('../../docs/EMBEDDED-LOG.md', import.meta.url), 'utf8')
  const block = /```python\n([\s\S]*?)```/.exec(doc)?.[1]
  assert.ok(block, 'docs/EMBEDDED-LOG.md has a python block')
  return block
}

test('the Python outbox of docs/EMBEDDED-LOG.md appends events the runner reads, on Kafka’s partitions', {
  skip
}, async (t) => {
  const dir = tempDataDir(t)
  const script = join(dir, 'outbox.py')
  writeFileSync(script, documentedOutbox())
  const log = openLog(t, dir)
  // A program must refuse a path that is not a log (and must not create one).
  const missing = spawnSync('python3', [script, join(dir, 'nope.sqlite')], { input: '', encoding: 'utf8' })
  assert.notEqual(missing.status, 0)

  const ids = Array.from({ length: 60 }, (_, i) => `mem-${i}-${'ü'.repeat(i % 4)}`)
  const input = `${ids.map((id, i) => JSON.stringify({ id, i })).join('\n')}\n`
  const run = spawnSync('python3', [script, log.path], { input, encoding: 'utf8' })
  assert.equal(run.status, 0, run.stderr)
  const printed = run.stdout.trim().split('\n')
  assert.equal(printed.length, ids.length)
  ids.forEach((id, i) => {
    const [partition] = printed[i]!.split(' ').map(Number)
    assert.equal(partition, partitionForKey(Buffer.from(id), 6), `${id}: Python and Kafka agree on the partition`)
  })
  assert.equal(log.topic('memory.events')?.partitions, 6)

  const records = readAll(log, 'memory.events')
  assert.equal(records.length, ids.length)
  assert.ok(records.every((r) => r.headers.get('source')?.toString() === 'python'))

  const source = new EmbeddedLogSource({
    path: log.path,
    topics: ['memory.events'],
    groupId: 'g',
    retentionIntervalMs: 0
  })
  await source.open({ rebalancing() {}, assigned() {} })
  t.after(() => source.close())
  const seen = new Set<string>()
  const signal = AbortSignal.timeout(5_000)
  while (seen.size < ids.length) {
    const m = await source.next(signal)
    if (!m) break
    const event = JSON.parse(m.value.toString()) as { id: string }
    assert.equal(m.key?.toString(), event.id)
    seen.add(event.id)
  }
  assert.equal(seen.size, ids.length)
})
