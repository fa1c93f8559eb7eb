import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { Consumer } from '@platformatic/kafka'
import { commitOffsets, joinGroup, leaveGroup } from '../../src/log/groups.ts'
import { linesAfterStackChoice, runCli } from '../helpers/dlq.ts'
import { embeddedEnv, openLog, tempDataDir } from '../helpers/embedded-log.ts'
import { brokers, committedOffsets, createTopics, NO_KAFKA, produce, uniqueName, waitFor } from '../helpers/kafka.ts'

const topics = (args: string[], env: NodeJS.ProcessEnv) => runCli('src/cli/topics.ts', args, env)

const skip = brokers() ? false : NO_KAFKA

const records = (topic: string, from: number, n: number) =>
  Array.from({ length: n }, (_, i) => ({ topic, key: `k${from + i}`, value: `{"i":${from + i}}` }))

describe('npm run topics -- offsets | reset-offsets on Kafka', () => {
  test('lag per partition; reset refused while a member is live, then to earliest, a time and latest', {
    skip,
    timeout: 120_000
  }, async (t) => {
    const topic = uniqueName('offsets')
    const group = uniqueName('group')
    await createTopics(t, [topic], 2)
    await produce(records(topic, 0, 10))
    await new Promise((r) => setTimeout(r, 50))
    const between = new Date().toISOString()
    await new Promise((r) => setTimeout(r, 50))
    await produce(records(topic, 10, 10))
    const env = { ...process.env }

    const unknown = await topics(['offsets', '--group', group], env)
    assert.equal(unknown.code, 1)
    assert.equal(linesAfterStackChoice(unknown.stderr).length, 1, unknown.stderr)
    assert.match(unknown.stderr, new RegExp(`consumer group ${group} does not exist on Kafka at .*: check the id`))

    // A live member that read the first 10 records and committed after each.
    const consumer = new Consumer({
      clientId: 'sfm-offsets-live',
      groupId: group,
      bootstrapBrokers: brokers()!,
      autocommit: false,
      maxWaitTime: 200
    })
    t.after(() => consumer.close(true).catch(() => {}))
    const stream = await consumer.consume({ topics: [topic], mode: 'earliest', autocommit: false })
    let read = 0
    stream.on('data', (m) => {
      if (Number(JSON.parse(m.value.toString()).i) >= 10) return
      read++
      void consumer.commit({
        offsets: [{ topic, partition: m.partition, offset: m.offset + 1n, leaderEpoch: m.leaderEpoch }]
      })
    })
    await waitFor(() => read === 10, 30_000, 'the first 10 records')
    await waitFor(
      async () => {
        const c = await committedOffsets(group, topic)
        return [...c.values()].reduce((s, o) => s + (o > 0n ? o : 0n), 0n) >= 10n
      },
      30_000,
      'the commits'
    )
    const before = await committedOffsets(group, topic)

    const live = await topics(['offsets', '--group', group], env)
    assert.equal(live.code, 0, live.stderr)
    assert.match(live.stdout, new RegExp(`^group ${group} on Kafka at .*: live members: sfm-offsets-live on `, 'm'))
    assert.match(live.stdout, /^TOPIC\s+PARTITION\s+COMMITTED\s+START\s+END\s+LAG$/m)
    assert.match(live.stdout, /^total lag 10$/m)
    const json = JSON.parse((await topics(['offsets', '--group', group, '--json'], env)).stdout) as {
      partitions: { partition: number; committed: string; end: string; lag: string }[]
    }
    assert.equal(json.partitions.length, 2)
    for (const p of json.partitions) {
      assert.equal(p.committed, String(before.get(p.partition)))
      assert.equal(BigInt(p.lag), BigInt(p.end) - BigInt(p.committed))
    }

    const refused = await topics(['reset-offsets', '--group', group, '--to', 'earliest'], env)
    assert.equal(refused.code, 1)
    assert.equal(linesAfterStackChoice(refused.stderr).length, 1, refused.stderr)
    assert.match(
      refused.stderr,
      /has 1 live member\(s\): sfm-offsets-live on .* — stop them, then reset \(nothing was changed\)/
    )
    assert.deepEqual(await committedOffsets(group, topic), before)

    await stream.close()
    await consumer.close(true)
    // The member leaves the group on close; the broker may take a moment to show it.
    await waitFor(
      async () => (await topics(['offsets', '--group', group], env)).stdout.includes('no live members'),
      30_000,
      'an empty group'
    )

    const dry = await topics(['reset-offsets', '--group', group, '--to', 'earliest', '--dry-run'], env)
    assert.equal(dry.code, 0, dry.stderr)
    assert.match(dry.stdout, new RegExp(`^${topic} partition 0: \\d+ -> 0$`, 'm'))
    assert.match(dry.stderr, /dry run; nothing was changed/)
    assert.deepEqual(await committedOffsets(group, topic), before)

    const earliest = await topics(['reset-offsets', '--group', group, '--to', 'earliest'], env)
    assert.equal(earliest.code, 0, earliest.stderr)
    assert.deepEqual([...(await committedOffsets(group, topic)).values()], [0n, 0n])

    const atTime = await topics(['reset-offsets', '--group', group, '--to', between], env)
    assert.equal(atTime.code, 0, atTime.stderr)
    const afterTime = await committedOffsets(group, topic)
    const offsets = JSON.parse((await topics(['offsets', '--group', group, '--json'], env)).stdout) as {
      partitions: { partition: number; end: string; lag: string }[]
    }
    assert.equal(
      offsets.partitions.reduce((s, p) => s + Number(p.lag), 0),
      10,
      'from the time on: the second 10 records'
    )
    assert.ok([...afterTime.values()].reduce((s, o) => s + o, 0n) === 10n)

    const latest = await topics(['reset-offsets', '--group', group, '--to', 'latest', '--json'], env)
    assert.equal(latest.code, 0, latest.stderr)
    assert.equal(
      [...(await committedOffsets(group, topic)).values()].reduce((s, o) => s + o, 0n),
      20n
    )

    const noTopic = await topics(['offsets', '--group', group, '--topic', uniqueName('nope')], env)
    assert.equal(noTopic.code, 1)
    assert.match(noTopic.stderr, /topic .* does not exist on the Kafka cluster at .*: check the name/)
  })

  test('usage errors exit 2', async () => {
    const env = { ...process.env }
    const runs = await Promise.all([
      topics(['offsets'], env),
      topics(['reset-offsets', '--group', 'g'], env),
      topics(['reset-offsets', '--group', 'g', '--to', 'yesterday'], env),
      topics(['offsets', '--group', 'g', '--to', 'latest'], env)
    ])
    for (const run of runs) {
      assert.equal(run.code, 2, run.stderr)
      assert.match(run.stderr, /--help/)
    }
    assert.match(runs[2]!.stderr, /--to: expected earliest, latest or an RFC 3339 time, got "yesterday"/)
    const help = await topics(['--help'], env)
    assert.match(help.stdout, /reset-offsets --group G --to earliest\|latest\|<RFC 3339 time>/)
  })
})

describe('npm run topics -- offsets | reset-offsets on the embedded log', () => {
  test('a live runner is named and refused; reset moves the committed offsets', async (t) => {
    const dir = tempDataDir(t)
    const env = embeddedEnv(dir)
    const log = openLog(t, dir)
    log.append(
      records('memory.events', 0, 12).map((r) => ({ ...r, key: Buffer.from(r.key), value: Buffer.from(r.value) }))
    )
    const ends = log.partitions('memory.events')
    const member = joinGroup(log, 'sfm-memory', 10_000)
    commitOffsets(
      log,
      member,
      ends.map((p) => ({ topic: 'memory.events', partition: p.partition, offset: p.end > 0n ? 1n : 0n }))
    )
    const committed = () =>
      new Map(
        (
          log.db.prepare('SELECT partition, offset FROM group_offsets WHERE group_id = ?').all('sfm-memory') as {
            partition: number
            offset: number
          }[]
        ).map((r) => [r.partition, r.offset])
      )
    const before = committed()

    const shown = await topics(['offsets', '--group', 'sfm-memory'], env)
    assert.equal(shown.code, 0, shown.stderr)
    assert.match(shown.stdout, new RegExp(`live members: pid ${process.pid} on `))
    const total = ends.reduce((s, p) => s + Number(p.end), 0)
    const nonEmpty = ends.filter((p) => p.end > 0n).length
    assert.match(shown.stdout, new RegExp(`^total lag ${total - nonEmpty}$`, 'm'))

    const refused = await topics(['reset-offsets', '--group', 'sfm-memory', '--to', 'latest'], env)
    assert.equal(refused.code, 1)
    assert.match(refused.stderr, new RegExp(`has 1 live member\\(s\\): pid ${process.pid} on .* — stop them`))
    assert.deepEqual(committed(), before)

    leaveGroup(log, member)
    const latest = await topics(['reset-offsets', '--group', 'sfm-memory', '--to', 'latest'], env)
    assert.equal(latest.code, 0, latest.stderr)
    assert.deepEqual(committed(), new Map(ends.map((p) => [p.partition, Number(p.end)])))
    const after = await topics(['offsets', '--group', 'sfm-memory', '--json'], env)
    assert.equal(
      (JSON.parse(after.stdout) as { partitions: { lag: string }[] }).partitions.every((p) => p.lag === '0'),
      true
    )
    const unknown = await topics(['offsets', '--group', 'nobody'], env)
    assert.equal(unknown.code, 1)
    assert.match(unknown.stderr, /consumer group nobody does not exist on embedded log /)
  })
})
