import assert from 'node:assert/strict'
import { once } from 'node:events'
import { describe, test } from 'node:test'
import {
  brokers,
  committedOffsets,
  createTopics,
  NO_KAFKA,
  produce,
  readTopic,
  uniqueName,
  waitFor
} from '../helpers/kafka.ts'
import { startRunner } from '../helpers/runner.ts'

const skip = brokers() ? false : NO_KAFKA
/** CI runs a few cycles; `npm run reliability -- relay-kill-9` runs 50. */
const CYCLES = Number(process.env.SFM_KILL_CYCLES ?? 3)
const MESSAGES = Number(process.env.SFM_KILL_MESSAGES ?? 50_000)

describe('runner processes on a real broker', { skip }, () => {
  test(`kill -9 mid-stream ${CYCLES}×, restart: every message reaches the sink, none skipped`, {
    timeout: 600_000
  }, async (t) => {
    const names = {
      RELAY_IN: uniqueName('kin'),
      RELAY_OUT: uniqueName('kout'),
      RELAY_DLQ: uniqueName('kdlq'),
      RELAY_GROUP: uniqueName('kgroup')
    }
    await createTopics(t, [names.RELAY_IN, names.RELAY_OUT, names.RELAY_DLQ], 3)
    await produce(
      Array.from({ length: MESSAGES }, (_, i) => ({
        topic: names.RELAY_IN,
        key: `id-${i % 101}`,
        value: JSON.stringify({ seq: i, text: 'x'.repeat(200) })
      }))
    )
    let killedMidStream = 0
    for (let cycle = 0; cycle < CYCLES; cycle++) {
      const runner = startRunner('test/fixtures/relay.topology.ts', names)
      await waitFor(() => /assigned [1-9]/.test(runner.stderr()), 60_000, 'the runner to get partitions')
      await new Promise((r) => setTimeout(r, 50 + Math.random() * 450))
      const exited = once(runner.child, 'exit')
      runner.child.kill('SIGKILL')
      const [, signal] = await exited
      assert.equal(signal, 'SIGKILL')
      const committed = [...(await committedOffsets(names.RELAY_GROUP, names.RELAY_IN)).values()].reduce(
        (a, b) => a + (b > 0n ? b : 0n),
        0n
      )
      if (committed < BigInt(MESSAGES)) killedMidStream++
    }
    const final = startRunner('test/fixtures/relay.topology.ts', names, ['--until-idle=3', '--status-interval=0'])
    const [code] = await once(final.child, 'exit')
    assert.equal(code, 0, final.stderr())

    const out = await readTopic(names.RELAY_OUT, MESSAGES, 60_000)
    const seen = new Set(out.map((m) => (JSON.parse(m.value ?? '{}') as { seq: number }).seq))
    const missing = Array.from({ length: MESSAGES }, (_, i) => i).filter((i) => !seen.has(i))
    assert.deepEqual(missing.slice(0, 10), [], `${missing.length} message(s) never reached the sink`)
    // Give duplicates a moment to arrive too, then count them (allowed at this layer: at-least-once).
    const all = await readTopic(names.RELAY_OUT, Number.MAX_SAFE_INTEGER, 3_000)
    t.diagnostic(`cycles ${CYCLES}, killed mid-stream ${killedMidStream}, duplicates ${all.length - MESSAGES}`)
    const committed = await committedOffsets(names.RELAY_GROUP, names.RELAY_IN)
    assert.equal(
      [...committed.values()].reduce((a, b) => a + b, 0n),
      BigInt(MESSAGES),
      'the group has committed the whole input'
    )
    assert.ok(killedMidStream > 0, 'at least one kill landed before the input was fully committed')
  })

  test('metrics are served while running; SIGTERM drains, commits what was written and exits 0', {
    timeout: 120_000
  }, async (t) => {
    const names = {
      RELAY_IN: uniqueName('sin'),
      RELAY_OUT: uniqueName('sout'),
      RELAY_DLQ: uniqueName('sdlq'),
      RELAY_GROUP: uniqueName('sgroup')
    }
    await createTopics(t, [names.RELAY_IN, names.RELAY_OUT, names.RELAY_DLQ], 2)
    await produce(
      Array.from({ length: 5_000 }, (_, i) => ({
        topic: names.RELAY_IN,
        key: `k${i % 7}`,
        value: JSON.stringify({ seq: i })
      }))
    )
    const runner = startRunner('test/fixtures/relay.topology.ts', names, ['--metrics-port=0'])
    await waitFor(() => /assigned [1-9]/.test(runner.stderr()), 60_000, 'the runner to get partitions')
    // The Prometheus endpoint of the running process counts what it consumed.
    const url = /metrics: (http:\/\/\S+\/metrics)/.exec(runner.stderr())?.[1]
    assert.ok(url, 'the runner prints its metrics address')
    // Consumed is counted on receipt, processing time once a message is done: wait for both.
    await waitFor(
      async () => {
        const text = await (await fetch(url)).text()
        return (
          /sfm_messages_consumed_total\{[^}]*\} [1-9]/.test(text) &&
          /sfm_processing_seconds_count\{[^}]*\} [1-9]/.test(text)
        )
      },
      30_000,
      'consumed and processed messages in /metrics'
    )
    const exposition = await (await fetch(url)).text()
    for (const name of [
      'sfm_processing_seconds_bucket',
      'sfm_batch_size_bucket',
      'sfm_producer_latency_seconds_count'
    ]) {
      assert.ok(exposition.includes(name), `${name} is exported`)
    }
    const exited = once(runner.child, 'exit')
    runner.child.kill('SIGTERM')
    const [code] = await exited
    assert.equal(code, 0, runner.stderr())
    assert.match(runner.stderr(), /SIGTERM: stopping/)
    assert.match(runner.stderr(), /stopped \(signal\)/)
    const committed = [...(await committedOffsets(names.RELAY_GROUP, names.RELAY_IN)).values()].reduce(
      (a, b) => a + (b > 0n ? b : 0n),
      0n
    )
    const out = await readTopic(names.RELAY_OUT, Number.MAX_SAFE_INTEGER, 3_000)
    assert.ok(BigInt(out.length) >= committed, `committed ${committed} but only ${out.length} written`)
  })
})
