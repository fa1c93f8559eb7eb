import assert from 'node:assert/strict'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, type TestContext, test } from 'node:test'
import { Admin } from '@platformatic/kafka'
import { runNodeScript } from '../helpers/cli.ts'
import { brokers, createTopics, NO_KAFKA, readTopic, uniqueName } from '../helpers/kafka.ts'

const skip = brokers() ? false : NO_KAFKA

/** Runs the CLI as a user would (Node 24 from node_modules, cwd = the project). */
const produceCli = (args: string[], input?: string, env: NodeJS.ProcessEnv = process.env) =>
  runNodeScript('src/cli/produce.ts', args, env, input)

/** Records in a topic: the sum of its partitions' end offsets. */
async function topicSize(topic: string): Promise<bigint> {
  const admin = new Admin({ clientId: 'sfm-produce-test', bootstrapBrokers: brokers()! })
  try {
    const metadata = await admin.metadata({ topics: [topic] })
    const count = metadata.topics.get(topic)?.partitionsCount ?? 0
    const [offsets] = await admin.listOffsets({
      topics: [
        { name: topic, partitions: Array.from({ length: count }, (_, i) => ({ partitionIndex: i, timestamp: -1n })) }
      ]
    })
    return (offsets?.partitions ?? []).reduce((sum, p) => sum + p.offset, 0n)
  } finally {
    await admin.close()
  }
}

async function tempFile(t: TestContext, name: string, text: string): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'sfm-produce-'))
  t.after(() => rm(dir, { recursive: true, force: true }))
  const path = join(dir, name)
  await writeFile(path, text)
  return path
}

describe('npm run produce', { skip }, () => {
  test('sends the good lines with their keys, reports bad lines by number, exits 1', { timeout: 60_000 }, async (t) => {
    const topic = uniqueName('t.produce')
    await createTopics(t, [topic], 3)
    const long = JSON.stringify({ id: 'long', text: 'x'.repeat(300) })
    const lines = [
      '{"id":"a","n":1}',
      '{"id":"b","n":2}',
      'this is not { json',
      '',
      '{"id":"c","n":3}',
      '{"n":4}',
      '{"id":"a","n":5}',
      long,
      '{"id":"d","n":6}\r',
      '{"id":7,"n":7}'
    ]
    // No newline after the last line: it still counts.
    const file = await tempFile(t, 'events.jsonl', lines.join('\n'))

    const run = await produceCli([
      '--topic',
      topic,
      '--file',
      file,
      '--key-field',
      'id',
      '--max-line-bytes',
      '200',
      '--header',
      'source=produce-test',
      '--header',
      'x-empty='
    ])
    assert.equal(run.code, 1, run.stderr)
    assert.match(run.stderr, /line 3 rejected: not valid JSON/)
    assert.match(run.stderr, /line 6 rejected: lacks the key field "id"/)
    assert.match(run.stderr, /line 8 rejected: line is \d+ bytes, over the 200-byte limit/)
    assert.doesNotMatch(run.stderr, /line (4|1|2|5|7|9|10) rejected/)
    assert.doesNotMatch(run.stderr, /this is not/, 'message bodies stay out of the logs')
    const report = JSON.parse(run.stdout.trim())
    assert.equal(report.sent, 6)
    assert.equal(report.rejected, 3)
    assert.equal(report.blank, 1)
    assert.equal(report.topic, topic)
    assert.ok(report.rate > 0 && report.latencyMs.p50 > 0 && report.latencyMs.p99 >= report.latencyMs.p50)

    assert.equal(await topicSize(topic), 6n, 'exactly the good lines, each once')
    const messages = await readTopic(topic, 6)
    assert.deepEqual(
      messages.map((m) => `${m.key} ${m.value}`).toSorted(),
      [
        'a {"id":"a","n":1}',
        'b {"id":"b","n":2}',
        'c {"id":"c","n":3}',
        'a {"id":"a","n":5}',
        'd {"id":"d","n":6}',
        '7 {"id":7,"n":7}'
      ].toSorted()
    )
    for (const m of messages) {
      assert.equal(m.headers.get('source'), 'produce-test')
      assert.equal(m.headers.get('x-empty'), '')
    }
    // Same key, same partition, in file order.
    const a = messages.filter((m) => m.key === 'a')
    assert.equal(a[0]?.partition, a[1]?.partition)
    assert.deepEqual(
      a.map((m) => JSON.parse(m.value!).n),
      [1, 5]
    )
  })

  test('reads stdin with -; all good lines → exit 0, unkeyed records', { timeout: 60_000 }, async (t) => {
    const topic = uniqueName('t.produce')
    await createTopics(t, [topic], 1)
    const input = `${Array.from({ length: 1200 }, (_, i) => JSON.stringify({ i })).join('\n')}\n\n`
    const run = await produceCli(['--topic', topic, '--file', '-', '--batch-size', '100'], input)
    assert.equal(run.code, 0, run.stderr)
    const report = JSON.parse(run.stdout.trim())
    assert.equal(report.sent, 1200)
    assert.equal(report.sends, 12)
    assert.match(run.stderr, /sent 1200 to .* msg\/s.*p50 [\d.]+ ms, p99 [\d.]+ ms/)
    assert.equal(await topicSize(topic), 1200n)
    const messages = await readTopic(topic, 1200)
    assert.deepEqual(
      messages.map((m) => JSON.parse(m.value!).i),
      Array.from({ length: 1200 }, (_, i) => i),
      'one partition: file order'
    )
    assert.equal(messages[0]?.key, undefined)
  })

  test('a missing topic fails fast and names it', { timeout: 30_000 }, async () => {
    const topic = uniqueName('t.produce-missing')
    const started = Date.now()
    const run = await produceCli(['--topic', topic, '--file', '-'], '{"id":1}\n')
    assert.equal(run.code, 1)
    assert.match(run.stderr, new RegExp(`topic ${topic.replaceAll('.', '\\.')} does not exist`))
    assert.ok(Date.now() - started < 15_000)
  })
})

describe('npm run produce usage', () => {
  test('usage errors exit 2, --help exits 0, a missing KAFKA_BROKERS is named', async () => {
    const help = await produceCli(['--help'])
    assert.equal(help.code, 0)
    assert.match(help.stdout, /--key-field/)
    // Concurrently: each run is a Node start-up.
    const usage = [['--file', 'x'], ['--topic', 't'], ['--topic', 't', '--file', 'x', '--batch-size', '0'], ['--nope']]
    const runs = await Promise.all(usage.map((args) => produceCli(args)))
    runs.forEach((run, i) => {
      assert.equal(run.code, 2, `${usage[i]?.join(' ')}: ${run.stderr}`)
      assert.match(run.stderr, /--help/)
    })
    const header = await produceCli(['--topic', 't', '--file', 'x', '--header', 'novalue'])
    assert.equal(header.code, 2)
    assert.match(header.stderr, /--header: expected K=V/)
    const env = { ...process.env }
    delete env.KAFKA_BROKERS
    // Nor may the CLI find a local dev stack to fall back to.
    env.SFM_STACK_DIR = '/nonexistent/sfm-stack'
    const noBrokers = await produceCli(['--topic', 't', '--file', '-'], '{}\n', env)
    assert.equal(noBrokers.code, 1)
    assert.match(noBrokers.stderr, /KAFKA_BROKERS/)
  })
})
