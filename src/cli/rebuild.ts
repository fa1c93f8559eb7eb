import { parseArgs } from 'node:util'
import { requireEnv, topicName } from '../config.ts'
import { describeError } from '../errors.ts'
import { TopicNames } from '../kafka/topics.ts'
import { rebuildKv } from '../memory/rebuild.ts'
import { openLogAccess } from '../ops/log.ts'
import { createPool } from '../sinks/postgres/pool.ts'
import { ExitCodes, endQuietlyWhenStdoutCloses, type Io, parseCommandLine, stdio, UsageError } from './io.ts'
import { useServices } from './services.ts'

const USAGE = `Usage: npm run rebuild -- kv --into <table> [--swap] [options]

Builds a new memories table from memory.latest (the last state of each memory), with progress, checks it row by
row against the fold of the topic, and with --swap replaces the live table in one transaction of renames. The live
topology keeps running: the swap merges, under the fence, what it wrote meanwhile and every tombstone, then the
previous table keeps the --into name (drop it once satisfied).

Options:
  --into T         The table to build, [schema.]name; it must not exist
  --swap           After a clean check, exchange it with the live table
  --table T        The live memories table (default memories)
  --topic T        The latest topic (default SFM_TOPIC_PREFIX + memory.latest)
  --batch-size N   Rows per INSERT (default 1000)
  --data-dir DIR   Embedded log folder when KAFKA_BROKERS is unset (default SFM_DATA_DIR, ./.sfm-data)
  -h, --help       This help

Vectors: SFM_REINDEX_FILL=true npm start -- topologies/reindex.ts --until-idle builds a new index (README).
Environment: DATABASE_URL (PostgreSQL), KAFKA_BROKERS (else the embedded log).
Exit codes: 0 built (and swapped), 1 refused or failed (nothing swapped), 2 usage error or servers that do not
answer.`

export { ExitCodes } from './io.ts'

function parse(argv: string[]) {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    strict: true,
    options: {
      into: { type: 'string' },
      swap: { type: 'boolean', default: false },
      table: { type: 'string' },
      topic: { type: 'string' },
      'batch-size': { type: 'string' },
      'data-dir': { type: 'string' },
      help: { type: 'boolean', short: 'h', default: false }
    }
  })
  if (values.help) return { help: true as const }
  if (positionals.length !== 1) throw new UsageError('expected exactly one command: kv')
  if (positionals[0] === 'vectors') {
    throw new UsageError(
      'rebuild vectors is not here yet: build a new index with SFM_REINDEX_FILL=true npm start -- topologies/reindex.ts'
    )
  }
  if (positionals[0] !== 'kv') throw new UsageError(`unknown command "${positionals[0]}" (expected kv)`)
  if (!values.into) throw new UsageError('--into <table> is required')
  for (const flag of ['table', 'topic', 'data-dir'] as const) {
    if (values[flag] === '') throw new UsageError(`--${flag} must not be empty`)
  }
  const batch = values['batch-size']
  if (batch !== undefined && (!/^\d+$/.test(batch) || Number(batch) < 1 || Number(batch) > 100_000)) {
    throw new UsageError(`--batch-size: expected an integer from 1 to 100000, got "${batch}"`)
  }
  return {
    help: false as const,
    into: values.into,
    batchSize: batch === undefined ? undefined : Number(batch),
    swap: values.swap,
    table: values.table,
    topic: values.topic,
    dataDir: values['data-dir']
  }
}

/** `localStack`: fill unset variables from the running local dev stack (as a command). */
export async function main(
  argv: string[],
  env: NodeJS.ProcessEnv = process.env,
  io: Io = stdio,
  localStack = false
): Promise<number> {
  const parsed = parseCommandLine('rebuild', USAGE, io, () => parse(argv))
  if (typeof parsed === 'number') return parsed
  let access: ReturnType<typeof openLogAccess> | undefined
  let pool: ReturnType<typeof createPool> | undefined
  try {
    const services = { localStack, dataDir: parsed.dataDir, names: ['KAFKA_BROKERS', 'DATABASE_URL'] as const }
    if (!(await useServices('rebuild', env, io, services))) return ExitCodes.USAGE
    const connectionString = requireEnv('DATABASE_URL', 'the PostgreSQL database of the memories table', env)
    access = openLogAccess({ env, ...(parsed.dataDir === undefined ? {} : { dataDir: parsed.dataDir }) })
    pool = createPool({
      connectionString,
      poolSize: 2,
      statementTimeoutMs: 300_000,
      queryTimeoutMs: 305_000,
      connectionTimeoutMs: 5_000,
      idleTimeoutMs: 30_000,
      applicationName: 'sfm-rebuild'
    })
    pool.on('error', () => {})
    const topic = parsed.topic ?? topicName(TopicNames.LATEST, env)
    io.err(`rebuild: ${parsed.into} from ${topic} on ${access.description}`)
    let shown = 0
    const report = await rebuildKv(access, pool, {
      into: parsed.into,
      topic,
      swap: parsed.swap,
      ...(parsed.table === undefined ? {} : { table: parsed.table }),
      ...(parsed.batchSize === undefined ? {} : { batchSize: parsed.batchSize }),
      onProgress: (read, total) => {
        // About every tenth of the way, and at the end.
        if (read === total || read - shown >= Math.max(1000, total / 10)) {
          shown = read
          io.err(`rebuild: read ${read}/${total} records`)
        }
      }
    })
    io.out(JSON.stringify(report))
    io.err(
      `rebuild: ${report.into}: ${report.memories} memories, ${report.deleted} deleted, equal to the fold of ` +
        `${report.records} records` +
        (report.swapped
          ? `; swapped in for the live table (${report.merged} rows merged from it), the previous one is now ${report.into}`
          : '; not swapped (--swap to replace the live table)')
    )
    return ExitCodes.OK
  } catch (error) {
    io.err(`rebuild: ${describeError(error)}`)
    return ExitCodes.FAILED
  } finally {
    await access?.close()
    await pool?.end().catch(() => {})
  }
}

if (import.meta.main) {
  endQuietlyWhenStdoutCloses()
  // As a command, fall back to the running local dev stack (`npm run stack -- up`) for unset variables.
  process.exitCode = await main(process.argv.slice(2), process.env, stdio, true)
}
