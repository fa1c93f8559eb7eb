import assert from 'node:assert/strict'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { describe, test } from 'node:test'
import { pipe } from 'rxjs'
import { committedOffsets } from '../../src/log/groups.ts'
import { kafkaDeadLetter, kafkaSink } from '../../src/sinks/kafka/index.ts'
import { EmbeddedLogSource } from '../../src/sources/embedded/index.ts'
import { logSource } from '../../src/sources/log.ts'
import { DeadLetterHeaders } from '../../src/streams/dead-letter.ts'
import { decodeJson } from '../../src/streams/operators/decode-json.ts'
import { Runtime } from '../../src/streams/runtime.ts'
import { branch, defineTopology } from '../../src/streams/topology.ts'
import { embeddedEnv, openLog, readAll, spawnNode, tempDataDir } from '../helpers/embedded-log.ts'

/** CI runs a few cycles; `SFM_KILL_CYCLES=20 npm test -- test/sources/embedded.test.ts` runs more. */
const CYCLES = Number(process.env.SFM_KILL_CYCLES ?? 3)
const MESSAGES = Number(process.env.SFM_KILL_MESSAGES ?? 20_000)

describe('embedded log source in topologies', () => {
  test('logSource and the Kafka sinks pick the embedded log when told (or when KAFKA_BROKERS is unset)', () => {
    const embedded = logSource({ topics: ['memory.events'], groupId: 'g', target: 'embedded', dataDir: '/tmp/x' })
    assert.ok(embedded instanceof EmbeddedLogSource)
    assert.match(embedded.description, /embedded log memory\.events \(group g\) at \/tmp\/x\/log\.sqlite/)
    const kafka = logSource({ topics: ['memory.events'], groupId: 'g', brokers: ['127.0.0.1:9'] })
    assert.equal(kafka.kind, 'kafka')
    const dlq = kafkaDeadLetter({ topic: 'memory.dlq', target: 'embedded', dataDir: '/tmp/x' })
    assert.equal(dlq.description, 'topic memory.dlq of the embedded log at /tmp/x/log.sqlite')
  })

  test('relay with decodeJson: poison goes to the embedded DLQ topic with the sfm.dlq.* headers, the rest to the sink', async (t) => {
    const dir = tempDataDir(t)
    const log = openLog(t, dir)
    for (const name of ['in', 'out', 'dlq']) log.createTopic({ name, partitions: 2 })
    const good = Array.from({ length: 500 }, (_, i) => ({
      topic: 'in',
      key: Buffer.from(`k${i % 13}`),
      value: Buffer.from(JSON.stringify({ seq: i })),
      headers: new Map([['origin', Buffer.from('test')]])
    }))
    const poison = ['{not json', '', '\u0000\u0001'].map((text, i) => ({
      topic: 'in',
      key: Buffer.from(`bad${i}`),
      value: Buffer.from(text),
      headers: new Map([['origin', Buffer.from('test')]])
    }))
    const placed = log.append([...good.slice(0, 250), ...poison, ...good.slice(250)])
    const options = { target: 'embedded', dataDir: dir } as const
    const topology = defineTopology<unknown>({
      name: 'embedded-relay-test',
      source: logSource({ topics: ['in'], groupId: 'relay', ...options }),
      pipeline: pipe(decodeJson()),
      branches: { out: branch(kafkaSink({ topic: 'out', ...options }), { batch: { maxCount: 100, maxWaitMs: 10 } }) },
      deadLetter: kafkaDeadLetter({ topic: 'dlq', ...options }),
      settings: { commitIntervalMs: 50, drainTimeoutMs: 5_000 }
    })
    const runtime = new Runtime(topology, { untilIdleMs: 300 })
    const summary = await runtime.run()
    assert.equal(summary.reason, 'idle')
    assert.equal(summary.deadLettered, 3)

    const out = readAll(log, 'out')
    assert.equal(out.length, 500)
    assert.deepEqual(
      out.map((r) => (JSON.parse(r.value!.toString()) as { seq: number }).seq).sort((a, b) => a - b),
      good.map((_, i) => i)
    )
    const letters = readAll(log, 'dlq')
    assert.equal(letters.length, 3)
    for (const letter of letters) {
      const i = Number(letter.key!.toString().slice(3))
      const source = placed[250 + i]!
      assert.deepEqual(letter.value, poison[i]!.value, 'original bytes')
      const h = (name: string) => letter.headers.get(name)?.toString()
      assert.equal(h(DeadLetterHeaders.ERROR_CODE), 'SFM_DECODE')
      assert.equal(h(DeadLetterHeaders.ERROR_KIND), 'poison')
      assert.equal(h(DeadLetterHeaders.STAGE), 'decode')
      assert.equal(h(DeadLetterHeaders.TOPOLOGY), 'embedded-relay-test')
      assert.equal(h(DeadLetterHeaders.SOURCE_TOPIC), 'in')
      assert.equal(h(DeadLetterHeaders.SOURCE_PARTITION), String(source.partition))
      assert.equal(h(DeadLetterHeaders.SOURCE_OFFSET), String(source.offset))
      assert.ok(h(DeadLetterHeaders.ERROR_MESSAGE))
      assert.equal(h('origin'), 'test', 'original headers kept')
    }
    const committed = committedOffsets(log, 'relay', ['in']).get('in')!
    assert.deepEqual(
      [...committed.entries()].sort(([a], [b]) => a - b).map(([, o]) => o),
      log.partitions('in').map((p) => p.end),
      'every offset committed'
    )
  })

  test('headers named __proto__, constructor and toString survive produce, the embedded log, the sink and the DLQ', async (t) => {
    const dir = tempDataDir(t)
    const log = openLog(t, dir)
    for (const name of ['pin', 'pout', 'pdlq']) log.createTopic({ name, partitions: 1 })
    // In through the produce CLI (text values), and one poison record appended with a binary `__proto__` (stored
    // as {"base64": …}, which on a plain object would have become its prototype).
    const file = join(dir, 'lines.jsonl')
    writeFileSync(file, '{"seq":0}\n{"seq":1}\n')
    const produce = spawnNode(
      ['src/cli/produce.ts', '--topic', 'pin', '--file', file, '--data-dir', dir].concat([
        '--header',
        '__proto__=p',
        '--header',
        'constructor=c',
        '--header',
        'toString=s'
      ]),
      embeddedEnv(dir)
    )
    assert.equal((await produce.exited).code, 0, produce.stderr())
    const binary = Buffer.from([0xff, 0x00, 0x7b])
    log.append([
      {
        topic: 'pin',
        key: Buffer.from('bad'),
        value: Buffer.from('{not json'),
        headers: new Map([
          ['__proto__', binary],
          ['constructor', Buffer.from('c')]
        ])
      }
    ])
    const options = { target: 'embedded', dataDir: dir } as const
    const topology = defineTopology<unknown>({
      name: 'proto-headers',
      source: logSource({ topics: ['pin'], groupId: 'proto', ...options }),
      pipeline: pipe(decodeJson()),
      branches: {
        out: branch(
          // The default record carries no headers: this one passes the source's on.
          kafkaSink({
            topic: 'pout',
            record: (e) => ({ value: JSON.stringify(e.value), headers: e.headers }),
            ...options
          }),
          { batch: { maxCount: 10, maxWaitMs: 10 } }
        )
      },
      deadLetter: kafkaDeadLetter({ topic: 'pdlq', ...options }),
      settings: { commitIntervalMs: 50, drainTimeoutMs: 5_000 }
    })
    const summary = await new Runtime(topology, { untilIdleMs: 300 }).run()
    assert.equal(summary.deadLettered, 1)

    const stored = readAll(log, 'pin')
    assert.equal(stored.length, 3)
    const out = readAll(log, 'pout')
    assert.equal(out.length, 2)
    for (const r of [...stored.slice(0, 2), ...out]) {
      assert.equal(r.headers.get('__proto__')?.toString(), 'p')
      assert.equal(r.headers.get('constructor')?.toString(), 'c')
      assert.equal(r.headers.get('toString')?.toString(), 's')
    }
    const [letter] = readAll(log, 'pdlq')
    assert.deepEqual(letter?.headers.get('__proto__'), binary)
    assert.equal(letter?.headers.get('constructor')?.toString(), 'c')
    assert.equal(letter?.headers.get(DeadLetterHeaders.STAGE)?.toString(), 'decode')
    assert.equal(letter?.headerError, undefined)
  })

  test(`runner kill -9 mid-stream ${CYCLES}×, restart with --until-idle: every message delivered, all committed`, {
    timeout: 300_000
  }, async (t) => {
    const dir = tempDataDir(t)
    const log = openLog(t, dir)
    const names = { RELAY_IN: 'kin', RELAY_OUT: 'kout', RELAY_DLQ: 'kdlq', RELAY_GROUP: 'kgroup' }
    for (const name of [names.RELAY_IN, names.RELAY_OUT, names.RELAY_DLQ]) log.createTopic({ name, partitions: 3 })
    for (let i = 0; i < MESSAGES; i += 1000) {
      log.append(
        Array.from({ length: Math.min(1000, MESSAGES - i) }, (_, j) => ({
          topic: names.RELAY_IN,
          key: Buffer.from(`id-${(i + j) % 101}`),
          value: Buffer.from(JSON.stringify({ seq: i + j, text: 'x'.repeat(200) }))
        }))
      )
    }
    const env = embeddedEnv(dir, { ...names, LOG_LEVEL: 'info' })
    const runner = (args: string[] = []) =>
      spawnNode(['src/cli/start.ts', 'test/fixtures/embedded-relay.topology.ts', ...args], env)
    const committedTotal = () =>
      [...(committedOffsets(log, names.RELAY_GROUP, [names.RELAY_IN]).get(names.RELAY_IN)?.values() ?? [])].reduce(
        (a, b) => a + b,
        0n
      )
    const outputCount = () => log.partitions(names.RELAY_OUT).reduce((sum, p) => sum + p.end, 0n)
    let killedMidStream = 0
    for (let cycle = 0; cycle < CYCLES; cycle++) {
      const r = runner()
      const deadline = Date.now() + 60_000
      while (!/assigned [1-9]/.test(r.stderr()) && Date.now() < deadline)
        await new Promise((res) => setTimeout(res, 25))
      assert.match(r.stderr(), /source: embedded log kin \(group kgroup\)/)
      assert.match(r.stderr(), /dead letters: topic kdlq of the embedded log/)
      if (cycle === CYCLES - 1) {
        // A second runner of the same group is refused while the first lives, naming it.
        const second = runner(['--status-interval=0'])
        const { code } = await second.exited
        assert.equal(code, 2, second.stderr())
        assert.match(second.stderr(), new RegExp(`held by pid ${r.child.pid}`))
      }
      // Kill once this runner has written something (a random 0–20 ms later), while its progress is not all
      // committed: a sleep alone let a fast runner relay and commit everything first (seen in CI).
      const before = outputCount()
      const progressDeadline = Date.now() + 10_000
      while (outputCount() === before && committedTotal() < BigInt(MESSAGES) && Date.now() < progressDeadline)
        await new Promise((res) => setTimeout(res, 2))
      await new Promise((res) => setTimeout(res, Math.random() * 20))
      r.child.kill('SIGKILL')
      const { signal } = await r.exited
      assert.equal(signal, 'SIGKILL')
      t.diagnostic(`cycle ${cycle}: committed ${committedTotal()} of ${MESSAGES} at the kill`)
      if (committedTotal() < BigInt(MESSAGES)) killedMidStream++
    }
    const final = runner(['--until-idle=1', '--status-interval=0'])
    const { code } = await final.exited
    assert.equal(code, 0, final.stderr())

    const out = readAll(log, names.RELAY_OUT)
    const seen = new Set(out.map((r) => (JSON.parse(r.value!.toString()) as { seq: number }).seq))
    const missing = Array.from({ length: MESSAGES }, (_, i) => i).filter((i) => !seen.has(i))
    assert.deepEqual(missing.slice(0, 10), [], `${missing.length} message(s) never reached the sink`)
    assert.equal(committedTotal(), BigInt(MESSAGES), 'the group has committed the whole input')
    assert.equal(readAll(log, names.RELAY_DLQ).length, 0)
    assert.ok(killedMidStream > 0, 'at least one kill landed before the input was fully committed')
    t.diagnostic(`cycles ${CYCLES}, killed mid-stream ${killedMidStream}, duplicates ${out.length - MESSAGES}`)
  })
})
