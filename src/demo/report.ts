import { subscribe, unsubscribe } from 'node:diagnostics_channel'
import { embedderFromEnv } from '../embedders/index.ts'
import { excerpt } from '../embedders/text.ts'
import { createLogger } from '../logger.ts'
import { parseTableName, quoteQualified } from '../postgres/identifiers.ts'
import { pgDatabase, type SqlDatabase, sharedPgliteDatabase } from '../sinks/pgvector/database.ts'
import { vectorStoreFromEnv } from '../sinks/vector/select.ts'
import type { SearchHit } from '../sinks/vector/types.ts'
import type { RunSummary, RuntimeObserver } from '../streams/runtime.ts'
import { type PostgresBatchMessage, postgresBatchChannel } from '../telemetry/channels.ts'

/** What a demo run measured, plus what the stores hold at the end. Printed as text; `--json`-free on purpose. */
export interface DemoReport {
  eventsIn: number
  consumed: number
  applied: number
  fenced: number
  duplicate: number
  rows: number
  liveRows: number
  vectors: number | undefined
  deadLetters: Record<string, number>
  seconds: number
  /** First receipt to last completion. */
  busySeconds: number
  eventsPerSecond: number
  /** Messages done this run (the latencies measured). */
  latencyCount: number
  latencyP50Ms: number
  latencyP99Ms: number
  query: string
  hits: SearchHit[]
}

export const DEMO_QUERY = 'latency after the cache was resized'

function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return 0
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!
}

/**
 * Collects a run's figures: processing latency per message and dead letters by stage (runtime observer hooks), and
 * the KV outcomes (the Postgres sink's diagnostics channel). `wrap` adds the hooks to the runner's own observer.
 */
export class DemoCollector {
  readonly #latencies: number[] = []
  readonly #deadLetters: Record<string, number> = {}
  readonly #outcomes = { applied: 0, fenced: 0, duplicate: 0 }
  readonly #started = performance.now()
  /** Processing window: receipt of the first message to completion of the last (the idle wait excluded). */
  #first = Number.POSITIVE_INFINITY
  #last = 0
  readonly #onBatch = (message: unknown): void => {
    const m = message as PostgresBatchMessage
    this.#outcomes.applied += m.applied
    this.#outcomes.fenced += m.fenced
    this.#outcomes.duplicate += m.duplicate
  }

  constructor() {
    subscribe(postgresBatchChannel.name, this.#onBatch)
  }

  wrap<O extends RuntimeObserver>(base: O): O {
    return {
      ...base,
      processed: (delivery, seconds) => {
        base.processed?.(delivery, seconds)
        const now = performance.now()
        this.#latencies.push(seconds * 1000)
        this.#first = Math.min(this.#first, now - seconds * 1000)
        this.#last = now
      },
      deadLettered: (stage, error) => {
        base.deadLettered?.(stage, error)
        this.#deadLetters[stage] = (this.#deadLetters[stage] ?? 0) + 1
      }
    }
  }

  /** Reads the stores (memories rows, vector count, one recall query) and assembles the report. */
  async report(summary: RunSummary, eventsIn: number, env: NodeJS.ProcessEnv = process.env): Promise<DemoReport> {
    unsubscribe(postgresBatchChannel.name, this.#onBatch)
    const busy = this.#last > this.#first ? (this.#last - this.#first) / 1000 : 0
    const seconds = (performance.now() - this.#started) / 1000
    const sorted = [...this.#latencies].sort((a, b) => a - b)
    const { rows, liveRows } = await countRows(env)
    const { vectors, hits } = await recallSample(env)
    return {
      eventsIn,
      consumed: summary.consumed,
      ...this.#outcomes,
      rows,
      liveRows,
      vectors,
      deadLetters: { ...this.#deadLetters },
      seconds,
      eventsPerSecond: busy > 0 ? Math.round(this.#latencies.length / busy) : 0,
      busySeconds: busy,
      latencyCount: sorted.length,
      latencyP50Ms: percentile(sorted, 50),
      latencyP99Ms: percentile(sorted, 99),
      query: DEMO_QUERY,
      hits
    }
  }
}

async function countRows(env: NodeJS.ProcessEnv): Promise<{ rows: number; liveRows: number }> {
  const db: SqlDatabase = env.DATABASE_URL
    ? pgDatabase({ connectionString: env.DATABASE_URL, poolSize: 1 })
    : await sharedPgliteDatabase(env.SFM_DATA_DIR || undefined)
  try {
    const table = quoteQualified(parseTableName(env.SFM_MEMORY_TABLE ?? 'memories'))
    const [row] = await db.query<{ rows: number; live: number }>(
      `SELECT count(*)::int AS rows, (count(*) FILTER (WHERE deleted_at IS NULL))::int AS live FROM ${table}`
    )
    return { rows: row?.rows ?? 0, liveRows: row?.live ?? 0 }
  } finally {
    await db.close()
  }
}

async function recallSample(env: NodeJS.ProcessEnv): Promise<{ vectors: number | undefined; hits: SearchHit[] }> {
  if ((env.SFM_VECTORS ?? 'on') === 'off') return { vectors: undefined, hits: [] }
  const embedder = embedderFromEnv(env)
  const store = await vectorStoreFromEnv(env, createLogger('demo', 'warn'))
  try {
    await store.open(embedder.dimensions)
    const [vector] = await embedder.embed([DEMO_QUERY])
    const hits = await store.search(vector!, { k: 3 })
    return { vectors: await store.count(), hits }
  } finally {
    await Promise.allSettled([store.close(), embedder.close?.()])
  }
}

export function formatReport(r: DemoReport): string {
  const dlq = Object.entries(r.deadLetters)
  const dlqTotal = dlq.reduce((sum, [, n]) => sum + n, 0)
  const lines = [
    '── demo report ──',
    `events in          ${r.eventsIn} fed, ${r.consumed} consumed this run`,
    `kv outcomes        applied ${r.applied}, fenced ${r.fenced}, duplicate ${r.duplicate}`,
    `rows in memories   ${r.rows} (${r.liveRows} live, ${r.rows - r.liveRows} deleted)`,
    `vectors indexed    ${r.vectors ?? 'n/a (SFM_VECTORS=off)'}`,
    `dead letters       ${dlqTotal}${dlq.length ? ` (${dlq.map(([stage, n]) => `${stage}: ${n}`).join(', ')})` : ''}`,
    `throughput         ${r.eventsPerSecond} events/s (${r.latencyCount} in ${r.busySeconds.toFixed(2)} s; run ${r.seconds.toFixed(1)} s with the idle wait)`,
    // Every event is fed before the runner starts, so receipt-to-done is mostly the wait behind the rest of the
    // burst (it grows with N); it is named for what it is. Steady-state latency needs a paced load: the memory-kv
    // bench's latency phase measures it.
    `burst wait         p50 ${r.latencyP50Ms.toFixed(1)} ms, p99 ${r.latencyP99Ms.toFixed(1)} ms from receipt to done, all ${r.latencyCount} queued at once (not steady-state latency: npm run bench -- memory-kv)`,
    ...(r.vectors === undefined ? ['recall             n/a (SFM_VECTORS=off)'] : [`recall "${r.query}":`]),
    ...(r.vectors === undefined
      ? []
      : r.hits.length === 0
        ? ['  no memories found']
        : r.hits.map((h) => `  ${h.score.toFixed(3)}  ${h.id}  ${excerpt(h.excerpt ?? '', 80)}`))
  ]
  return `${lines.join('\n')}\n`
}
