/**
 * Benchmark `embedded-log`: the embedded log (src/log) on its own and under a topology.
 *
 * 1. appends/s: N events of ~1 KB through the embedded producer (`createProducer` with no brokers), batches of 500,
 *    one transaction each, synchronous=FULL (the default).
 * 2. topology events/s: EmbeddedLogSource → decodeJson → validate → dedupe → batch → no-op sink, from the first
 *    message to the N-th done (the same topology as `npm run bench -- runtime`).
 * 3. With KAFKA_BROKERS set, the same topology on a KafkaSource over the same events in the same run; `ratio` is
 *    embedded / Kafka topology events/s. Without it, `ratio` is null.
 *
 * The machine is shared: the figures are the best of `--rounds` and the load average is printed with them.
 */
import { mkdtempSync, rmSync, statSync } from 'node:fs'
import { cpus, loadavg, tmpdir } from 'node:os'
import { join } from 'node:path'
import { Admin } from '@platformatic/kafka'
import { pipe } from 'rxjs'
import { waitForLeaders } from '../src/kafka/topics.ts'
import { createLogger } from '../src/logger.ts'
import { createProducer, kafkaDeadLetter, type OutgoingMessage } from '../src/sinks/kafka/index.ts'
import type { Sink } from '../src/sinks/types.ts'
import { EmbeddedLogSource } from '../src/sources/embedded/index.ts'
import { KafkaSource, parseBrokers } from '../src/sources/kafka/index.ts'
import type { Source } from '../src/sources/types.ts'
import type { DeadLetterTarget } from '../src/streams/dead-letter.ts'
import { decodeJson } from '../src/streams/operators/decode-json.ts'
import { dedupe } from '../src/streams/operators/dedupe.ts'
import { validate } from '../src/streams/operators/validate.ts'
import { Runtime } from '../src/streams/runtime.ts'
import { branch, defineTopology } from '../src/streams/topology.ts'
import { parseBenchArgs } from './lib/args.ts'
import { type BenchEvent, benchEventSchema } from './lib/bench-event.ts'
import { type BenchResult, progress, round } from './lib/benchmark.ts'

const BENCH = 'embedded-log'

export const description = 'embedded log: appends/s and topology events/s (vs Kafka when KAFKA_BROKERS is set)'
export const requires = [] as const

export const usage = `Usage: npm run bench -- embedded-log [options]

Appends N JSON events (~1 KB) to a fresh embedded log in a temporary folder with the embedded producer, then runs a
topology (EmbeddedLogSource → decodeJson → validate → dedupe → no-op sink) over them. With KAFKA_BROKERS set, the
same events also go to a fresh Kafka topic and the same topology runs on a KafkaSource, for comparison.

Options:
  --messages N        events (default 100000)
  --rounds R          topology rounds per side, best kept (default 2)
  --batch B           events per append transaction (default 500)
  -h, --help          show this help

Last stdout line:
  {"bench":"embedded-log","messages":N,"append_per_s":…,"embedded_topology_per_s":…,"kafka_topology_per_s":…,"ratio":…}
`

interface Options {
  messages: number
  rounds: number
  batch: number
}

function parseOptions(args: string[]): Options {
  const { int } = parseBenchArgs(BENCH, args, ['messages', 'rounds', 'batch'])
  return {
    messages: int('messages', 100_000, 1, 50_000_000),
    rounds: int('rounds', 2, 1, 20),
    batch: int('batch', 500, 1, 100_000)
  }
}

function* events(topic: string, count: number, batch: number): Generator<OutgoingMessage[]> {
  const timestamp = new Date().toISOString()
  const text = 'memory recall context embedding vector fractal soma stream event batch commit '.repeat(12).slice(0, 850)
  for (let from = 0; from < count; from += batch) {
    const out: OutgoingMessage[] = []
    for (let i = from; i < Math.min(count, from + batch); i++) {
      const event: BenchEvent = {
        event_id: `e-${i}`,
        id: `mem-${i % 50_000}`,
        namespace: 'bench',
        type: 'note',
        timestamp,
        version: i,
        payload: { text }
      }
      out.push({ topic, key: event.id, value: JSON.stringify(event) })
    }
    yield out
  }
}

async function measureTopology(source: Source, deadLetter: DeadLetterTarget, messages: number): Promise<number> {
  const noop: Sink<BenchEvent> = { kind: 'noop', write: async () => undefined }
  const topology = defineTopology<BenchEvent>({
    name: 'bench-embedded-log',
    source,
    pipeline: pipe(
      decodeJson(),
      validate<BenchEvent>(benchEventSchema),
      dedupe<BenchEvent>({ key: (e) => e.value.event_id })
    ),
    branches: { noop: branch(noop) },
    deadLetter
  })
  let first = 0
  let last = 0
  let done = 0
  const runtime: Runtime = new Runtime(topology, {
    logger: createLogger(BENCH, 'warn'),
    observer: {
      consumed() {
        if (first === 0) first = performance.now()
      },
      processed() {
        if (++done === messages) {
          last = performance.now()
          runtime.stop()
        }
      }
    }
  })
  const timer = setTimeout(() => runtime.stop(), 60_000 + messages)
  try {
    await runtime.run()
  } finally {
    clearTimeout(timer)
  }
  if (done < messages) throw new Error(`topology: only ${done}/${messages} done`)
  return messages / ((last - first) / 1000)
}

export async function run(args: string[]): Promise<BenchResult> {
  const o = parseOptions(args)
  const [one, five] = loadavg()
  progress(
    BENCH,
    `machine: ${cpus().length} cores, load average ${one?.toFixed(2)} (1 min) ${five?.toFixed(2)} (5 min)`
  )
  const dir = mkdtempSync(join(tmpdir(), 'sfm-bench-log-'))
  const topic = 'memory.events'
  try {
    const producer = createProducer({ target: 'embedded', dataDir: dir })
    const started = performance.now()
    for (const batch of events(topic, o.messages, o.batch)) await producer.send(batch)
    const appendSeconds = (performance.now() - started) / 1000
    await producer.close()
    const bytes = statSync(join(dir, 'log.sqlite')).size
    const appendPerS = o.messages / appendSeconds
    progress(
      BENCH,
      `appended ${o.messages} in ${round(appendSeconds, 2)} s: ${round(appendPerS)}/s (${round(bytes / 1e6)} MB file)`
    )

    let embedded = 0
    for (let r = 0; r < o.rounds; r++) {
      const source = new EmbeddedLogSource({ path: join(dir, 'log.sqlite'), topics: [topic], groupId: `bench-${r}` })
      const rate = await measureTopology(
        source,
        kafkaDeadLetter({ topic: 'memory.dlq', target: 'embedded', dataDir: dir }),
        o.messages
      )
      progress(BENCH, `embedded topology round ${r + 1}: ${round(rate)} events/s`)
      embedded = Math.max(embedded, rate)
    }

    let kafka: number | null = null
    const brokers = parseBrokers(process.env.KAFKA_BROKERS)
    if (brokers.length > 0) {
      const kafkaTopic = `bench-embedded-${Date.now().toString(36)}`
      const admin = new Admin({ clientId: 'sfm-bench-admin', bootstrapBrokers: brokers })
      try {
        await admin.createTopics({ topics: [kafkaTopic, `${kafkaTopic}.dlq`], partitions: 6, replicas: 1 })
        await waitForLeaders(admin, [kafkaTopic, `${kafkaTopic}.dlq`])
        const kp = createProducer({ brokers, clientId: 'sfm-bench-producer' })
        for (const batch of events(kafkaTopic, o.messages, 2_000)) await kp.send(batch)
        await kp.close()
        for (let r = 0; r < o.rounds; r++) {
          const source = new KafkaSource({ topics: [kafkaTopic], groupId: `${kafkaTopic}-${r}`, brokers })
          const rate = await measureTopology(
            source,
            kafkaDeadLetter({ topic: `${kafkaTopic}.dlq`, brokers }),
            o.messages
          )
          progress(BENCH, `kafka topology round ${r + 1}: ${round(rate)} events/s`)
          kafka = Math.max(kafka ?? 0, rate)
        }
      } finally {
        await admin.deleteTopics({ topics: [kafkaTopic, `${kafkaTopic}.dlq`] }).catch(() => {})
        await admin.close()
      }
    } else progress(BENCH, 'KAFKA_BROKERS is not set: no Kafka comparison (ratio null)')

    return {
      bench: BENCH,
      messages: o.messages,
      batch: o.batch,
      append_per_s: round(appendPerS),
      file_mb: round(bytes / 1e6, 1),
      embedded_topology_per_s: round(embedded),
      kafka_topology_per_s: kafka === null ? null : round(kafka),
      load_1m: round(one ?? 0, 2),
      ratio: kafka === null ? null : round(embedded / kafka, 2)
    }
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
}
