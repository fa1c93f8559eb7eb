import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { Admin } from '@platformatic/kafka'
import { ErrorCodes, PoisonError } from '../../src/errors.ts'
import type { OutgoingMessage } from '../../src/kafka/messages.ts'
import { createEmbeddedProducer } from '../../src/log/producer.ts'
import type { InspectReport, RedriveReport } from '../../src/ops/dlq.ts'
import { buildDeadLetter } from '../../src/streams/dead-letter.ts'
import { Delivery } from '../../src/streams/envelope.ts'
import { letter, linesAfterStackChoice, runCli } from '../helpers/dlq.ts'
import { embeddedEnv, openLog, readAll, tempDataDir } from '../helpers/embedded-log.ts'
import { brokers, createTopics, NO_KAFKA, produce, readTopic, uniqueName } from '../helpers/kafka.ts'

const dlq = (args: string[], env: NodeJS.ProcessEnv) => runCli('src/cli/dlq.ts', args, env)

/** Three validation letters, two sink letters (another code), one cut down, one redriven three times already. */
function letters(dlqTopic: string, source: string): OutgoingMessage[] {
  const out = [
    ...[1, 2, 3].map((i) =>
      letter(dlqTopic, { key: `v${i}`, value: `{"v":${i}}`, stage: 'validate', source, headers: { trace: `t${i}` } })
    ),
    ...[1, 2].map((i) =>
      letter(dlqTopic, { key: `s${i}`, value: `{"s":${i}}`, stage: 'sink', code: ErrorCodes.SINK_REJECTED, source })
    ),
    letter(dlqTopic, {
      key: 'loop',
      value: '{"loop":1}',
      stage: 'sink',
      code: ErrorCodes.SINK_REJECTED,
      source,
      headers: { 'sfm.redrive.count': '3' }
    })
  ]
  const cut = letter(dlqTopic, { key: 'cut', value: '{"cut":', stage: 'sink', code: ErrorCodes.SINK_REJECTED, source })
  const headers = new Map(cut.headers as Map<string, Buffer>)
  headers.set('sfm.dlq.truncated', Buffer.from('value 3000000 bytes cut to 7'))
  out.push({ ...cut, headers })
  return out
}

describe('npm run dlq on the embedded log', () => {
  test('inspect counts by stage × error class; redrive sends each letter back once, with provenance', async (t) => {
    const dir = tempDataDir(t)
    const env = embeddedEnv(dir)
    const producer = createEmbeddedProducer({ dataDir: dir, env })
    await producer.send(letters('memory.dlq', 'memory.events'))
    await producer.close()
    const log = openLog(t, dir)

    const inspect = await dlq(['inspect', '--json'], env)
    assert.equal(inspect.code, 0, inspect.stderr)
    const report = JSON.parse(inspect.stdout) as InspectReport
    assert.equal(report.total, 7)
    assert.equal(report.truncated, 1)
    assert.deepEqual(
      report.groups.map((g) => [g.stage, g.errorClass, g.errorCode, g.count]),
      [
        ['sink', 'PoisonError', 'SFM_SINK_REJECTED', 4],
        ['validate', 'PoisonError', 'SFM_VALIDATION', 3]
      ]
    )
    const sample = report.groups[1]!.samples[0]!
    assert.equal(sample.headers['sfm.dlq.stage'], 'validate')
    assert.equal(sample.headers['sfm.dlq.source.topic'], 'memory.events')
    assert.equal(sample.headers['sfm.dlq.error.message'], `bad ${sample.key}`)
    assert.equal(sample.value, `{"v":${sample.key?.slice(1)}}`)
    assert.equal(report.groups[1]!.samples.length, 3)

    const table = await dlq(['inspect', '--stage', 'validate', '--since', '1h'], env)
    assert.equal(table.code, 0, table.stderr)
    assert.match(table.stdout, /^memory\.dlq: 3 dead letter\(s\), oldest /m)
    assert.match(table.stdout, /^validate\s+PoisonError\s+SFM_VALIDATION\s+3 /m)
    assert.match(table.stdout, /sfm\.dlq\.error\.code: SFM_VALIDATION/)
    const future = await dlq(['inspect', '--since', '2999-01-01T00:00:00Z'], env)
    assert.match(future.stdout, /no dead letters/)

    const dry = await dlq(['redrive', '--stage', 'validate', '--dry-run', '--json'], env)
    assert.equal(dry.code, 0, dry.stderr)
    assert.equal((JSON.parse(dry.stdout) as RedriveReport).redriven, 3)
    assert.equal(readAll(log, 'memory.events').length, 0, 'a dry run sends nothing')

    const first = await dlq(['redrive', '--stage', 'validate', '--json'], env)
    assert.equal(first.code, 0, first.stderr)
    const r1 = JSON.parse(first.stdout) as RedriveReport
    assert.equal(r1.redriven, 3)
    assert.deepEqual(r1.targets, { 'memory.events': 3 })
    const events = readAll(log, 'memory.events')
    assert.deepEqual(events.map((e) => e.key?.toString()).sort(), ['v1', 'v2', 'v3'])
    const v1 = events.find((e) => e.key?.toString() === 'v1')!
    assert.equal(v1.value?.toString(), '{"v":1}')
    assert.equal(v1.headers.get('trace')?.toString(), 't1', 'original headers are kept')
    assert.equal(v1.headers.get('sfm.redrive.count')?.toString(), '1')
    assert.equal(v1.headers.get('sfm.redrive.dlq.topic')?.toString(), 'memory.dlq')
    assert.match(v1.headers.get('sfm.redrive.dlq.offset')?.toString() ?? '', /^\d+$/)
    assert.ok(!Number.isNaN(Date.parse(v1.headers.get('sfm.redrive.at')?.toString() ?? '')))
    assert.ok(![...v1.headers.keys()].some((k) => k.startsWith('sfm.dlq.')), 'no sfm.dlq.* headers go back')

    const again = await dlq(['redrive', '--stage', 'validate', '--json'], env)
    assert.equal(again.code, 0, again.stderr)
    const r2 = JSON.parse(again.stdout) as RedriveReport
    assert.equal(r2.redriven, 0)
    assert.equal(r2.alreadyRedriven, 3)

    // Everything: the validation letters were redriven already; the loop and the cut letter are refused.
    const all = await dlq(['redrive'], env)
    assert.equal(all.code, 0, all.stderr)
    assert.match(all.stdout, /redrove 2 of 7 matching letter\(s\) \(2 to memory\.events\); already redriven 3/)
    assert.match(all.stdout, /refused partition \d+ offset \d+: redriven 3 times already \(--max-redrives 3\)/)
    assert.match(all.stdout, /refused partition \d+ offset \d+: stored cut down \(sfm\.dlq\.truncated\)/)
    assert.equal(readAll(log, 'memory.events').length, 5)
    const rerun = await dlq(['redrive', '--json'], env)
    assert.equal((JSON.parse(rerun.stdout) as RedriveReport).redriven, 0)
    assert.equal(readAll(log, 'memory.events').length, 5, 'a second run redrives nothing twice')

    // Refused letters are passed over by their group too: a higher limit later needs the group reset.
    const loop = await dlq(['redrive', '--max-redrives', '4', '--json'], env)
    assert.equal((JSON.parse(loop.stdout) as RedriveReport).redriven, 0, 'the groups remember the refused letters too')

    // A redriven record that fails again is dead-lettered by the runtime with its sfm.redrive.* headers kept: the
    // next redrive counts on from there, and past --max-redrives refuses it.
    const failAgain = async (record: (typeof events)[number]) => {
      const failed = buildDeadLetter(
        new Delivery(
          { done() {}, deadLetter() {} },
          {
            origin: {
              topic: record.topic,
              partition: record.partition,
              offset: record.offset,
              leaderEpoch: 0,
              timestamp: record.timestamp
            },
            key: record.key,
            raw: record.value!,
            headers: record.headers
          }
        ),
        new PoisonError('still bad', { code: ErrorCodes.VALIDATION }),
        'validate',
        'memory'
      )
      const p = createEmbeddedProducer({ dataDir: dir, env })
      await p.send([{ topic: 'memory.dlq', key: failed.key, value: failed.value, headers: failed.headers }])
      await p.close()
    }
    const v1s = () => readAll(log, 'memory.events').filter((e) => e.key?.toString() === 'v1')
    await failAgain(v1s()[0]!)
    const second = await dlq(['redrive', '--stage', 'validate', '--max-redrives', '2', '--json'], env)
    assert.equal((JSON.parse(second.stdout) as RedriveReport).redriven, 1)
    assert.deepEqual(
      v1s().map((e) => e.headers.get('sfm.redrive.count')?.toString()),
      ['1', '2']
    )
    assert.equal(v1s()[1]!.headers.get('trace')?.toString(), 't1')
    await failAgain(v1s()[1]!)
    const limited = await dlq(['redrive', '--stage', 'validate', '--max-redrives', '2'], env)
    assert.equal(limited.code, 0, limited.stderr)
    assert.match(limited.stdout, /redrove 0 of 5 matching letter\(s\); already redriven 4, .* refused 1/)
    assert.match(limited.stdout, /refused partition \d+ offset \d+: redriven 2 times already \(--max-redrives 2\)/)
    assert.equal(v1s().length, 2)
  })

  test('bad input: one line, exit 1 or 2, nothing sent', async (t) => {
    const dir = tempDataDir(t)
    const env = embeddedEnv(dir)
    const none = await dlq(['inspect'], env)
    assert.equal(none.code, 1)
    assert.match(none.stderr, /no embedded log at .*: set KAFKA_BROKERS, or --data-dir/)

    // A log where nothing was dead-lettered yet: memory.dlq is created on first use, so it is empty, not unknown.
    const seed = createEmbeddedProducer({ dataDir: dir, env })
    await seed.send([{ topic: 'memory.events', key: 'x', value: '{}' }])
    await seed.close()
    const empty = await dlq(['inspect'], env)
    assert.equal(empty.code, 0, empty.stderr)
    assert.match(empty.stdout, /^memory\.dlq: no dead letters$/m)

    const producer = createEmbeddedProducer({ dataDir: dir, env })
    await producer.send([
      letter('memory.dlq', { key: 'a', value: '{}', stage: 'validate', source: 'memory.events' }),
      { topic: 'memory.dlq', key: 'foreign', value: '{"x":1}', headers: { origin: 'someone else' } }
    ])
    await producer.close()
    const log = openLog(t, dir)
    const foreign = await dlq(['redrive'], env)
    assert.equal(foreign.code, 1)
    assert.equal(linesAfterStackChoice(foreign.stderr).length, 2, foreign.stderr)
    assert.match(
      foreign.stderr,
      /memory\.dlq partition \d+ offset \d+ \(written .*\) has no sfm\.dlq\.\* headers, so its source topic is unknown: leave it out with --since after .* or with --stage/
    )
    assert.equal(readAll(log, 'memory.events').length, 1, 'only the seed record: nothing was redriven')
    const inspect = await dlq(['inspect'], env)
    assert.equal(inspect.code, 0)
    assert.match(inspect.stdout, /\(no sfm\.dlq\.\* headers\)\s+1/)
    assert.match(inspect.stderr, /1 record\(s\) have no sfm\.dlq\.\* headers/)
    // Filtered to a stage, the foreign record is not part of the selection.
    const staged = await dlq(['redrive', '--stage', 'validate'], env)
    assert.equal(staged.code, 0, staged.stderr)
    assert.equal(readAll(log, 'memory.events').length, 2)

    log.createTopic({ name: 'old.source', partitions: 1 })
    const more = createEmbeddedProducer({ dataDir: dir, env })
    await more.send([
      letter('memory.dlq', { key: 'b', value: '{}', stage: 'gone', source: 'old.source' }),
      letter('memory.dlq', { key: 'c', value: '{}', stage: 'gone', source: 'no.such.topic' })
    ])
    await more.close()
    const gone = await dlq(['redrive', '--stage', 'gone'], env)
    assert.equal(gone.code, 1)
    assert.match(
      gone.stderr,
      /source topic no\.such\.topic of 1 letter\(s\) no longer exists: recreate it .* or leave those letters out/
    )
    assert.equal(readAll(log, 'old.source').length, 0, 'nothing was sent, not even to the topic that exists')

    const unknown = await dlq(['inspect', '--topic', 'nope.dlq'], env)
    assert.equal(unknown.code, 1)
    assert.match(unknown.stderr, /topic nope\.dlq does not exist on the embedded log .*: check the name/)

    for (const args of [[], ['purge'], ['inspect', '--since', 'yesterday'], ['redrive', '--samples', '2']]) {
      const run = await dlq(args, env)
      assert.equal(run.code, 2, `${args.join(' ')}: ${run.stderr}`)
      assert.match(run.stderr, /--help/)
    }
    // Brokers that do not answer: one line naming them, exit 2, no client started.
    const down = await dlq(['inspect'], { ...env, KAFKA_BROKERS: '127.0.0.1:1' })
    assert.equal(down.code, 2, down.stderr)
    assert.match(down.stderr, /^dlq: cannot reach .* at 127\.0\.0\.1:1 \(KAFKA_BROKERS\): connection refused/m)
    const help = await dlq(['--help'], env)
    assert.equal(help.code, 0)
    assert.match(help.stdout, /redrive/)
  })
})

const skip = brokers() ? false : NO_KAFKA

describe('npm run dlq on Kafka', () => {
  test('inspect, redrive once, a deleted source topic refused', { skip, timeout: 120_000 }, async (t) => {
    const dlqTopic = uniqueName('dlq')
    const source = uniqueName('events')
    const gone = uniqueName('gone')
    await createTopics(t, [dlqTopic, source], 3)
    await produce(letters(dlqTopic, source))
    const env = { ...process.env }

    const inspect = await dlq(['inspect', '--topic', dlqTopic, '--json', '--samples', '1'], env)
    assert.equal(inspect.code, 0, inspect.stderr)
    const report = JSON.parse(inspect.stdout) as InspectReport
    assert.equal(report.total, 7)
    assert.deepEqual(
      report.groups.map((g) => [g.stage, g.errorCode, g.count, g.samples.length]),
      [
        ['sink', 'SFM_SINK_REJECTED', 4, 1],
        ['validate', 'SFM_VALIDATION', 3, 1]
      ]
    )

    const first = await dlq(['redrive', '--topic', dlqTopic, '--error-code', 'SFM_VALIDATION', '--json'], env)
    assert.equal(first.code, 0, first.stderr)
    assert.equal((JSON.parse(first.stdout) as RedriveReport).redriven, 3)
    const back = await readTopic(source, 3, 20_000)
    assert.deepEqual(back.map((m) => m.key).sort(), ['v1', 'v2', 'v3'])
    assert.equal(back[0]!.headers.get('sfm.redrive.dlq.topic'), dlqTopic)
    assert.equal(back[0]!.headers.get('sfm.redrive.count'), '1')
    assert.match(back[0]!.headers.get('trace') ?? '', /^t\d$/)

    const again = await dlq(['redrive', '--topic', dlqTopic, '--json'], env)
    assert.equal(again.code, 0, again.stderr)
    const r2 = JSON.parse(again.stdout) as RedriveReport
    assert.equal(r2.redriven, 2)
    assert.equal(r2.alreadyRedriven, 3)
    assert.equal(r2.refused.length, 2)
    assert.equal((await readTopic(source, 6, 5_000)).length, 5, 'each letter was sent back once')

    await createTopics(t, [gone], 1)
    await produce([letter(dlqTopic, { key: 'g', value: '{}', stage: 'late', source: gone })])
    const admin = new Admin({ clientId: 'sfm-dlq-test', bootstrapBrokers: brokers()! })
    await admin.deleteTopics({ topics: [gone] })
    await admin.close()
    const refused = await dlq(['redrive', '--topic', dlqTopic], env)
    assert.equal(refused.code, 1)
    assert.match(refused.stderr, new RegExp(`source topic ${gone} of 1 letter\\(s\\) no longer exists`))

    const unknown = await dlq(['inspect', '--topic', uniqueName('nope')], env)
    assert.equal(unknown.code, 1)
    assert.match(unknown.stderr, /does not exist on the Kafka cluster at .*: check the name/)
  })
})
