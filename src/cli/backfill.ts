import { createHash } from 'node:crypto'
import { join, resolve } from 'node:path'
import { parseArgs } from 'node:util'
import { chooseStack, describeStack, topicName } from '../config.ts'
import { describeError, ErrorKinds, kindOf } from '../errors.ts'
import { createProducer, producerTarget } from '../kafka/producer.ts'
import { redact } from '../logger.ts'
import {
  type BackfillProgress,
  type BackfillSummary,
  backfill,
  readBackfillState,
  repair,
  writeBackfillState
} from '../memory/legacy/backfill.ts'
import { readParityReport } from '../memory/legacy/parity-report.ts'
import { openLegacyStore } from '../memory/legacy/store.ts'
import { ExitCodes, endQuietlyWhenStdoutCloses, type Io, parseCommandLine, stdio, UsageError } from './io.ts'

const USAGE = `Usage: npm run backfill -- --legacy-url URL [options]

Streams the memories of the legacy SomaFractalMemory store (PostgreSQL table kv_store) into memory.events as
memory.event v1 upserts: id = the key without ":data", version 0 (never overwrites a newer event of the live
producers), event_id from key + value (a second run produces the same events: the memory topology applies
nothing twice). Rows that are not memories (:meta, :wal:, :version:, uuid5 keys) are skipped and counted.

Options:
  --legacy-url URL     PostgreSQL connection string of the legacy store (required)
  --namespace N        only the memories of namespace N
  --dry-run            read and count, produce nothing
  --resume             continue after the last key an earlier, interrupted run had acknowledged
  --repair FILE        re-emit only the ids of a parity report (npm run parity -- --out FILE), at the current
                       clock's version: upserts of the legacy value, deletes for ids gone from the legacy store
  --state FILE         the checkpoint file (default <data dir>/backfill/<hash of url, namespace, topic>.json)
  --page-size N        rows per read (default 10000)
  --data-dir DIR       embedded log and default state folder (default SFM_DATA_DIR, ./.sfm-data)
  -h, --help           this help

Environment: KAFKA_BROKERS (without it, the embedded log under the data dir), SFM_TOPIC_PREFIX, Kafka TLS/SASL as
for npm start, LOG_LEVEL=debug for error details. A progress bar with rate and ETA on a terminal, a line every
10 s otherwise; a summary on stderr and one JSON line on stdout.
Exit codes: 0 done, 1 failed (resume with --resume) or memory rows that could not be sent, 2 usage or
configuration error (nothing written).`

interface Cli {
  legacyUrl: string
  namespace?: string
  dryRun: boolean
  resume: boolean
  repair?: string
  state?: string
  pageSize?: number
  dataDir?: string
}

function parse(argv: string[]): { help: true } | ({ help: false } & Cli) {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    strict: true,
    options: {
      'legacy-url': { type: 'string' },
      namespace: { type: 'string' },
      'dry-run': { type: 'boolean', default: false },
      resume: { type: 'boolean', default: false },
      repair: { type: 'string' },
      state: { type: 'string' },
      'page-size': { type: 'string' },
      'data-dir': { type: 'string' },
      help: { type: 'boolean', short: 'h', default: false }
    }
  })
  if (values.help) return { help: true }
  if (positionals.length > 0) throw new UsageError(`unexpected argument "${positionals[0]}"`)
  if (!values['legacy-url']) throw new UsageError('--legacy-url is required (the legacy PostgreSQL connection string)')
  if (values.namespace === '') throw new UsageError('--namespace must not be empty')
  if (values.repair !== undefined && values.resume) throw new UsageError('--repair and --resume do not go together')
  if (values.repair === '') throw new UsageError('--repair needs a parity report file')
  let pageSize: number | undefined
  if (values['page-size'] !== undefined) {
    if (!/^\d+$/.test(values['page-size']) || Number(values['page-size']) < 1) {
      throw new UsageError(`--page-size: expected a positive integer, got "${values['page-size']}"`)
    }
    pageSize = Number(values['page-size'])
  }
  return {
    help: false,
    legacyUrl: values['legacy-url'],
    dryRun: values['dry-run'],
    resume: values.resume,
    ...(values.namespace === undefined ? {} : { namespace: values.namespace }),
    ...(values.repair === undefined ? {} : { repair: values.repair }),
    ...(values.state === undefined ? {} : { state: values.state }),
    ...(pageSize === undefined ? {} : { pageSize }),
    ...(values['data-dir'] === undefined ? {} : { dataDir: values['data-dir'] })
  }
}

/** The connection string without its password (a URL's query, e.g. search_path options, is part of the source). */
function withoutPassword(url: string): string {
  try {
    const parsed = new URL(url)
    parsed.password = ''
    parsed.searchParams.delete('password')
    return parsed.toString()
  } catch {
    return redact(url)
  }
}

/** The default checkpoint: one file per (legacy database, namespace, topic), the password left out of the hash. */
function defaultStatePath(cli: Cli, topic: string): string {
  const dataDir = resolve(cli.dataDir ?? process.env.SFM_DATA_DIR ?? '.sfm-data')
  const hash = createHash('sha256')
    .update(`${withoutPassword(cli.legacyUrl)}\0${cli.namespace ?? ''}\0${topic}`)
    .digest('hex')
    .slice(0, 16)
  return join(dataDir, 'backfill', `${hash}.json`)
}

const number = (n: number): string => n.toLocaleString('en-US')

function duration(seconds: number): string {
  if (!Number.isFinite(seconds)) return '--:--'
  const s = Math.round(seconds)
  const h = Math.floor(s / 3600)
  const m = Math.floor((s % 3600) / 60)
  const rest = String(s % 60).padStart(2, '0')
  return h > 0 ? `${h}:${String(m).padStart(2, '0')}:${rest}` : `${m}:${rest}`
}

/** One progress line: bar (on a terminal), rows, rate and ETA. */
export function progressLine(p: BackfillProgress, bar: boolean, done = p.read): string {
  const rate = p.seconds > 0 ? p.read / p.seconds : 0
  const fraction = p.total > 0 ? Math.min(1, done / p.total) : 1
  const eta = rate > 0 ? (p.total - done) / rate : Number.POSITIVE_INFINITY
  const width = 30
  const filled = Math.round(fraction * width)
  const head = bar ? `[${'#'.repeat(filled)}${'-'.repeat(width - filled)}] ` : ''
  return (
    `${head}${(fraction * 100).toFixed(1)}% ${number(done)}/${number(p.total)} rows, ${number(p.produced)} memories` +
    ` sent, ${number(Math.round(rate))} rows/s, ETA ${duration(eta)}`
  )
}

function summaryLines(s: BackfillSummary): string[] {
  const skipped = Object.entries(s.skipped)
    .map(([kind, n]) => `${kind} ${number(n)}`)
    .join(', ')
  const lines = [
    `backfill${s.dryRun ? ' (dry run)' : ''}: read ${number(s.read)} rows in ${s.seconds.toFixed(1)} s (${number(s.rate)} rows/s);` +
      ` ${s.dryRun ? 'would send' : 'sent'} ${number(s.produced)} memories; skipped (not memories): ${skipped}` +
      (s.resumedAfter === undefined ? '' : `; resumed after ${JSON.stringify(s.resumedAfter)}`)
  ]
  const invalid = Object.entries(s.invalid)
  if (invalid.length > 0) {
    lines.push(`backfill: memory rows NOT sent: ${invalid.map(([why, n]) => `${why} ${number(n)}`).join(', ')}`)
    for (const sample of s.invalidSamples) lines.push(`  ${JSON.stringify(sample.key)}: ${sample.reason}`)
  }
  return lines
}

export async function main(argv: string[], io: Io = stdio, tty = Boolean(process.stderr.isTTY)): Promise<number> {
  const cli = parseCommandLine('backfill', USAGE, io, () => parse(argv))
  if (typeof cli === 'number') return cli
  const topic = topicName('memory.events')
  const statePath = cli.state ?? defaultStatePath(cli, topic)
  let legacy: Awaited<ReturnType<typeof openLegacyStore>> | undefined
  let producer: ReturnType<typeof createProducer> | undefined
  try {
    // Everything that can be wrong in the command line or the files is checked before anything is written.
    const report = cli.repair === undefined ? undefined : await readParityReport(cli.repair)
    const state = cli.resume ? await readBackfillState(statePath) : undefined
    if (cli.resume && state === undefined)
      io.err(`backfill: no checkpoint at ${statePath}: starting from the first key`)
    legacy = await openLegacyStore(cli.legacyUrl)
    const dataDir = cli.dataDir === undefined ? {} : { dataDir: cli.dataDir }
    if (!cli.dryRun) {
      io.err(`backfill: from ${redact(cli.legacyUrl)} to ${topic} (${producerTarget(dataDir)})`)
      producer = createProducer({ clientId: 'sfm-backfill', ...dataDir })
    }
    if (report) {
      const summary = await repair({ legacy, topic, report, dryRun: cli.dryRun, ...(producer ? { producer } : {}) })
      io.err(
        `backfill --repair${summary.dryRun ? ' (dry run)' : ''}: ${number(summary.ids)} ids at version ${summary.version}:` +
          ` ${number(summary.upserts)} upserts, ${number(summary.deletes)} deletes` +
          (Object.keys(summary.invalid).length > 0 ? `; NOT sent: ${JSON.stringify(summary.invalid)}` : '')
      )
      io.out(JSON.stringify({ repair: true, ...summary }))
      return Object.keys(summary.invalid).length > 0 ? ExitCodes.FAILED : ExitCodes.OK
    }
    let lastDrawn = 0
    const draw = (p: BackfillProgress, final = false) => {
      const at = performance.now()
      if (tty) {
        if (final || at - lastDrawn > 200) process.stderr.write(`\r${progressLine(p, true)}${final ? '\n' : ''}`)
      } else if (at - lastDrawn > 10_000) io.err(`backfill: ${progressLine(p, false)}`)
      else return
      lastDrawn = at
    }
    const source = redact(cli.legacyUrl)
    const summary = await backfill({
      legacy,
      topic,
      dryRun: cli.dryRun,
      ...(producer ? { producer } : {}),
      ...(cli.namespace === undefined ? {} : { namespace: cli.namespace }),
      ...(cli.pageSize === undefined ? {} : { pageSize: cli.pageSize }),
      ...(state === undefined ? {} : { after: state.lastKey }),
      ...(cli.dryRun
        ? {}
        : {
            checkpoint: (lastKey, counts) =>
              writeBackfillState(statePath, {
                source,
                topic,
                namespace: cli.namespace ?? null,
                lastKey,
                counts,
                updatedAt: new Date().toISOString()
              })
          }),
      onProgress: (p) => draw(p)
    })
    if (tty) draw(summary, true)
    for (const line of summaryLines(summary)) io.err(line)
    io.out(JSON.stringify(summary))
    return Object.keys(summary.invalid).length > 0 ? ExitCodes.FAILED : ExitCodes.OK
  } catch (error) {
    if (process.env.LOG_LEVEL === 'debug' && error instanceof Error) io.err(error.stack ?? '')
    io.err(`backfill: ${describeError(error)}`)
    if (kindOf(error) === ErrorKinds.FATAL) return ExitCodes.USAGE
    if (cli.repair === undefined && !cli.dryRun) io.err('backfill: run again with --resume to continue')
    return ExitCodes.FAILED
  } finally {
    await producer?.close().catch(() => {})
    await legacy?.end().catch(() => {})
  }
}

if (import.meta.main) {
  endQuietlyWhenStdoutCloses()
  // As a command, fall back to the running local dev stack (`npm run stack -- up`); say first what is used and why.
  process.stderr.write(`backfill: ${describeStack(await chooseStack())}\n`)
  process.exitCode = await main(process.argv.slice(2))
}
