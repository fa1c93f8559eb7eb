#!/usr/bin/env node
import { resolve } from 'node:path'

import { parseArgs } from 'node:util'
import { embedderFromEnv } from '../embedders/index.ts'
import { excerpt } from '../embedders/text.ts'
import { ErrorCodes, errorMessage, kindOf, SfmError } from '../errors.ts'
import { createLogger } from '../logger.ts'
import { LockRoles } from '../pglite/folder-lock.ts'
import { vectorStoreFromEnv } from '../sinks/vector/select.ts'
import type { SearchHit } from '../sinks/vector/types.ts'
import { endQuietlyWhenStdoutCloses } from './io.ts'

const USAGE = `Usage: npm run recall -- "query text" [--namespace N] [--type T] [-k 5] [--json]

Embeds the query with the configured embedder and prints the nearest memories of the configured vector store:
score, id, namespace/type and an excerpt of the text.

Options:
  -n, --namespace N   only memories of namespace N
  -t, --type T        only memories of type T
  -k, --k K           number of results (default 5, at most 1000)
  --json              one JSON object per line instead of a table
  --data-dir DIR      embedded data folder when no vector store is configured (same as SFM_DATA_DIR)
  -h, --help          show this help

Environment: the vector store is QDRANT_URL (Qdrant), else VECTOR_DATABASE_URL (pgvector), else the embedded PGlite
under SFM_DATA_DIR (default ./.sfm-data)/vectors. That folder has one owner process: while a topology runs (or
starts) on it, recall refuses (exit 2) and names the topology's pid; a topology started during a recall waits for
it. The embedder is
SFM_EMBEDDER / SFM_EMBEDDING_URL, as for the memory topology: it must be the one the index was built with.
`

export interface RecallArguments {
  query: string
  k: number
  namespace?: string
  type?: string
  json: boolean
  /** Embedded data folder (SFM_DATA_DIR). */
  dataDir?: string
}

export function parseRecallArguments(argv: readonly string[]): RecallArguments | 'help' {
  const { values, positionals } = parseArgs({
    args: [...argv],
    allowPositionals: true,
    options: {
      namespace: { type: 'string', short: 'n' },
      type: { type: 'string', short: 't' },
      k: { type: 'string', short: 'k', default: '5' },
      json: { type: 'boolean', default: false },
      'data-dir': { type: 'string' },
      help: { type: 'boolean', short: 'h', default: false }
    }
  })
  if (values.help) return 'help'
  const query = positionals.join(' ').trim()
  if (query.length === 0) throw new Error('a query text is required')
  const k = Number(values.k)
  if (!Number.isInteger(k) || k < 1 || k > 1000) throw new Error(`-k must be an integer in 1..1000, got ${values.k}`)
  return {
    query,
    k,
    json: values.json ?? false,
    ...(values['data-dir'] === undefined ? {} : { dataDir: values['data-dir'] }),
    ...(values.namespace === undefined ? {} : { namespace: values.namespace }),
    ...(values.type === undefined ? {} : { type: values.type })
  }
}

export function formatHits(hits: readonly SearchHit[]): string {
  if (hits.length === 0) return 'no memories found\n'
  const idWidth = Math.min(40, Math.max(2, ...hits.map((h) => h.id.length)))
  const lines = hits.map((h) => {
    const where = `${h.namespace}/${h.type ?? '-'}`
    return `${h.score.toFixed(4)}  ${h.id.padEnd(idWidth)}  ${where}  ${excerpt(h.excerpt ?? '', 100)}`
  })
  return `${'score'.padEnd(6)}  ${'id'.padEnd(idWidth)}  namespace/type  excerpt\n${lines.join('\n')}\n`
}

async function main(): Promise<number> {
  let args: RecallArguments | 'help'
  try {
    args = parseRecallArguments(process.argv.slice(2))
  } catch (error) {
    process.stderr.write(`error: ${errorMessage(error)}\n\n${USAGE}`)
    return 2
  }
  if (args === 'help') {
    process.stdout.write(USAGE)
    return 0
  }
  if (args.dataDir !== undefined) process.env.SFM_DATA_DIR = resolve(args.dataDir)
  const log = createLogger('recall', (process.env.LOG_LEVEL as 'info') || 'warn')
  const embedder = embedderFromEnv()
  // A reader: it refuses at once (exit 2, naming the process) when a topology owns the embedded folder, and never
  // holds it against a topology starting meanwhile, which waits for it (src/pglite/folder-lock.ts).
  const store = await vectorStoreFromEnv(process.env, log, { lock: LockRoles.READER })
  try {
    await store.open(embedder.dimensions)
    const [vector] = await embedder.embed([args.query])
    const hits = await store.search(vector!, {
      k: args.k,
      ...(args.namespace === undefined ? {} : { namespace: args.namespace }),
      ...(args.type === undefined ? {} : { type: args.type })
    })
    if (args.json) for (const h of hits) process.stdout.write(`${JSON.stringify(h)}\n`)
    else process.stdout.write(formatHits(hits))
    return 0
  } finally {
    await Promise.allSettled([store.close(), embedder.close?.()])
  }
}

if (import.meta.main) {
  endQuietlyWhenStdoutCloses()
  main().then(
    (code) => {
      process.exitCode = code
    },
    (error: unknown) => {
      process.stderr.write(`error (${kindOf(error)}): ${errorMessage(error)}\n`)
      // A configuration problem (e.g. the PGlite folder is owned by a running topology) is exit 2, like npm start.
      process.exitCode = error instanceof SfmError && error.code === ErrorCodes.CONFIG ? 2 : 1
    }
  )
}
