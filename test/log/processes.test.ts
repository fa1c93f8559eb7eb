import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import type { EmbeddedLog } from '../../src/log/embedded-log.ts'
import { embeddedEnv, openLog, readAll, spawnNode, tempDataDir } from '../helpers/embedded-log.ts'

/** `SFM_LOG_RECORDS=50000 npm test -- test/log/processes.test.ts` runs the full size. */
const RECORDS = Number(process.env.SFM_LOG_RECORDS ?? 20_000)

interface Value {
  p: string
  seq: number
  pad: string
}

/** Dense, unique offsets from 0 in every partition, and every record whole (its JSON value parses, 1 KB). */
function assertConsistent(log: EmbeddedLog, topic: string): Value[] {
  const check = log.db.prepare('PRAGMA integrity_check').all() as { integrity_check: string }[]
  assert.deepEqual(
    check.map((r) => r.integrity_check),
    ['ok']
  )
  const values: Value[] = []
  const records = readAll(log, topic)
  for (const { partition, end } of log.partitions(topic)) {
    const offsets = records.filter((r) => r.partition === partition).map((r) => r.offset)
    assert.equal(BigInt(offsets.length), end, `partition ${partition}: ${offsets.length} records, end offset ${end}`)
    offsets.forEach((o, i) => {
      assert.equal(o, BigInt(i), `partition ${partition}: offset ${o} at position ${i}`)
    })
  }
  // Per producer and partition, records appear in the order they were sent (keys keep their order).
  const lastSeq = new Map<string, number>()
  for (const r of records) {
    assert.equal(r.value?.length, 1024)
    const v = JSON.parse(r.value!.toString()) as Value
    assert.equal(r.key?.toString(), `k${v.seq % 101}`)
    assert.equal(r.headers.get('producer')?.toString(), v.p)
    const k = `${v.p}:${r.partition}`
    assert.ok(v.seq > (lastSeq.get(k) ?? -1), `${k}: seq ${v.seq} after ${lastSeq.get(k)}`)
    lastSeq.set(k, v.seq)
    values.push(v)
  }
  return values
}

describe('embedded log across processes', () => {
  test(`two producer processes append ${RECORDS} records of 1 KB each at once: none lost, offsets dense`, {
    timeout: 300_000
  }, async (t) => {
    const dir = tempDataDir(t)
    const log = openLog(t, dir)
    log.createTopic({ name: 'shared', partitions: 6 })
    const started = performance.now()
    const producers = ['a', 'b'].map((id) =>
      spawnNode(['test/fixtures/embedded-producer.ts', id, 'shared', String(RECORDS), '1024', '500'], embeddedEnv(dir))
    )
    const exits = await Promise.all(producers.map((p) => p.exited))
    const seconds = (performance.now() - started) / 1000
    exits.forEach((e, i) => {
      assert.equal(e.code, 0, producers[i]!.stderr())
    })
    const values = assertConsistent(log, 'shared')
    assert.equal(values.length, 2 * RECORDS)
    for (const id of ['a', 'b']) {
      const seqs = new Set(values.filter((v) => v.p === id).map((v) => v.seq))
      assert.equal(seqs.size, RECORDS, `producer ${id}: every record exactly once`)
    }
    t.diagnostic(
      `${2 * RECORDS} records in ${seconds.toFixed(1)} s including two Node start-ups: ${Math.round((2 * RECORDS) / seconds)} records/s`
    )
  })

  test('kill -9 of a producer mid-write leaves no partial or corrupt record, only whole batches', {
    timeout: 120_000
  }, async (t) => {
    const dir = tempDataDir(t)
    const log = openLog(t, dir)
    log.createTopic({ name: 'killed', partitions: 3 })
    const batch = 250
    for (let round = 0; round < 3; round++) {
      const producer = spawnNode(
        ['test/fixtures/embedded-producer.ts', `r${round}`, 'killed', '1000000', '1024', String(batch)],
        embeddedEnv(dir)
      )
      const deadline = Date.now() + 30_000
      while (!/sent \d+/.test(producer.stdout()) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20))
      assert.match(producer.stdout(), /sent/, producer.stderr())
      await new Promise((r) => setTimeout(r, 100 + Math.random() * 400))
      producer.child.kill('SIGKILL')
      const { signal } = await producer.exited
      assert.equal(signal, 'SIGKILL')
      const acknowledged = Math.max(...[...producer.stdout().matchAll(/sent (\d+)/g)].map((m) => Number(m[1])))
      const values = assertConsistent(log, 'killed').filter((v) => v.p === `r${round}`)
      // Every acknowledged batch is there; the batch in flight at the kill is there whole or not at all.
      assert.ok(values.length >= acknowledged, `${values.length} stored < ${acknowledged} acknowledged`)
      assert.equal(values.length % batch, 0, `${values.length} records: a batch was split`)
      assert.equal(new Set(values.map((v) => v.seq)).size, values.length)
      assert.equal(Math.max(...values.map((v) => v.seq)), values.length - 1, 'a prefix of what was sent')
      t.diagnostic(`round ${round}: killed after ${acknowledged} acknowledged, ${values.length} stored`)
    }
  })
})
