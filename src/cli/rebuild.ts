import { parseArgs } from 'node:util'
import { envInt, requireEnv, type ServiceVariable, topicName } from '../config.ts'
import { embedderFromEnv } from '../embedders/index.ts'
import type { Embedder } from '../embedders/types.ts'
import { describeError, ErrorCodes, ErrorKinds, SfmError } from '../errors.ts'
import { TopicNames } from '../kafka/topics.ts'
import { redact as redactUrl } from '../logger.ts'
import { rebuildKv } from '../memory/rebuild.ts'
import { pgvectorTarget, qdrantTarget, type RebuildTarget, rebuildVectors } from '../memory/vectors/rebuild.ts'
import { openLogAccess } from '../ops/log.ts'
import { type FolderLock, LockRoles, lockFolder } from '../pglite/folder-lock.ts'
import { pgliteVectorFolder } from '../pglite/shared.ts'
import { pgDatabase, pgliteDatabase, type SqlDatabase } from '../sinks/pgvector/database.ts'
import {
  DEFAULT_VECTOR_TABLE,
  embeddedPgvectorStoreOptions,
  type PgvectorStoreOptions
} from '../sinks/pgvector/store.ts'
import { createPool } from '../sinks/postgres/pool.ts'
import { defaultQdrantStoreOptions } from '../sinks/qdrant/store.ts'
import { pgvectorIndexFromEnv } from '../sinks/vector/select.ts'
import { ExitCodes, endQuietlyWhenStdoutCloses, type Io, parseCommandLine, stdio, UsageError } from './io.ts'
import { useServices } from './services.ts'

const USAGE = `Usage: npm run rebuild -- kv --into <table> [--swap] [options]
       npm run rebuild -- vectors --into <table> [--swap] [options]

kv: builds a new memories table from memory.latest (the last state of each memory), with progress, checks it row
by row against the fold of the topic, and with --swap replaces the live table in one transaction of renames.
vectors: builds a new vector table (pgvector) or collection (Qdrant) the same way, each memory embedded by the
configured embedder (SFM_EMBEDDER), checks that every live memory is in it at its current version and every deleted
one absent, and with --swap replaces the live one: pgvector, one transaction of renames (indexes renamed with it);
Qdrant, one alias switch (the live name must be an alias, or not exist yet: then the alias is created).
The live topology keeps running: the swap merges, under the fence, what it wrote meanwhile and every tombstone,
then the previous table keeps the --into name (drop it once satisfied).

Options:
  --into T         The table ([schema.]name) or collection to build; it must not exist
  --swap           After a clean check, exchange it with the live table
  --table T        The live table (kv: default memories; vectors: SFM_VECTOR_TABLE, default memory_vectors), or
                   the live alias (Qdrant: SFM_QDRANT_COLLECTION, default memories)
  --topic T        The latest topic (default SFM_TOPIC_PREFIX + memory.latest)
  --batch-size N   Rows per INSERT, kv (default 1000); records per embedding call and write, vectors (default 500)
  --data-dir DIR   Embedded log (and, for vectors, PGlite vector) folder when KAFKA_BROKERS (VECTOR_DATABASE_URL)
                   is unset (default SFM_DATA_DIR, ./.sfm-data)
  -h, --help       This help

Environment: DATABASE_URL (kv: PostgreSQL); vectors, as the memory topology chooses its store: QDRANT_URL
(Qdrant), else VECTOR_DATABASE_URL (pgvector in that PostgreSQL), else the embedded PGlite store (which a running
memory topology holds: stop it first); KAFKA_BROKERS (else the embedded log).
Exit codes: 0 built (and swapped), 1 failed (nothing swapped), 2 usage or configuration error (vectors: a table or
collection that exists, a live name that cannot be swapped; nothing changed), or servers that do not answer.`

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
  if (positionals.length !== 1) throw new UsageError('expected exactly one command: kv or vectors')
  const command = positionals[0]
  if (command !== 'kv' && command !== 'vectors') {
    throw new UsageError(`unknown command "${command}" (expected kv or vectors)`)
  }
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
    command,
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
  if (parsed.command === 'vectors') return vectors(parsed, env, io, localStack)
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

type Parsed = Exclude<ReturnType<typeof parse>, { help: true }>

/**
 * `rebuild vectors`: a new vector table or collection from memory.latest, in the store the memory topology uses
 * (QDRANT_URL, else VECTOR_DATABASE_URL, else the embedded PGlite store; src/sinks/vector/select.ts).
 */
async function vectors(parsed: Parsed, env: NodeJS.ProcessEnv, io: Io, localStack: boolean): Promise<number> {
  let access: ReturnType<typeof openLogAccess> | undefined
  let db: SqlDatabase | undefined
  let lock: FolderLock | undefined
  let embedder: Embedder | undefined
  try {
    const names: ServiceVariable[] = [
      'KAFKA_BROKERS',
      ...(env.QDRANT_URL
        ? (['QDRANT_URL'] as const)
        : env.VECTOR_DATABASE_URL
          ? (['VECTOR_DATABASE_URL'] as const)
          : [])
    ]
    if (!(await useServices('rebuild', env, io, { localStack, dataDir: parsed.dataDir, names }))) return ExitCodes.USAGE
    const dataDir = parsed.dataDir ?? (env.SFM_DATA_DIR || undefined)
    const index = pgvectorIndexFromEnv(env)
    let storeOptions: Partial<PgvectorStoreOptions> = index === undefined ? {} : { index }
    let target: RebuildTarget
    let where: string
    let table: string
    if (env.QDRANT_URL) {
      target = qdrantTarget({
        url: env.QDRANT_URL,
        ...(env.QDRANT_API_KEY ? { apiKey: env.QDRANT_API_KEY } : {}),
        pointsPerRequest: envInt('SFM_QDRANT_POINTS_PER_REQUEST', 128, env),
        maxParallelRequests: envInt('SFM_QDRANT_PARALLEL_REQUESTS', 4, env)
      })
      where = `qdrant at ${redactUrl(env.QDRANT_URL)}`
      table = parsed.table ?? (env.SFM_QDRANT_COLLECTION || defaultQdrantStoreOptions.collection)
    } else if (env.VECTOR_DATABASE_URL) {
      db = pgDatabase({ connectionString: env.VECTOR_DATABASE_URL, poolSize: 2 })
    } else {
      // The embedded store's folder, as the memory topology's vector branch opens it: refused at once while a
      // runner holds it (its vector branch writes there).
      const folder = pgliteVectorFolder(dataDir)
      lock = await lockFolder(folder, { what: 'PGlite vector folder', role: LockRoles.OWNER })
      db = await pgliteDatabase(folder)
      storeOptions = { ...embeddedPgvectorStoreOptions, ...storeOptions }
    }
    if (db !== undefined) {
      target = pgvectorTarget(db, storeOptions)
      where = db.description
      table = parsed.table ?? (env.SFM_VECTOR_TABLE || DEFAULT_VECTOR_TABLE)
    }
    embedder = embedderFromEnv(env)
    access = openLogAccess({ env, ...(dataDir === undefined ? {} : { dataDir }) })
    const topic = parsed.topic ?? topicName(TopicNames.LATEST, env)
    io.err(
      `rebuild: vectors ${parsed.into} from ${topic} on ${access.description} into ${where!}, ` +
        `embedder ${embedder.revision} (${embedder.dimensions} dimensions)`
    )
    let shown = 0
    const report = await rebuildVectors(access, embedder, target!, {
      into: parsed.into,
      table: table!,
      topic,
      swap: parsed.swap,
      ...(parsed.batchSize === undefined ? {} : { batchSize: parsed.batchSize }),
      onProgress: (read, total) => {
        if (read === total || read - shown >= Math.max(1000, total / 10)) {
          shown = read
          io.err(`rebuild: read ${read}/${total} records`)
        }
      }
    })
    io.out(JSON.stringify(report))
    io.err(
      `rebuild: ${report.into}: ${report.memories} memories indexed, ${report.deleted} deleted, ${report.empty} ` +
        `with nothing to embed, equal to the fold of ${report.records} records` +
        (!report.swapped
          ? `; not swapped (--swap to replace ${table!})`
          : report.merged === undefined
            ? `; alias ${table!} now points at ${report.into}` +
              (report.previous === undefined ? ' (a new alias)' : ` (before: ${report.previous}, left as it is)`)
            : `; swapped in for ${table!} (${report.merged} rows merged from it), the previous one is now ${report.into}` +
              (report.notCarried
                ? `; ${report.notCarried} newer memories of other dimensions not carried over: run the reindex fill`
                : ''))
    )
    return ExitCodes.OK
  } catch (error) {
    io.err(`rebuild: ${describeError(error)}`)
    // A table that exists, a bad option value, a folder held by a runner: configuration, nothing was changed.
    return error instanceof SfmError && error.kind === ErrorKinds.FATAL && error.code === ErrorCodes.CONFIG
      ? ExitCodes.USAGE
      : ExitCodes.FAILED
  } finally {
    await access?.close()
    await db?.close().catch(() => {})
    await embedder?.close?.()
    lock?.release()
  }
}

if (import.meta.main) {
  endQuietlyWhenStdoutCloses()
  // As a command, fall back to the running local dev stack (`npm run stack -- up`) for unset variables.
  process.exitCode = await main(process.argv.slice(2), process.env, stdio, true)
}
