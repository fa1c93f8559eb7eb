import { writeFile } from 'node:fs/promises'
import { setTimeout as sleep } from 'node:timers/promises'
import { parseArgs } from 'node:util'
import pg from 'pg'
import { chooseStack, describeStack } from '../config.ts'
import { embedderFromEnv } from '../embedders/index.ts'
import { describeError, ErrorCodes, ErrorKinds, FatalError, kindOf } from '../errors.ts'
import { redact } from '../logger.ts'
import { compareParity, DEFAULT_IGNORED_FIELDS, type ParityResult, totalDifferences } from '../memory/legacy/parity.ts'
import { PARITY_CLASSES } from '../memory/legacy/parity-report.ts'
import { openLegacyStore } from '../memory/legacy/store.ts'
import { parseTableName, quoteQualified } from '../postgres/identifiers.ts'
import type { VectorStore } from '../sinks/vector/index.ts'
import { vectorStoreFromEnv } from '../sinks/vector/index.ts'
import { Metrics } from '../telemetry/metrics.ts'
import { ExitCodes, endQuietlyWhenStdoutCloses, type Io, parseCommandLine, stdio, UsageError } from './io.ts'

const USAGE = `Usage: npm run parity -- --legacy-url URL [options]

Compares every memory of the legacy SomaFractalMemory store (kv_store rows …:data) with the memories row of the same
id, both read in id order through a cursor (constant memory), and classifies the differences:
  missing       in the legacy store, no row here
  extra         live here, gone from the legacy store
  differing     both live, payloads differ once the ignored fields are left out (numbers compare by value)
  deleted_here  deleted here, live in the legacy store

Options:
  --legacy-url URL     PostgreSQL connection string of the legacy store (required)
  --database-url URL   the memories database (default DATABASE_URL)
  --table NAME         the memories table (default SFM_MEMORY_TABLE, else memories)
  --namespace N        only namespace N
  --sample N           field-level diff of the first N differing memories (default 10)
  --ignore-field F     top-level payload field left out of the comparison (repeatable; replaces the default
                       ${DEFAULT_IGNORED_FIELDS.join(', ')}; --ignore-field '' compares every field)
  --vectors            also check the vector index (QDRANT_URL, VECTOR_DATABASE_URL or the embedded one, as the
                       memory topology): every live memory has its vector, no deleted memory has one
  --json               print the result as one JSON object (counts, samples) instead of lines
  --out FILE           write the report with every id per class (input of npm run backfill -- --repair FILE)
  --watch SECONDS      compare again every SECONDS until SIGINT/SIGTERM, exporting sfm_parity_differences{class}
  --metrics-port PORT  with --watch: serve Prometheus metrics on 127.0.0.1:PORT/metrics (0: any free port)
  -h, --help           this help

Exit codes: 0 no differences, 1 differences found (or the comparison failed), 2 usage or configuration error.
With --watch: the code of the last comparison once stopped.`

interface Cli {
  legacyUrl: string
  databaseUrl: string
  table: string
  namespace?: string
  sample: number
  ignore: readonly string[]
  json: boolean
  vectors: boolean
  out?: string
  watch?: number
  metricsPort?: number
}

function parse(argv: string[], env: NodeJS.ProcessEnv): { help: true } | ({ help: false } & Cli) {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    strict: true,
    options: {
      'legacy-url': { type: 'string' },
      'database-url': { type: 'string' },
      table: { type: 'string' },
      namespace: { type: 'string' },
      sample: { type: 'string' },
      'ignore-field': { type: 'string', multiple: true },
      json: { type: 'boolean', default: false },
      vectors: { type: 'boolean', default: false },
      out: { type: 'string' },
      watch: { type: 'string' },
      'metrics-port': { type: 'string' },
      help: { type: 'boolean', short: 'h', default: false }
    }
  })
  if (values.help) return { help: true }
  if (positionals.length > 0) throw new UsageError(`unexpected argument "${positionals[0]}"`)
  if (!values['legacy-url']) throw new UsageError('--legacy-url is required (the legacy PostgreSQL connection string)')
  const databaseUrl = values['database-url'] || env.DATABASE_URL
  if (!databaseUrl) throw new UsageError('no memories database: give --database-url or set DATABASE_URL')
  if (values.namespace === '') throw new UsageError('--namespace must not be empty')
  if (values.out === '') throw new UsageError('--out needs a file name')
  let sample = 10
  if (values.sample !== undefined) {
    if (!/^\d+$/.test(values.sample)) throw new UsageError(`--sample: expected a whole number, got "${values.sample}"`)
    sample = Number(values.sample)
  }
  let watch: number | undefined
  if (values.watch !== undefined) {
    watch = Number(values.watch)
    if (!/^\d+(\.\d+)?$/.test(values.watch) || watch <= 0) {
      throw new UsageError(`--watch: expected a number of seconds > 0, got "${values.watch}"`)
    }
  }
  let metricsPort: number | undefined
  if (values['metrics-port'] !== undefined) {
    metricsPort = Number(values['metrics-port'])
    if (!/^\d+$/.test(values['metrics-port']) || metricsPort > 65535) {
      throw new UsageError(`--metrics-port: expected a port number, got "${values['metrics-port']}"`)
    }
    if (watch === undefined) throw new UsageError('--metrics-port goes with --watch')
  }
  const ignore = values['ignore-field'] === undefined ? DEFAULT_IGNORED_FIELDS : values['ignore-field'].filter((f) => f)
  return {
    help: false,
    legacyUrl: values['legacy-url'],
    databaseUrl,
    table: values.table || env.SFM_MEMORY_TABLE || 'memories',
    sample,
    ignore,
    json: values.json,
    vectors: values.vectors,
    ...(values.namespace === undefined ? {} : { namespace: values.namespace }),
    ...(values.out === undefined ? {} : { out: values.out }),
    ...(watch === undefined ? {} : { watch }),
    ...(metricsPort === undefined ? {} : { metricsPort })
  }
}

/** Connects to the memories database and checks the table, with one-line errors that say what to fix. */
async function openHere(url: string, table: string): Promise<{ client: pg.Client; quoted: string }> {
  const quoted = quoteQualified(parseTableName(table, '--table'))
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 10_000 })
  client.on('error', () => {})
  try {
    await client.connect()
  } catch (error) {
    await client.end().catch(() => {})
    throw new FatalError(
      `cannot connect to the memories database at ${redact(url)}: ${describeError(error)} — check --database-url / DATABASE_URL`,
      { code: ErrorCodes.CONFIG }
    )
  }
  const { rows } = await client.query<{ t: string | null }>('SELECT to_regclass($1)::text AS t', [quoted])
  if (rows[0]?.t == null) {
    await client.end().catch(() => {})
    throw new FatalError(
      `no table ${table} at ${redact(url)} — run the memory topology first, or name the table with --table`,
      { code: ErrorCodes.CONFIG }
    )
  }
  return { client, quoted }
}

function summaryLines(r: ParityResult): string[] {
  const lines = [
    `parity${r.namespace === null ? '' : ` (namespace ${r.namespace})`}: ${r.compared.legacy} legacy memories, ` +
      `${r.compared.here} rows here, ${r.equal} equal; ` +
      PARITY_CLASSES.map((name) => `${name} ${r.counts[name]}`).join(', ') +
      ` (${r.seconds.toFixed(1)} s; ignored fields: ${r.ignored_fields.join(', ') || 'none'})`
  ]
  for (const name of PARITY_CLASSES) {
    const first = r.ids[name].slice(0, 5)
    if (first.length > 0) {
      lines.push(`  ${name}: ${first.map((id) => JSON.stringify(id)).join(', ')}${r.ids[name].length > 5 ? ', …' : ''}`)
    }
  }
  if (r.vectors !== undefined) {
    const v = r.vectors
    lines.push(
      `  vectors: ${v.checked} memories checked; live without a vector ${v.counts.missing}, deleted with a vector ${v.counts.orphaned}`
    )
    for (const [name, list] of Object.entries(v.ids)) {
      if (list.length > 0)
        lines.push(
          `    ${name}: ${list
            .slice(0, 5)
            .map((id) => JSON.stringify(id))
            .join(', ')}`
        )
    }
  }
  for (const sample of r.samples) {
    lines.push(`  differing ${JSON.stringify(sample.id)}:`)
    for (const f of sample.fields) {
      lines.push(`    ${f.field}: legacy ${f.legacy ?? '(absent)'} | here ${f.here ?? '(absent)'}`)
    }
  }
  return lines
}

export async function main(argv: string[], io: Io = stdio, env: NodeJS.ProcessEnv = process.env): Promise<number> {
  const cli = parseCommandLine('parity', USAGE, io, () => parse(argv, env))
  if (typeof cli === 'number') return cli
  if (cli.watch !== undefined) return watch(cli, cli.watch, io, env)
  try {
    const result = await compareOnce(cli, env)
    report(cli, result, io)
    if (cli.out !== undefined) io.err(`parity: report with every id per class written to ${cli.out}`)
    return totalDifferences(result) === 0 ? ExitCodes.OK : ExitCodes.FAILED
  } catch (error) {
    return failed(error, io, env)
  }
}

function failed(error: unknown, io: Io, env: NodeJS.ProcessEnv): number {
  if (env.LOG_LEVEL === 'debug' && error instanceof Error) io.err(error.stack ?? '')
  io.err(`parity: ${describeError(error)}`)
  return kindOf(error) === ErrorKinds.FATAL ? ExitCodes.USAGE : ExitCodes.FAILED
}

/** One comparison on fresh connections (a watch survives a database restart between rounds). */
async function compareOnce(cli: Cli, env: NodeJS.ProcessEnv): Promise<ParityResult> {
  let legacy: pg.Client | undefined
  let here: pg.Client | undefined
  let store: VectorStore | undefined
  try {
    if (cli.vectors) {
      store = await vectorStoreFromEnv(env)
      // The same embedder settings as the memory topology: open checks the index has their dimensions.
      await store.open(embedderFromEnv(env).dimensions)
    }
    legacy = await openLegacyStore(cli.legacyUrl)
    const opened = await openHere(cli.databaseUrl, cli.table)
    here = opened.client
    const result = await compareParity({
      legacy,
      here,
      table: opened.quoted,
      sample: cli.sample,
      ignoreFields: cli.ignore,
      ...(store === undefined ? {} : { vectors: store }),
      ...(cli.namespace === undefined ? {} : { namespace: cli.namespace })
    })
    if (cli.out !== undefined) await writeFile(cli.out, JSON.stringify(result))
    return result
  } finally {
    await legacy?.end().catch(() => {})
    await here?.end().catch(() => {})
    await store?.close().catch(() => {})
  }
}

function report(cli: Cli, result: ParityResult, io: Io): void {
  if (cli.json) {
    const { ids: _, ...summary } = result
    io.out(JSON.stringify(summary))
  } else for (const line of summaryLines(result)) io.out(line)
}

/**
 * --watch: compare every `seconds` until SIGINT/SIGTERM and export the counts as sfm_parity_differences{class}
 * (topology label `parity`). A configuration error in the first round stops it (exit 2); a failure in a later round
 * is printed and the next round tries again, the gauges keeping the last counts.
 */
async function watch(cli: Cli, seconds: number, io: Io, env: NodeJS.ProcessEnv): Promise<number> {
  const metrics = new Metrics({ topology: 'parity' })
  const stop = new AbortController()
  const onSignal = () => stop.abort()
  process.once('SIGINT', onSignal)
  process.once('SIGTERM', onSignal)
  let code: number = ExitCodes.OK
  try {
    if (cli.metricsPort !== undefined) {
      const address = await metrics.listen(cli.metricsPort)
      io.err(`parity: metrics on http://${address.address}:${address.port}/metrics`)
    }
    for (let round = 1; !stop.signal.aborted; round++) {
      try {
        const result = await compareOnce(cli, env)
        metrics.setParity(result.counts)
        report(cli, result, io)
        code = totalDifferences(result) === 0 ? ExitCodes.OK : ExitCodes.FAILED
      } catch (error) {
        const failure = failed(error, io, env)
        if (round === 1 && failure === ExitCodes.USAGE) return failure
        code = ExitCodes.FAILED
      }
      await sleep(seconds * 1000, undefined, { signal: stop.signal }).catch(() => {})
    }
    return code
  } finally {
    process.off('SIGINT', onSignal)
    process.off('SIGTERM', onSignal)
    await metrics.close()
  }
}

if (import.meta.main) {
  endQuietlyWhenStdoutCloses()
  // As a command, fall back to the running local dev stack (`npm run stack -- up`); say first what is used and why.
  process.stderr.write(`parity: ${describeStack(await chooseStack())}\n`)
  process.exitCode = await main(process.argv.slice(2))
}
