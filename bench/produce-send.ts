/**
 * Benchmark `produce-send`: what the producer's record-size check costs on the normal path. The KV branch's shape —
 * per batch, N memory.audit records (~330 B) and N memory.latest records (~1.7 KB), one partition each, sent one
 * batch after the other — through `createProducer` (sizes every record, compares each topic's bytes with its
 * `max.message.bytes`, one request when under it) and through a bare @platformatic/kafka producer with the same
 * settings (no check), in alternating rounds. `ratio` is ours / bare records per second (1.0 = no cost).
 *
 * It also times the added work alone, without the network: converting the batches with the size bound and the
 * per-topic sums (`prepareMessages`) against the conversion alone, ns per record.
 *
 * `--split-records M` also times batches of M records per topic that are over the limit, which only our producer can
 * send (the bare one is refused with MESSAGE_TOO_LARGE), as records/s of the split path.
 */
import { cpus, loadavg } from 'node:os'
import { Admin, compatibilityPartitioner, type MessageToProduce, ProduceAcks, Producer } from '@platformatic/kafka'
import { prepareMessages } from '../src/kafka/producer.ts'
import { headerBytesBound, recordBytesBound } from '../src/kafka/record-limit.ts'
import { waitForLeaders } from '../src/kafka/topics.ts'
import { createProducer, type OutgoingMessage } from '../src/sinks/kafka/index.ts'
import { parseBrokers } from '../src/sources/kafka/options.ts'
import { parseBenchArgs } from './lib/args.ts'
import { type BenchResult, progress, round } from './lib/benchmark.ts'

const BENCH = 'produce-send'

export const description = 'producer: cost of the per-topic record-size check (vs a bare producer), split-path rate'
export const requires = ['KAFKA_BROKERS'] as const

export const usage = `Usage: npm run bench -- produce-send [options]

Sends batches shaped like the memory KV branch's (N memory.audit + N memory.latest records) to two fresh
one-partition topics (max.message.bytes 2 MiB), through the framework's producer and through a bare
@platformatic/kafka producer with the same settings, alternating rounds; best round per side.

Options:
  --records N         records per topic per batch (default 500: ~850 KB of memory.latest, under the limit)
  --batches B         batches per round (default 40)
  --rounds R          rounds per side (default 3)
  --split-records M   also time batches of M records per topic with our producer only (default 2000: ~3.4 MB,
                      split into requests under the limit; 0 to skip)
  -h, --help          show this help

Last stdout line:
  {"bench":"produce-send","records":N,"check_ns_per_record":…,"prepare_ns_per_record":…,"prepare_before_ns_per_record":…,"ours_records_per_s":…,"bare_records_per_s":…,"split_records_per_s":…,"ratio":…}
`

const LIMIT = 2 * 1024 * 1024

function batchOf(audit: string, latest: string, records: number, batch: number): OutgoingMessage[] {
  const out: OutgoingMessage[] = []
  const processedAt = new Date().toISOString()
  const text = 'memory recall context embedding vector fractal soma stream '.repeat(30).slice(0, 1500)
  for (let i = 0; i < records; i++) {
    const id = `mem-${batch}-${i}`
    const traceparent = `00-${'1'.repeat(32)}-${'2'.repeat(16)}-01`
    out.push({
      topic: audit,
      key: id,
      value: JSON.stringify({
        event_id: crypto.randomUUID(),
        id,
        namespace: 'bench',
        op: 'upsert',
        version: 1,
        timestamp: processedAt,
        outcome: 'applied',
        topology: 'memory',
        processed_at: processedAt
      }),
      headers: { traceparent }
    })
  }
  for (let i = 0; i < records; i++) {
    const id = `mem-${batch}-${i}`
    out.push({
      topic: latest,
      key: id,
      value: JSON.stringify({
        id,
        namespace: 'bench',
        type: 'note',
        importance: 0.5,
        version: 1,
        event_id: crypto.randomUUID(),
        timestamp: processedAt,
        payload: { text }
      }),
      headers: { traceparent: `00-${'1'.repeat(32)}-${'2'.repeat(16)}-01` }
    })
  }
  return out
}

const toBuffer = (v: Buffer | string): Buffer => (typeof v === 'string' ? Buffer.from(v) : v)

/** createProducer's conversion before the check (the bare producer's): no sizes, no sums. */
function convert(messages: readonly OutgoingMessage[]): MessageToProduce<Buffer, Buffer, Buffer, Buffer>[] {
  return messages.map((m) => {
    const out: MessageToProduce<Buffer, Buffer, Buffer, Buffer> = { topic: m.topic }
    if (m.key !== undefined) out.key = toBuffer(m.key)
    if (m.value !== null) out.value = toBuffer(m.value)
    if (m.partition !== undefined) out.partition = m.partition
    if (m.headers) {
      const headers = new Map<Buffer, Buffer>()
      const entries = m.headers instanceof Map ? m.headers.entries() : Object.entries(m.headers)
      for (const [k, v] of entries) headers.set(Buffer.from(k), toBuffer(v))
      out.headers = headers
    }
    return out
  })
}

/** The per-record work the check adds to the conversion, done apart (prepareMessages sums headers in its own loop). */
function sizeCheck(out: readonly MessageToProduce<Buffer, Buffer, Buffer, Buffer>[]): number {
  const sizes = new Int32Array(out.length)
  const perTopic = new Map<string, number>()
  for (let i = 0; i < out.length; i++) {
    const o = out[i]!
    let size = recordBytesBound(o.key?.length ?? 0, o.value?.length ?? 0, undefined)
    if (o.headers) for (const [k, v] of o.headers as Map<Buffer, Buffer>) size += headerBytesBound(k.length, v.length)
    sizes[i] = size
    perTopic.set(o.topic, (perTopic.get(o.topic) ?? 0) + size)
  }
  return sizes.length + perTopic.size
}

/** CPU only: ns per record of `prepare` over the batches, best of `rounds` passes. */
function nsPerRecord(
  prepare: (messages: readonly OutgoingMessage[], index: number) => unknown,
  batches: readonly OutgoingMessage[][],
  rounds: number
): number {
  const records = batches.reduce((n, b) => n + b.length, 0)
  let best = Number.POSITIVE_INFINITY
  for (let r = 0; r < rounds; r++) {
    const started = process.hrtime.bigint()
    for (let i = 0; i < batches.length; i++) prepare(batches[i]!, i)
    best = Math.min(best, Number(process.hrtime.bigint() - started) / records)
  }
  return best
}

/** What createProducer's send did before the check: the same conversion, one request. */
function bare(brokers: string[]): {
  send(messages: readonly OutgoingMessage[]): Promise<void>
  close(): Promise<void>
} {
  const producer = new Producer<Buffer, Buffer, Buffer, Buffer>({
    clientId: 'sfm-bench-bare',
    bootstrapBrokers: brokers,
    idempotent: true,
    acks: ProduceAcks.ALL,
    autocreateTopics: false,
    partitioner: compatibilityPartitioner,
    retries: 5,
    retryDelay: 200
  })
  return {
    async send(messages) {
      await producer.send({ messages: convert(messages) })
    },
    close: () => producer.close()
  }
}

async function timeRound(
  producer: { send(messages: readonly OutgoingMessage[]): Promise<void> },
  batches: readonly OutgoingMessage[][]
): Promise<number> {
  const started = performance.now()
  for (const batch of batches) await producer.send(batch)
  const records = batches.reduce((n, b) => n + b.length, 0)
  return records / ((performance.now() - started) / 1000)
}

export async function run(args: string[]): Promise<BenchResult> {
  const { int } = parseBenchArgs(BENCH, args, ['records', 'batches', 'rounds', 'split-records'])
  const records = int('records', 500, 1, 100_000)
  const batchCount = int('batches', 40, 1, 10_000)
  const rounds = int('rounds', 3, 1, 20)
  const splitRecords = int('split-records', 2000, 0, 100_000)
  const brokers = parseBrokers(process.env.KAFKA_BROKERS)
  const [one] = loadavg()
  progress(BENCH, `machine: ${cpus().length} cores, load average ${one?.toFixed(2)} (1 min)`)
  const suffix = crypto.randomUUID().slice(0, 8)
  const audit = `bench-produce-audit-${suffix}`
  const latest = `bench-produce-latest-${suffix}`
  const admin = new Admin({ clientId: 'sfm-bench-admin', bootstrapBrokers: brokers })
  await admin.createTopics({
    topics: [audit, latest],
    partitions: 1,
    replicas: 1,
    configs: [{ name: 'max.message.bytes', value: String(LIMIT) }]
  })
  await waitForLeaders(admin, [audit, latest])
  const ours = createProducer({ brokers, clientId: 'sfm-bench-ours' })
  const plain = bare(brokers)
  try {
    const batches = Array.from({ length: batchCount }, (_, b) => batchOf(audit, latest, records, b))
    // The added work alone, without the network: alternating passes, best kept.
    let prepareOurs = Number.POSITIVE_INFINITY
    let prepareBare = Number.POSITIVE_INFINITY
    for (let r = 0; r < 10; r++) {
      // Either goes first in turn (the first pass of a round pays for the garbage of the one before).
      if (r % 2 === 0) prepareBare = Math.min(prepareBare, nsPerRecord(convert, batches, 3))
      prepareOurs = Math.min(prepareOurs, nsPerRecord(prepareMessages, batches, 3))
      if (r % 2 === 1) prepareBare = Math.min(prepareBare, nsPerRecord(convert, batches, 3))
    }
    // The added work isolated: the size bound and the per-topic sum over already converted messages.
    const converted = batches.map(convert)
    let check = Number.POSITIVE_INFINITY
    for (let r = 0; r < 10; r++) {
      check = Math.min(
        check,
        nsPerRecord((_, i) => sizeCheck(converted[i]!), batches, 3)
      )
    }
    progress(BENCH, `size check alone: ${check.toFixed(1)} ns/record`)
    progress(BENCH, `prepare: ours ${prepareOurs.toFixed(0)} ns/record, before ${prepareBare.toFixed(0)} ns/record`)
    // Warm both (connections, producer ids, our limit read) before timing.
    await ours.send(batches[0]!)
    await plain.send(batches[0]!)
    let bestOurs = 0
    let bestBare = 0
    for (let r = 0; r < rounds; r++) {
      // Either goes first in turn.
      const first = r % 2 === 0 ? await timeRound(ours, batches) : await timeRound(plain, batches)
      const second = r % 2 === 0 ? await timeRound(plain, batches) : await timeRound(ours, batches)
      const [o, b] = r % 2 === 0 ? [first, second] : [second, first]
      progress(BENCH, `round ${r + 1}: ours ${Math.round(o)} records/s, bare ${Math.round(b)} records/s`)
      bestOurs = Math.max(bestOurs, o)
      bestBare = Math.max(bestBare, b)
    }
    let split: number | null = null
    if (splitRecords > 0) {
      const big = Array.from({ length: Math.max(1, Math.round(batchCount / 4)) }, (_, b) =>
        batchOf(audit, latest, splitRecords, 10_000 + b)
      )
      split = 0
      for (let r = 0; r < rounds; r++) split = Math.max(split, await timeRound(ours, big))
      progress(BENCH, `split path (${splitRecords} records per topic per batch): ${Math.round(split)} records/s`)
    }
    return {
      bench: BENCH,
      records,
      batches: batchCount,
      load_1min: round(one ?? 0, 2),
      check_ns_per_record: round(check, 1),
      prepare_ns_per_record: round(prepareOurs),
      prepare_before_ns_per_record: round(prepareBare),
      ours_records_per_s: round(bestOurs),
      bare_records_per_s: round(bestBare),
      split_records: splitRecords,
      split_records_per_s: split === null ? null : round(split),
      ratio: round(bestOurs / bestBare, 3)
    }
  } finally {
    await Promise.allSettled([ours.close(), plain.close()])
    await admin.deleteTopics({ topics: [audit, latest] }).catch(() => {})
    await admin.close()
  }
}
