import assert from 'node:assert/strict'
import { existsSync } from 'node:fs'
import { join } from 'node:path'
import { DatabaseSync } from 'node:sqlite'
import { describe, test } from 'node:test'
import { ErrorCodes, FatalError } from '../../src/errors.ts'
import { openEmbeddedLog } from '../../src/log/embedded-log.ts'
import { commitOffsets, heartbeat, joinGroup } from '../../src/log/groups.ts'
import { createEmbeddedProducer } from '../../src/log/producer.ts'
import { retain } from '../../src/log/retention.ts'
import { EmbeddedLogSource } from '../../src/sources/embedded/index.ts'
import type { SourceListener, SourceMessage, TopicPartition } from '../../src/sources/types.ts'
import { embeddedEnv, openLog, readAll, spawnNode, tempDataDir } from '../helpers/embedded-log.ts'

interface Listener extends SourceListener {
  assignments: TopicPartition[][]
  lags: ReadonlyMap<string, readonly bigint[]>[]
}

function listener(): Listener {
  const l: Listener = {
    assignments: [],
    lags: [],
    rebalancing() {},
    assigned(partitions) {
      l.assignments.push([...partitions])
    },
    lag(lag) {
      l.lags.push(lag)
    }
  }
  return l
}

async function take(source: EmbeddedLogSource, count: number, timeoutMs = 5_000): Promise<SourceMessage[]> {
  const out: SourceMessage[] = []
  const signal = AbortSignal.timeout(timeoutMs)
  while (out.length < count) {
    const m = await source.next(signal)
    if (!m) break
    out.push(m)
  }
  return out
}

/** What the runtime's coordinator would commit after `messages`: per partition, the last offset + 1. */
function commitsFor(messages: readonly SourceMessage[]) {
  const next = new Map<string, { topic: string; partition: number; offset: bigint; leaderEpoch: number }>()
  for (const m of messages) {
    const k = `${m.origin.topic}:${m.origin.partition}`
    next.set(k, { topic: m.origin.topic, partition: m.origin.partition, offset: m.origin.offset + 1n, leaderEpoch: 0 })
  }
  return [...next.values()]
}

describe('embedded log', () => {
  test('append → read → commit → restart resumes at the committed offsets, nothing skipped or repeated', async (t) => {
    const dir = tempDataDir(t)
    const log = openLog(t, dir)
    log.createTopic({ name: 'in', partitions: 3 })
    const records = Array.from({ length: 300 }, (_, i) => ({
      topic: 'in',
      key: Buffer.from(`k${i % 23}`),
      value: Buffer.from(JSON.stringify({ i })),
      headers: new Map([
        ['text', Buffer.from(`h${i}`)],
        ['bin', Buffer.from([0xff, 0x00, i % 256])]
      ])
    }))
    const appended = log.append(records)
    // Offsets are dense per partition and follow the order of the append.
    for (const { partition } of log.partitions('in')) {
      const offsets = appended.filter((a) => a.partition === partition).map((a) => a.offset)
      assert.deepEqual(
        offsets,
        offsets.map((_, i) => BigInt(i))
      )
    }
    // Without a key: round-robin over the partitions. A null value: a tombstone (empty value at the source).
    log.append([0, 1, 2].map(() => ({ topic: 'in', value: null })))
    assert.deepEqual(
      log.partitions('in').map((p) => p.end),
      [0, 1, 2].map((p) => BigInt(appended.filter((a) => a.partition === p).length + 1))
    )

    const first = new EmbeddedLogSource({ path: log.path, topics: ['in'], groupId: 'g', retentionIntervalMs: 0 })
    const l = listener()
    await first.open(l)
    assert.deepEqual(
      l.assignments[0]?.map((p) => p.partition),
      [0, 1, 2]
    )
    const got = await take(first, 150)
    assert.equal(got.length, 150)
    const m = got.find((x) => x.key?.toString() === 'k5')!
    const i = (JSON.parse(m.value.toString()) as { i: number }).i
    assert.equal(m.headers.get('text')?.toString(), `h${i}`)
    assert.deepEqual([...(m.headers.get('bin') ?? [])], [0xff, 0x00, i % 256])
    assert.ok(m.origin.timestamp > 0n)
    await first.commit(commitsFor(got))
    // Per partition, a source delivers offsets in order: the commit covers exactly what was delivered.
    await first.close()

    const second = new EmbeddedLogSource({ path: log.path, topics: ['in'], groupId: 'g', retentionIntervalMs: 0 })
    await second.open(listener())
    t.after(() => second.close())
    const rest = await take(second, 153)
    assert.equal(rest.length, 153)
    const seen = [...got, ...rest].map((x) => `${x.origin.partition}@${x.origin.offset}`)
    assert.equal(new Set(seen).size, 303, 'every record exactly once across the restart')
    const tombstones = [...got, ...rest].filter((x) => x.key === undefined)
    assert.equal(tombstones.length, 3)
    assert.ok(tombstones.every((x) => x.value.length === 0))
    // Idle now: next() waits, and returns undefined when aborted.
    const idle = new AbortController()
    setTimeout(() => idle.abort(), 100)
    assert.equal(await second.next(idle.signal), undefined)
  })

  test('a new group starts at the earliest offset, or at the end when DRAIN_OLD_EVENTS is false', async (t) => {
    const dir = tempDataDir(t)
    const log = openLog(t, dir)
    log.createTopic({ name: 'in', partitions: 2 })
    log.append(
      Array.from({ length: 10 }, (_, i) => ({ topic: 'in', key: Buffer.from(`k${i}`), value: Buffer.from('old') }))
    )
    const latest = new EmbeddedLogSource({
      path: log.path,
      topics: ['in'],
      groupId: 'late',
      drainOldEvents: false,
      retentionIntervalMs: 0
    })
    await latest.open(listener())
    t.after(() => latest.close())
    const earliest = new EmbeddedLogSource({ path: log.path, topics: ['in'], groupId: 'early', retentionIntervalMs: 0 })
    await earliest.open(listener())
    t.after(() => earliest.close())
    log.append([{ topic: 'in', key: Buffer.from('k1'), value: Buffer.from('new') }])
    const late = await take(latest, 1)
    assert.equal(late[0]?.value.toString(), 'new')
    assert.equal((await take(earliest, 11)).length, 11)
  })

  test('an idle source waits without spinning and sees appends of another process', async (t) => {
    const dir = tempDataDir(t)
    const log = openLog(t, dir)
    log.createTopic({ name: 'in', partitions: 1 })
    const source = new EmbeddedLogSource({ path: log.path, topics: ['in'], groupId: 'g', retentionIntervalMs: 0 })
    await source.open(listener())
    t.after(() => source.close())
    const cpu = process.cpuUsage()
    const idle = new AbortController()
    setTimeout(() => idle.abort(), 1_000)
    assert.equal(await source.next(idle.signal), undefined)
    const used = process.cpuUsage(cpu)
    const ms = (used.user + used.system) / 1000
    t.diagnostic(`CPU while idle for 1 s: ${ms.toFixed(1)} ms`)
    assert.ok(ms < 200, `idle wait used ${ms} ms of CPU`)

    const child = spawnNode(['test/fixtures/embedded-producer.ts', 'other', 'in', '1', '100', '1'], embeddedEnv(dir))
    const started = performance.now()
    const [m] = await take(source, 1, 15_000)
    assert.equal((JSON.parse(m!.value.toString()) as { p: string }).p, 'other')
    t.diagnostic(`record of another process seen ${(performance.now() - started).toFixed(0)} ms after its spawn`)
    assert.equal((await child.exited).code, 0, child.stderr())
  })

  test('rules that hold for every writer: dense offsets, valid headers, immutable records', (t) => {
    const dir = tempDataDir(t)
    const log = openLog(t, dir)
    log.createTopic({ name: 'sql', partitions: 2 })
    // A second connection, as another program would have (the documented statements of docs/EMBEDDED-LOG.md).
    const db = new DatabaseSync(log.path)
    t.after(() => db.close())
    db.exec('PRAGMA busy_timeout = 5000')
    const insert = db.prepare(
      `INSERT INTO records (topic, partition, offset, key, value, headers)
       SELECT ?, ?, next_offset, ?, ?, ? FROM partitions WHERE topic = ? AND partition = ? RETURNING offset`
    )
    assert.equal(insert.get('sql', 1, 'id-1', '{"a":1}', '{"traceparent":"00-x"}', 'sql', 1)?.offset, 0)
    assert.equal(insert.get('sql', 1, 'id-1', '{"a":2}', null, 'sql', 1)?.offset, 1)
    assert.throws(
      () => db.prepare("INSERT INTO records (topic, partition, offset, value) VALUES ('sql', 1, 7, 'x')").run(),
      /next_offset/
    )
    assert.throws(
      () => db.prepare("INSERT INTO records (topic, partition, offset, value) VALUES ('sql', 5, 0, 'x')").run(),
      /no such topic partition/
    )
    assert.throws(() => insert.get('sql', 0, 'k', 'v', '[1,2]', 'sql', 0), /CHECK constraint/)
    assert.throws(() => insert.get('sql', 0, 'k', 'v', 'not json', 'sql', 0), /malformed JSON/)
    assert.throws(() => insert.get('sql', 0, 42, 'v', null, 'sql', 0), /CHECK constraint/)
    assert.throws(() => db.prepare("UPDATE records SET value = 'y'").run(), /immutable/)
    assert.throws(() => db.prepare("UPDATE topics SET partitions = 1 WHERE name = 'sql'").run(), /only grow/)
    // TEXT keys and values are read as their UTF-8 bytes, and partition by the same hash as BLOB keys.
    const [a, b] = readAll(log, 'sql')
    assert.equal(a?.key?.toString(), 'id-1')
    assert.equal(a?.value?.toString(), '{"a":1}')
    assert.equal(a?.headers.get('traceparent')?.toString(), '00-x')
    assert.equal(b?.offset, 1n)
    assert.equal(log.partitions('sql')[1]?.bytes, 'id-1'.length * 2 + 14)
  })

  test('appends of any size (multi-row INSERTs) interleaved with another writer: dense, in order, as returned', (t) => {
    const dir = tempDataDir(t)
    const log = openLog(t, dir)
    log.createTopic({ name: 'a', partitions: 3 })
    log.createTopic({ name: 'b', partitions: 2 })
    // Another program appending one row at a time between our batches (the documented statement).
    const db = new DatabaseSync(log.path)
    t.after(() => db.close())
    const outside = db.prepare(
      `INSERT INTO records (topic, partition, offset, key, value)
       SELECT ?, ?, next_offset, ?, ? FROM partitions WHERE topic = ? AND partition = ? RETURNING offset`
    )
    const expected = new Map<string, string[]>()
    const expect = (topic: string, partition: number, value: string) => {
      const k = `${topic}:${partition}`
      expected.set(k, [...(expected.get(k) ?? []), value])
    }
    let n = 0
    // Sizes around the statement sizes (64, 16, 4, 1 rows) and a large one.
    for (const size of [1, 2, 3, 4, 5, 15, 16, 17, 63, 64, 65, 85, 130, 1000]) {
      const records = Array.from({ length: size }, () => {
        const i = n++
        const topic = i % 3 === 0 ? 'b' : 'a'
        // Keyed, unkeyed (round-robin) and explicit partitions in one append.
        const partition = i % 7 === 0 ? 0 : undefined
        const key = i % 5 === 0 ? undefined : Buffer.from(`k${i % 11}`)
        const headers = i % 4 === 0 ? new Map([['n', Buffer.from(String(i))]]) : undefined
        return { topic, partition, key, value: Buffer.from(`v${i}`), headers }
      })
      const appended = log.append(records)
      assert.equal(appended.length, size)
      appended.forEach((a, j) => {
        assert.equal(a.topic, records[j]!.topic)
        expect(a.topic, a.partition, `v${n - size + j}`)
      })
      const row = outside.get('a', 1, 'x', `outside-${size}`, 'a', 1) as { offset: number }
      expect('a', 1, `outside-${size}`)
      assert.equal(row.offset, expected.get('a:1')!.length - 1)
    }
    for (const topic of ['a', 'b']) {
      for (const { partition, end } of log.partitions(topic)) {
        const stored = readAll(log, topic).filter((r) => r.partition === partition)
        const values = expected.get(`${topic}:${partition}`) ?? []
        assert.equal(end, BigInt(values.length), `${topic}:${partition} end`)
        assert.deepEqual(
          stored.map((r) => r.offset),
          values.map((_, i) => BigInt(i))
        )
        assert.deepEqual(
          stored.map((r) => r.value?.toString()),
          values
        )
        for (const r of stored) {
          const i = Number(r.value?.toString().slice(1))
          if (r.value?.toString().startsWith('v') && i % 4 === 0) assert.equal(r.headers.get('n')?.toString(), `${i}`)
          else assert.equal(r.headers.size, 0)
        }
      }
    }
  })

  test("the framework's topics are created on first use with their specs; other topics must exist", async (t) => {
    const dir = tempDataDir(t)
    const log = openLog(t, dir)
    assert.throws(
      () => log.append([{ topic: 'memory.evnts', value: Buffer.from('{}') }]),
      (e: unknown) =>
        e instanceof FatalError && e.code === ErrorCodes.CONFIG && /memory\.evnts does not exist/.test(e.message)
    )
    log.append([
      { topic: 'memory.events', key: Buffer.from('a'), value: Buffer.from('{}') },
      { topic: 'memory.dlq', value: Buffer.from('x') }
    ])
    assert.equal(log.topic('memory.events')?.partitions, 6)
    assert.equal(log.topic('memory.events')?.retentionMs, 7 * 86_400_000)
    assert.equal(log.topic('memory.dlq')?.partitions, 3)
    log.ensureTopics(['memory.latest', 't1.memory.audit'])
    assert.equal(log.topic('memory.latest')?.cleanupPolicy, 'compact')
    assert.equal(log.topic('t1.memory.audit')?.retentionMs, 365 * 86_400_000)
    // A producer does not even create the file for an unknown topic.
    const elsewhere = join(tempDataDir(t), 'nothing')
    const producer = createEmbeddedProducer({ dataDir: elsewhere })
    await assert.rejects(producer.send([{ topic: 'nope', value: 'x' }]), /KAFKA_BROKERS is not set/)
    assert.equal(existsSync(join(elsewhere, 'log.sqlite')), false)
    await producer.close()
    const source = new EmbeddedLogSource({ path: log.path, topics: ['nope'], groupId: 'g' })
    await assert.rejects(source.open(listener()), /nope does not exist/)
  })

  test('a topic that grows is picked up by a running source, from the new partitions’ start', async (t) => {
    const dir = tempDataDir(t)
    const log = openLog(t, dir)
    log.createTopic({ name: 'in', partitions: 1 })
    const source = new EmbeddedLogSource({ path: log.path, topics: ['in'], groupId: 'g', retentionIntervalMs: 0 })
    const l = listener()
    await source.open(l)
    t.after(() => source.close())
    log.createTopic({ name: 'in', partitions: 3 })
    log.append([{ topic: 'in', partition: 2, value: Buffer.from('on the new partition') }])
    const [m] = await take(source, 1)
    assert.equal(m?.origin.partition, 2)
    assert.deepEqual(
      l.assignments.at(-1)?.map((p) => p.partition),
      [0, 1, 2]
    )
  })

  test('retention: age and size remove a prefix, compaction keeps the latest per key; a group resumes at the start', async (t) => {
    const dir = tempDataDir(t)
    const log = openLog(t, dir)
    const day = 86_400_000
    const now = Date.now()
    log.createTopic({ name: 'aged', partitions: 1, retentionMs: day })
    log.createTopic({ name: 'sized', partitions: 1, retentionBytes: 10_000 })
    log.createTopic({ name: 'compacted', partitions: 1, cleanupPolicy: 'compact', deleteRetentionMs: day })
    log.append(
      Array.from({ length: 100 }, (_, i) => ({
        topic: 'aged',
        value: Buffer.from(`v${i}`),
        timestamp: i < 60 ? now - 2 * day : now
      }))
    )
    log.append(Array.from({ length: 100 }, () => ({ topic: 'sized', value: Buffer.alloc(1_000) })))
    log.append(
      Array.from({ length: 100 }, (_, i) => ({
        topic: 'compacted',
        key: Buffer.from(`k${i % 10}`),
        value: i === 95 ? null : Buffer.from(`v${i}`),
        timestamp: i === 95 ? now - 2 * day : now
      }))
    )
    // A group that committed offset 10 on `aged`, before retention removes offsets 0…59.
    const member = joinGroup(log, 'slow', 10_000)
    commitOffsets(log, member, [{ topic: 'aged', partition: 0, offset: 10n }])
    log.transaction('test', () => log.statement('DELETE FROM group_members').run())

    const result = retain(log, { now })
    assert.equal(result.removed.get('aged:0'), 60)
    assert.equal(log.startOffset('aged', 0), 60n)
    assert.equal(log.partitions('aged')[0]?.end, 100n, 'the end offset never moves back')
    assert.equal(log.startOffset('sized', 0), 90n)
    assert.equal(log.partitions('sized')[0]?.bytes, 10_000)
    const compacted = readAll(log, 'compacted')
    assert.deepEqual(
      compacted.map((r) => r.key?.toString()).sort(),
      ['k0', 'k1', 'k2', 'k3', 'k4', 'k6', 'k7', 'k8', 'k9'],
      'one record per key; the old tombstone of k5 is gone too'
    )
    assert.ok(compacted.every((r) => Number(r.offset) >= 90))

    const source = new EmbeddedLogSource({ path: log.path, topics: ['aged'], groupId: 'slow', retentionIntervalMs: 0 })
    await source.open(listener())
    t.after(() => source.close())
    const [first] = await take(source, 1)
    assert.equal(first?.origin.offset, 60n)
  })

  test('one member per group: a live member is named and refused; a killed one is taken over at once', async (t) => {
    const dir = tempDataDir(t)
    const log = openLog(t, dir)
    log.createTopic({ name: 'in', partitions: 1 })
    const first = new EmbeddedLogSource({ path: log.path, topics: ['in'], groupId: 'g', retentionIntervalMs: 0 })
    await first.open(listener())
    const second = new EmbeddedLogSource({ path: log.path, topics: ['in'], groupId: 'g', retentionIntervalMs: 0 })
    await assert.rejects(second.open(listener()), new RegExp(`held by pid ${process.pid}`))
    await first.close()
    // A clean close leaves the group: the next member joins.
    await second.open(listener())
    await second.close()

    // Another process joins the group and is killed -9 (its lease row stays behind).
    const holder = spawnNode(
      [
        '--input-type=module',
        '-e',
        `import { openEmbeddedLog } from ${JSON.stringify(new URL('../../src/log/embedded-log.ts', import.meta.url).href)}
         import { joinGroup } from ${JSON.stringify(new URL('../../src/log/groups.ts', import.meta.url).href)}
         joinGroup(openEmbeddedLog({ path: ${JSON.stringify(log.path)} }), 'g', 600000)
         console.log('joined'); setInterval(() => {}, 1000)`
      ],
      process.env
    )
    const deadline = Date.now() + 15_000
    while (!holder.stdout().includes('joined') && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50))
    assert.match(holder.stdout(), /joined/, holder.stderr())
    const third = new EmbeddedLogSource({ path: log.path, topics: ['in'], groupId: 'g', retentionIntervalMs: 0 })
    await assert.rejects(third.open(listener()), new RegExp(`held by pid ${holder.child.pid}`))
    holder.child.kill('SIGKILL')
    await holder.exited
    await third.open(listener())
    t.after(() => third.close())

    // A member whose lease was taken cannot commit over the new member's offsets.
    const stale = joinGroup(log, 'h', 1)
    await new Promise((r) => setTimeout(r, 5))
    joinGroup(log, 'h', 1)
    assert.throws(() => commitOffsets(log, stale, [{ topic: 'in', partition: 0, offset: 1n }]), /taken over by pid/)
    assert.throws(() => heartbeat(log, stale), /taken over/)
  })

  test('a file that is not a log is refused', (t) => {
    const dir = tempDataDir(t)
    const path = join(dir, 'other.sqlite')
    const db = new DatabaseSync(path)
    db.exec('CREATE TABLE users (id INTEGER)')
    db.close()
    assert.throws(() => openEmbeddedLog({ path }), /not an sfm embedded log/)
  })
})
