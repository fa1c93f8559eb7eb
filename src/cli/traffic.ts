import { existsSync } from 'node:fs'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import type pg from 'pg'
import { chooseStack, describeStack, topicName } from '../config.ts'
import { describeError, ErrorKinds, kindOf } from '../errors.ts'
import type { SfmProducer } from '../kafka/messages.ts'
import { createProducer, producerTarget } from '../kafka/producer.ts'
import { redact } from '../logger.ts'
import { openLegacyStore } from '../memory/legacy/store.ts'
import {
  liveSlots,
  nodeTrafficApp,
  pythonTrafficApp,
  runTraffic,
  type TrafficApp,
  type TrafficCounts,
  type TrafficPattern,
  TrafficPatterns,
  TrafficPlan,
  type TrafficSummary
} from '../memory/legacy/traffic.ts'
import { quoteIdent } from '../postgres/identifiers.ts'
import { ExitCodes, endQuietlyWhenStdoutCloses, type Io, parseCommandLine, stdio, UsageError } from './io.ts'

/** The repository root (src/cli/ is two levels down): the project's .venv is there. */
const REPO_ROOT = join(import.meta.dirname, '..', '..')
export const VENV_PYTHON = join(REPO_ROOT, '.venv', 'bin', 'python')

const USAGE = `Usage: npm run traffic -- --rate R --duration S [options]

Synthetic app traffic for a cutover rehearsal (RUNBOOK.md, step 3): writes memories as the legacy SomaFractalMemory
app does — creates, updates and deletes of {ns}:{repr(coord)}:data rows with values shaped like the app's, a :meta
row per create — into the legacy kv_store, and publishes each one the way the app would with the chosen producer
pattern (docs/PRODUCERS.md):
  dual-write   the kv_store write (autocommit), then the event to memory.events
  outbox       the kv_store write and the sfm_outbox row in one transaction (topologies/outbox-relay.ts publishes)
  events       the event only: the app once its traffic has moved (RUNBOOK.md step 4; kv_store is only read, for
               which memories of the pool are live, and is kept current by the legacy mirror)

Options:
  --rate R             writes per second (required)
  --duration S         seconds to write for (required)
  --ids N              size of the pool of memories written (default 1000); memories of the pool already in
                       kv_store are updated or deleted, the others created
  --via python|node    the app: python (default) runs python -m sfm_events.traffic from the project's .venv
                       (npm run python-setup), node makes the same writes with this project's producer
  --pattern P          dual-write (default), outbox or events
  --legacy-url URL     the legacy PostgreSQL with kv_store (default SFM_LEGACY_URL, else DATABASE_URL)
  --namespace N        namespace of the memories (default "default", the legacy app's)
  --seed N             seed of the writes (default: from the clock, printed; the same seed plans the same writes)
  --outbox-table T     with --pattern outbox: the outbox table on the legacy URL's search path (default sfm_outbox;
                       create it with psql "$URL" -f clients/python/sfm_events/outbox.sql)
  -h, --help           this help

Environment: SFM_PYTHON (the Python for --via python, default .venv/bin/python), KAFKA_BROKERS (dual-write; --via node without it writes the embedded log), SFM_TOPIC_PREFIX, Kafka
TLS/SASL as for npm start; a running local stack (npm run stack -- up) fills unset KAFKA_BROKERS / DATABASE_URL.
Progress every 5 s and a summary on stderr (writes by kind, rate achieved, publish failures), one JSON line on
stdout.
Exit codes: 0 done, 1 a write failed or events could not be published (parity then names those memories), 2 usage or
configuration error (nothing written).`

interface Cli {
  rate: number
  duration: number
  ids: number
  via: 'python' | 'node'
  pattern: TrafficPattern
  legacyUrl?: string
  namespace: string
  seed?: number
  outboxTable: string
}

function positiveNumber(name: string, value: string | undefined, whole: boolean): number | undefined {
  if (value === undefined) return undefined
  const n = Number(value)
  if (!/^\d+(\.\d+)?$/.test(value) || n <= 0 || (whole && !Number.isInteger(n))) {
    throw new UsageError(`--${name}: expected a ${whole ? 'whole ' : ''}number > 0, got "${value}"`)
  }
  return n
}

function parse(argv: string[]): { help: true } | ({ help: false } & Cli) {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    strict: true,
    options: {
      rate: { type: 'string' },
      duration: { type: 'string' },
      ids: { type: 'string' },
      via: { type: 'string', default: 'python' },
      pattern: { type: 'string', default: TrafficPatterns.DUAL_WRITE },
      'legacy-url': { type: 'string' },
      namespace: { type: 'string', default: 'default' },
      seed: { type: 'string' },
      'outbox-table': { type: 'string', default: 'sfm_outbox' },
      help: { type: 'boolean', short: 'h', default: false }
    }
  })
  if (values.help) return { help: true }
  if (positionals.length > 0) throw new UsageError(`unexpected argument "${positionals[0]}"`)
  const rate = positiveNumber('rate', values.rate, false)
  const duration = positiveNumber('duration', values.duration, false)
  if (rate === undefined) throw new UsageError('--rate is required (writes per second)')
  if (duration === undefined) throw new UsageError('--duration is required (seconds)')
  const ids = positiveNumber('ids', values.ids, true) ?? 1000
  if (values.via !== 'python' && values.via !== 'node') {
    throw new UsageError(`--via: expected python or node, got "${values.via}"`)
  }
  const patterns: readonly string[] = Object.values(TrafficPatterns)
  if (!patterns.includes(values.pattern)) {
    throw new UsageError(`--pattern: expected ${patterns.join(' or ')}, got "${values.pattern}"`)
  }
  if (values.namespace === '' || values.namespace.includes(':')) {
    throw new UsageError(`--namespace: expected a name without ":", got "${values.namespace}"`)
  }
  if (!/^[A-Za-z_][A-Za-z0-9_]{0,62}$/.test(values['outbox-table'])) {
    throw new UsageError(`--outbox-table: expected a plain table name, got "${values['outbox-table']}"`)
  }
  let seed: number | undefined
  if (values.seed !== undefined) {
    if (!/^\d+$/.test(values.seed)) throw new UsageError(`--seed: expected a whole number, got "${values.seed}"`)
    seed = Number(values.seed) >>> 0
  }
  return {
    help: false,
    rate,
    duration,
    ids,
    via: values.via,
    pattern: values.pattern as TrafficPattern,
    namespace: values.namespace,
    outboxTable: values['outbox-table'],
    ...(values['legacy-url'] ? { legacyUrl: values['legacy-url'] } : {}),
    ...(seed === undefined ? {} : { seed })
  }
}

function countsLine(c: TrafficCounts): string {
  return `${c.writes} writes (create ${c.create}, update ${c.update}, delete ${c.delete}), publish failures ${c.publish_failures}`
}

function summaryLine(s: TrafficSummary): string {
  return `traffic: done — ${countsLine(s)} in ${s.seconds.toFixed(1)} s: ${s.rate}/s of ${s.target_rate}/s wanted; ${s.live} memories of the pool live`
}

export async function main(argv: string[], io: Io = stdio, env: NodeJS.ProcessEnv = process.env): Promise<number> {
  const cli = parseCommandLine('traffic', USAGE, io, () => parse(argv))
  if (typeof cli === 'number') return cli
  const fail = (line: string) => {
    io.err(`traffic: ${line}`)
    return ExitCodes.USAGE
  }
  const legacyUrl = cli.legacyUrl ?? (env.SFM_LEGACY_URL || env.DATABASE_URL)
  if (!legacyUrl) {
    return fail(
      'no legacy store: give --legacy-url URL, or set SFM_LEGACY_URL or DATABASE_URL (or start npm run stack -- up)'
    )
  }
  const brokers = env.KAFKA_BROKERS
  const python = env.SFM_PYTHON || VENV_PYTHON
  if (cli.via === 'python') {
    if (!existsSync(python)) {
      return fail(`no Python with sfm_events at ${python}: run \`npm run python-setup\` (or use --via node)`)
    }
    if (cli.pattern !== TrafficPatterns.OUTBOX && !brokers) {
      return fail(`${cli.pattern} from Python needs Kafka: set KAFKA_BROKERS (or start npm run stack -- up)`)
    }
  }
  let legacy: pg.Client | undefined
  let producer: SfmProducer | undefined
  const stop = new AbortController()
  const onSignal = () => stop.abort()
  process.once('SIGINT', onSignal)
  process.once('SIGTERM', onSignal)
  try {
    legacy = await openLegacyStore(legacyUrl)
    if (cli.pattern === TrafficPatterns.OUTBOX) {
      const { rows } = await legacy.query<{ t: string | null }>('SELECT to_regclass($1)::text AS t', [
        quoteIdent(cli.outboxTable)
      ])
      if (rows[0]?.t == null) {
        return fail(
          `no outbox table ${cli.outboxTable} at ${redact(legacyUrl)}: create it with psql "<legacy url>" -f clients/python/sfm_events/outbox.sql`
        )
      }
    }
    const seed = cli.seed ?? Date.now() >>> 0
    const plan = new TrafficPlan({ ids: cli.ids, namespace: cli.namespace, seed })
    const existing = await liveSlots(legacy, plan)
    plan.markLive(existing)
    const topic = topicName('memory.events', env)
    let app: TrafficApp
    if (cli.via === 'python') {
      app = pythonTrafficApp({
        python,
        pattern: cli.pattern,
        legacyUrl,
        outboxTable: cli.outboxTable,
        env,
        // Its own errors come back as the one line of the failure; everything it printed with LOG_LEVEL=debug.
        ...(env.LOG_LEVEL === 'debug' ? { onStderr: (line: string) => io.err(`traffic (python): ${line}`) } : {})
      })
    } else {
      if (cli.pattern !== TrafficPatterns.OUTBOX) producer = createProducer({ clientId: 'sfm-traffic' })
      app = nodeTrafficApp({
        client: legacy,
        pattern: cli.pattern,
        outboxTable: quoteIdent(cli.outboxTable),
        ...(producer ? { producer, topic } : {})
      })
    }
    const to =
      cli.pattern === TrafficPatterns.OUTBOX
        ? `the outbox ${cli.outboxTable}`
        : `${topic} on ${brokers ? `Kafka ${brokers}` : producerTarget()}`
    io.err(
      `traffic: ${cli.rate}/s for ${cli.duration} s via ${cli.via}, ${cli.pattern}: ` +
        (cli.pattern === TrafficPatterns.EVENTS
          ? `${to} only (kv_store at ${redact(legacyUrl)} read, not written); `
          : `kv_store at ${redact(legacyUrl)} and ${to}; `) +
        `${cli.ids} ids in namespace ${cli.namespace} (${existing.length} already live), seed ${seed}`
    )
    const summary = await runTraffic({
      plan,
      app,
      rate: cli.rate,
      durationSeconds: cli.duration,
      signal: stop.signal,
      onProgress: (counts, elapsed) =>
        io.err(`traffic: ${elapsed.toFixed(0)} s — ${countsLine(counts)}, ${(counts.writes / elapsed).toFixed(1)}/s`)
    })
    io.err(summaryLine(summary))
    io.out(JSON.stringify({ via: cli.via, pattern: cli.pattern, seed, ...summary }))
    return summary.publish_failures > 0 ? ExitCodes.FAILED : ExitCodes.OK
  } catch (error) {
    if (env.LOG_LEVEL === 'debug' && error instanceof Error) io.err(error.stack ?? '')
    io.err(`traffic: ${describeError(error)}`)
    return kindOf(error) === ErrorKinds.FATAL ? ExitCodes.USAGE : ExitCodes.FAILED
  } finally {
    process.off('SIGINT', onSignal)
    process.off('SIGTERM', onSignal)
    await producer?.close().catch(() => {})
    await legacy?.end().catch(() => {})
  }
}

if (import.meta.main) {
  endQuietlyWhenStdoutCloses()
  // As a command, fall back to the running local dev stack (`npm run stack -- up`); say first what is used and why.
  process.stderr.write(`traffic: ${describeStack(await chooseStack())}\n`)
  process.exitCode = await main(process.argv.slice(2))
}
