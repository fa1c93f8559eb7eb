/**
 * Benchmark `parity`: `npm run parity` over N memories on each side, its wall time and peak RSS.
 *
 * In a schema of its own on DATABASE_URL: a legacy `kv_store` of N memory rows (~385 bytes of jsonb, legacy shape,
 * plus `:meta` rows) and a `memories` table (the sink's columns) holding the same memories as the memory topology
 * would: the payload as JSON text went through JavaScript, so its coordinates say `5` where the legacy jsonb says
 * `5.0` — every pair is compared by value, the slow path. `--differences K` memories of each class are planted.
 * The CLI runs as its own process with the Node flags of `npm run parity` (package.json); its peak RSS is read from /proc
 * (VmHWM) while it runs. Goal: 1,000,000 rows on each side in ≤ 60 s with RSS ≤ 256 MB;
 * `ratio` = min(60 s ÷ seconds, 256 MB ÷ peak RSS): ≥ 1 meets both.
 */
import { spawn } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { once } from 'node:events'
import { readFile } from 'node:fs/promises'
import { loadavg } from 'node:os'
import pg from 'pg'
import { parseBenchArgs } from './lib/args.ts'
import { type BenchResult, progress, Requirements, round } from './lib/benchmark.ts'
import { statusBytes } from './lib/proc.ts'

const BENCH = 'parity'
const GOAL_SECONDS = 60
const GOAL_RSS_MB = 256

export const description = 'parity: legacy kv_store vs memories, N rows each side (goal 1M in ≤ 60 s, RSS ≤ 256 MB)'
export const requires = [Requirements.POSTGRES] as const

export const usage = `Usage: npm run bench -- parity [options]

Generates a legacy kv_store and a memories table of N memories each in a schema of its own on DATABASE_URL, plants
K differences of each class, and runs npm run parity (as a process of its own) over them.

Options:
  --rows N          memories on each side (default 1000000)
  --differences K   planted memories of each class: missing, extra, differing, deleted here (default 100)
  -h, --help        show this help

Last stdout line:
  {"bench":"parity","rows":…,"seconds":…,"rows_per_s":…,"peak_rss_mb":…,"goal_seconds":60,"goal_rss_mb":256,"ratio":…}
`

function withSearchPath(url: string, schema: string): string {
  const u = new URL(url)
  u.searchParams.set('options', `-c search_path=${schema}`)
  return u.toString()
}

async function peakRssMb(pid: number): Promise<number | undefined> {
  const bytes = statusBytes(pid, 'VmHWM')
  return Number.isNaN(bytes) ? undefined : bytes / (1024 * 1024)
}

export async function run(args: string[]): Promise<BenchResult> {
  const a = parseBenchArgs(BENCH, args, ['rows', 'differences'])
  const rows = a.int('rows', 1_000_000, 10, 50_000_000)
  const k = a.int('differences', 100, 0, Math.floor(rows / 10))
  const databaseUrl = process.env.DATABASE_URL!
  const schema = `bench_parity_${randomBytes(4).toString('hex')}`
  const setup = new pg.Client({ connectionString: databaseUrl })
  await setup.connect()
  try {
    progress(BENCH, `generating ${rows} legacy memories and ${rows} memories rows in ${schema}`)
    const started = performance.now()
    await setup.query(`CREATE SCHEMA "${schema}"`)
    await setup.query(`SET search_path = "${schema}"`)
    await setup.query('CREATE TABLE kv_store (key TEXT PRIMARY KEY, value JSONB NOT NULL)')
    await setup.query(
      `INSERT INTO kv_store (key, value)
       SELECT 'bench:(' || i || '.0, ' || (i % 1000) || '.0):data',
              jsonb_build_object(
                'text', 'memory number ' || i || ' about the cache, the queue and what Ada said on Tuesday',
                'task', 'bench', 'memory_type', CASE WHEN i % 3 = 0 THEN 'semantic' ELSE 'episodic' END,
                'coordinate', jsonb_build_array((i || '.0')::numeric, ((i % 1000) || '.0')::numeric),
                'timestamp', 1760000000.5 + i, 'importance_norm', (i % 97) / 97.0, 'importance', i % 10,
                'access_count', i % 13,
                'links', jsonb_build_array(jsonb_build_object('to', jsonb_build_array(1.0, 2.0), 'type', 'related')))
       FROM generate_series(1, $1::int) AS i`,
      [rows]
    )
    await setup.query(
      `INSERT INTO kv_store (key, value) SELECT left(key, -5) || ':meta', '{"creation_timestamp": 1.5}'
       FROM kv_store WHERE right(key, 5) = ':data' AND hashtext(key) % 4 = 0`
    )
    await setup.query(`CREATE TABLE memories (
      id text PRIMARY KEY, namespace text NOT NULL, type text, payload jsonb, importance double precision,
      version bigint NOT NULL, event_id uuid NOT NULL, event_ts timestamptz NOT NULL, deleted_at timestamptz,
      updated_at timestamptz NOT NULL DEFAULT now())`)
    // As the memory topology stores them: the payload went through JSON.parse/stringify (5.0 → 5), other access
    // counts and importance_norm (ignored by default).
    await setup.query(
      `INSERT INTO memories (id, namespace, type, payload, version, event_id, event_ts)
       SELECT left(key, -5), 'bench', value->>'memory_type',
              jsonb_set(value || jsonb_build_object('access_count', 0, 'importance_norm', 0.5), '{coordinate}',
                        (SELECT jsonb_agg(trunc(c::text::numeric)::int) FROM jsonb_array_elements(value->'coordinate') c)),
              0, gen_random_uuid(), now()
       FROM kv_store WHERE right(key, 5) = ':data'`
    )
    // K of each class: missing (row removed here), extra (legacy row removed), differing, deleted here.
    await setup.query(
      `WITH ids AS (SELECT id, row_number() OVER (ORDER BY id) AS n FROM memories WHERE id LIKE 'bench:(1%')
       , m AS (DELETE FROM memories WHERE id IN (SELECT id FROM ids WHERE n <= $1))
       , x AS (DELETE FROM kv_store WHERE key IN (SELECT id || ':data' FROM ids WHERE n > $1 AND n <= 2 * $1))
       , d AS (UPDATE memories SET payload = jsonb_set(payload, '{text}', '"changed"')
               WHERE id IN (SELECT id FROM ids WHERE n > 2 * $1 AND n <= 3 * $1))
       UPDATE memories SET deleted_at = now(), payload = NULL WHERE id IN (SELECT id FROM ids WHERE n > 3 * $1 AND n <= 4 * $1)`,
      [k]
    )
    await setup.query('VACUUM ANALYZE kv_store')
    await setup.query('VACUUM ANALYZE memories')
    progress(BENCH, `generated in ${round((performance.now() - started) / 1000, 1)} s`)

    const load = loadavg()[0]!
    progress(BENCH, `npm run parity over ${rows} memories each side (load average ${round(load, 2)})`)
    const url = withSearchPath(databaseUrl, schema)
    const runStarted = performance.now()
    // The command line of `npm run parity` (package.json), run with this Node.
    const pkg = JSON.parse(await readFile('package.json', 'utf8')) as { scripts: Record<string, string> }
    const [, ...script] = pkg.scripts.parity!.split(' ')
    const child = spawn(
      process.execPath,
      [...script, '--legacy-url', url, '--database-url', url, '--table', 'memories', '--json'],
      { stdio: ['ignore', 'pipe', 'inherit'], env: { ...process.env, NODE_OPTIONS: '' } }
    )
    let stdout = ''
    child.stdout.setEncoding('utf8').on('data', (c: string) => {
      stdout += c
    })
    let peak = 0
    const poll = setInterval(() => {
      void peakRssMb(child.pid!).then((mb) => {
        if (mb !== undefined) peak = Math.max(peak, mb)
      })
    }, 100)
    const [code] = await once(child, 'close')
    clearInterval(poll)
    const seconds = (performance.now() - runStarted) / 1000
    if (code !== 0 && code !== 1) throw new Error(`npm run parity exited ${code}`)
    const result = JSON.parse(stdout) as { counts: Record<string, number>; compared: { legacy: number; here: number } }
    progress(BENCH, `parity: ${JSON.stringify(result.counts)} in ${round(seconds, 1)} s, peak RSS ${round(peak)} MB`)
    for (const [name, count] of Object.entries(result.counts)) {
      if (count !== k) throw new Error(`parity found ${count} ${name}, ${k} were planted`)
    }
    return {
      bench: BENCH,
      rows,
      legacy_rows: result.compared.legacy,
      here_rows: result.compared.here,
      differences_per_class: k,
      seconds: round(seconds, 2),
      rows_per_s: Math.round(rows / seconds),
      peak_rss_mb: round(peak),
      load_average: round(load, 2),
      goal_seconds: GOAL_SECONDS,
      goal_rss_mb: GOAL_RSS_MB,
      ratio: round(Math.min(GOAL_SECONDS / seconds, peak > 0 ? GOAL_RSS_MB / peak : 0), 3)
    }
  } finally {
    await setup.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`).catch(() => {})
    await setup.end()
  }
}
