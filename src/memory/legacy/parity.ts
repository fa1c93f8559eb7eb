/**
 * Parity: every memory of the legacy `kv_store` against the `memories` row of the same id.
 *
 * Both sides are read in id order (byte order, `COLLATE "C"`) through a server-side cursor in a read-only snapshot,
 * 1,000 rows a fetch, and merged like two sorted files: constant memory whatever their size (only the ids
 * of differences are kept, for `--out`). Classes: `missing` (legacy memory, no row here), `extra` (live here, no
 * legacy memory), `differing` (both live, payloads differ once the ignored top-level fields are removed: numbers
 * compare as numbers, so the legacy `1.0` equals `1`), `deleted_here` (a tombstone here, live in the legacy store).
 */
import type pg from 'pg'
import { LEGACY_DATA_SUFFIX } from './memory-id.ts'
import {
  PARITY_CLASSES,
  PARITY_REPORT_KIND,
  PARITY_REPORT_VERSION,
  type ParityClass,
  ParityClasses,
  type ParityReport
} from './parity-report.ts'
import { LEGACY_TABLE, namespaceOfMemoryId } from './store.ts'

export const DEFAULT_IGNORED_FIELDS: readonly string[] = ['importance_norm', 'access_count']

export interface ParityOptions {
  legacy: pg.Client
  here: pg.Client
  /** The quoted, possibly schema-qualified `memories` table. */
  table: string
  namespace?: string
  /** Top-level payload fields left out of the comparison. Default `importance_norm`, `access_count`. */
  ignoreFields?: readonly string[]
  /** A field-level diff for the first N differing memories. Default 10. */
  sample?: number
  /** Rows per fetch on each side. Default 1,000. */
  fetchSize?: number
  /** Also check the vector index: every live memory has its vector, no deleted one has a live vector. */
  vectors?: VectorPoints
}

/** What the vector check needs of a vector store (src/sinks/vector/types.ts, `VectorStore#points`). */
export interface VectorPoints {
  points(ids: readonly string[]): Promise<ReadonlyMap<string, { readonly deleted: boolean }>>
}

export interface VectorParity {
  /** Memories rows whose vector was looked up. */
  readonly checked: number
  readonly counts: { readonly missing: number; readonly orphaned: number }
  /** `missing`: live here, no live vector; `orphaned`: deleted here, a live vector left. */
  readonly ids: { readonly missing: readonly string[]; readonly orphaned: readonly string[] }
}

export interface FieldDiff {
  readonly field: string
  /** JSON text of each side's value, cut at 200 characters; absent when the side has no such field. */
  readonly legacy?: string
  readonly here?: string
}

export interface ParityResult extends ParityReport {
  readonly equal: number
  readonly seconds: number
  readonly ignored_fields: readonly string[]
  readonly samples: readonly { id: string; fields: readonly FieldDiff[] }[]
  /** With `vectors`: the vector index against the memories table. */
  readonly vectors?: VectorParity
}

/** Code point order (what PostgreSQL's "C" collation gives for UTF-8), not JavaScript's UTF-16 unit order. */
export function compareIds(a: string, b: string): number {
  if (a === b) return 0
  const n = Math.min(a.length, b.length)
  for (let i = 0; i < n; i++) {
    const x = a.charCodeAt(i)
    const y = b.charCodeAt(i)
    if (x === y) continue
    const xs = x >= 0xd800 && x < 0xe000
    const ys = y >= 0xd800 && y < 0xe000
    if (xs !== ys) return xs ? 1 : -1
    return x - y
  }
  return a.length - b.length
}

/** Deep equality of parsed JSON (numbers by value, object keys in any order). */
export function jsonEqual(a: unknown, b: unknown): boolean {
  if (a === b) return true
  if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null) return false
  if (Array.isArray(a)) {
    if (!Array.isArray(b) || a.length !== b.length) return false
    for (let i = 0; i < a.length; i++) if (!jsonEqual(a[i], b[i])) return false
    return true
  }
  if (Array.isArray(b)) return false
  const ka = Object.keys(a)
  if (ka.length !== Object.keys(b).length) return false
  for (const k of ka) {
    if (!Object.hasOwn(b, k) || !jsonEqual((a as Record<string, unknown>)[k], (b as Record<string, unknown>)[k])) {
      return false
    }
  }
  return true
}

const QUOTE = 0x22
const BACKSLASH = 0x5c
const isNumberStart = (c: number): boolean => c === 0x2d || (c >= 0x30 && c <= 0x39)
const isNumberPart = (c: number): boolean =>
  (c >= 0x30 && c <= 0x39) || c === 0x2e || c === 0x65 || c === 0x45 || c === 0x2b || c === 0x2d

/**
 * Whether two jsonb texts (PostgreSQL's `jsonb::text`) hold the same JSON, without parsing them. jsonb prints keys
 * in one canonical order with canonical spacing and escapes, so equal values print equal text except for numbers,
 * whose numeric keeps its scale (`5.0` on the legacy side, `5` once the value went through JavaScript): the texts
 * are walked side by side, and two number tokens that differ as text are compared as numbers. Nothing is allocated
 * unless two numbers are written differently.
 */
export function sameJsonbText(a: string, b: string): boolean {
  if (a === b) return true
  const n = a.length
  const m = b.length
  let i = 0
  let j = 0
  let inString = false
  while (i < n && j < m) {
    const x = a.charCodeAt(i)
    const y = b.charCodeAt(j)
    if (inString) {
      if (x !== y) return false
      if (x === BACKSLASH) {
        if (a.charCodeAt(i + 1) !== b.charCodeAt(j + 1)) return false
        i += 2
        j += 2
        continue
      }
      if (x === QUOTE) inString = false
      i++
      j++
      continue
    }
    if (isNumberStart(x) && isNumberStart(y)) {
      let ei = i + 1
      while (ei < n && isNumberPart(a.charCodeAt(ei))) ei++
      let ej = j + 1
      while (ej < m && isNumberPart(b.charCodeAt(ej))) ej++
      let same = ei - i === ej - j
      for (let k = 0; same && k < ei - i; k++) same = a.charCodeAt(i + k) === b.charCodeAt(j + k)
      if (!same && Number(a.slice(i, ei)) !== Number(b.slice(j, ej))) return false
      i = ei
      j = ej
      continue
    }
    if (x !== y) return false
    if (x === QUOTE) inString = true
    i++
    j++
  }
  return i === n && j === m
}

/** Equal payloads given as jsonb text (null: no payload, a tombstone). */
function samePayload(a: string | null, b: string | null): boolean {
  if (a === null || b === null) return a === b
  return sameJsonbText(a, b)
}

const cut = (value: unknown): string => {
  const text = JSON.stringify(value)
  return text.length > 200 ? `${text.slice(0, 199)}…` : text
}

/** The top-level fields whose values differ. */
export function fieldDiff(legacy: string | null, here: string | null): FieldDiff[] {
  const a = legacy === null ? null : (JSON.parse(legacy) as unknown)
  const b = here === null ? null : (JSON.parse(here) as unknown)
  const isObject = (v: unknown): v is Record<string, unknown> =>
    typeof v === 'object' && v !== null && !Array.isArray(v)
  if (!isObject(a) || !isObject(b)) return [{ field: '(payload)', legacy: cut(a), here: cut(b) }]
  const out: FieldDiff[] = []
  for (const field of [...new Set([...Object.keys(a), ...Object.keys(b)])].sort()) {
    if (Object.hasOwn(a, field) && Object.hasOwn(b, field) && jsonEqual(a[field], b[field])) continue
    out.push({
      field,
      ...(Object.hasOwn(a, field) ? { legacy: cut(a[field]) } : {}),
      ...(Object.hasOwn(b, field) ? { here: cut(b[field]) } : {})
    })
  }
  return out
}

/**
 * Rows of `sql` in batches through a NO SCROLL cursor in a REPEATABLE READ, READ ONLY transaction (one consistent
 * snapshot, constant memory); the next fetch is asked for while the caller works on this batch.
 */
async function* cursor(client: pg.Client, name: string, sql: string, fetchSize: number): AsyncGenerator<unknown[][]> {
  await client.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY')
  try {
    await client.query(`DECLARE ${name} NO SCROLL CURSOR FOR ${sql}`)
    const fetch = () => {
      const next = client.query<unknown[]>({ text: `FETCH ${fetchSize} FROM ${name}`, rowMode: 'array' })
      next.catch(() => {})
      return next
    }
    let pending: ReturnType<typeof fetch> | undefined = fetch()
    while (pending !== undefined) {
      const { rows }: pg.QueryResult<unknown[]> = await pending
      pending = rows.length === fetchSize ? fetch() : undefined
      if (rows.length > 0) yield rows
    }
  } finally {
    await client.query('ROLLBACK').catch(() => {})
  }
}

/** One side as single rows, in order. */
class Side {
  readonly #batches: AsyncGenerator<unknown[][]>
  #batch: unknown[][] = []
  #at = 0
  #done = false

  constructor(batches: AsyncGenerator<unknown[][]>) {
    this.#batches = batches
  }

  async next(): Promise<unknown[] | undefined> {
    while (this.#at >= this.#batch.length) {
      if (this.#done) return undefined
      const { value, done } = await this.#batches.next()
      if (done) {
        this.#done = true
        return undefined
      }
      this.#batch = value
      this.#at = 0
    }
    return this.#batch[this.#at++]
  }

  async close(): Promise<void> {
    await this.#batches.return(undefined)
  }
}

function withoutFields(column: string, fields: readonly string[], literal: (s: string) => string): string {
  if (fields.length === 0) return `${column}::text`
  const list = `ARRAY[${fields.map(literal).join(', ')}]::text[]`
  return `(CASE WHEN jsonb_typeof(${column}) = 'object' THEN ${column} - ${list} ELSE ${column} END)::text`
}

/** Compares the two stores. */
export async function compareParity(options: ParityOptions): Promise<ParityResult> {
  const started = performance.now()
  const { legacy, here, namespace } = options
  const ignored = options.ignoreFields ?? DEFAULT_IGNORED_FIELDS
  const sampleLimit = options.sample ?? 10
  const fetchSize = options.fetchSize ?? 1_000
  const lit = (s: string) => legacy.escapeLiteral(s)
  const hereLit = (s: string) => here.escapeLiteral(s)
  const legacySql = `SELECT left(key, -${LEGACY_DATA_SUFFIX.length}), ${withoutFields('value', ignored, lit)}
    FROM ${LEGACY_TABLE} WHERE right(key, ${LEGACY_DATA_SUFFIX.length}) = ${lit(LEGACY_DATA_SUFFIX)}
    ${namespace === undefined ? '' : `AND starts_with(key, ${lit(`${namespace}:`)})`}
    ORDER BY key COLLATE "C"`
  const hereSql = `SELECT id, ${withoutFields('payload', ignored, hereLit)}, deleted_at IS NOT NULL
    FROM ${options.table} ${namespace === undefined ? '' : `WHERE namespace = ${hereLit(namespace)}`}
    ORDER BY id COLLATE "C"`
  const left = new Side(cursor(legacy, 'sfm_parity_legacy', legacySql, fetchSize))
  const right = new Side(cursor(here, 'sfm_parity_here', hereSql, fetchSize))
  const ids: Record<ParityClass, string[]> = { missing: [], extra: [], differing: [], deleted_here: [] }
  const samples: { id: string; fields: FieldDiff[] }[] = []
  let legacyCount = 0
  let hereCount = 0
  let equal = 0
  let previous = ''
  const vectorIds = { missing: [] as string[], orphaned: [] as string[] }
  let vectorsChecked = 0
  let pendingVectors: { id: string; deleted: boolean }[] = []
  const checkVectors = async () => {
    if (options.vectors === undefined || pendingVectors.length === 0) return
    const batch = pendingVectors
    pendingVectors = []
    const points = await options.vectors.points(batch.map((row) => row.id))
    for (const { id, deleted } of batch) {
      const live = points.get(id)?.deleted === false
      if (!deleted && !live) vectorIds.missing.push(id)
      else if (deleted && live) vectorIds.orphaned.push(id)
    }
    vectorsChecked += batch.length
  }
  const seenHere = async (row: unknown[]) => {
    if (options.vectors === undefined) return
    pendingVectors.push({ id: row[0] as string, deleted: row[2] === true })
    if (pendingVectors.length >= 1_000) await checkVectors()
  }
  try {
    // A legacy key of another namespace that shares the prefix (`ns:x:(…)` under `ns`) is not one of ours.
    const nextLegacy = async (): Promise<unknown[] | undefined> => {
      for (;;) {
        const row = await left.next()
        if (row === undefined) return undefined
        const id = row[0] as string
        if (namespace !== undefined && namespaceOfMemoryId(id) !== namespace) continue
        if (compareIds(previous, id) >= 0 && legacyCount > 0) {
          throw new Error(
            `legacy ids out of order at ${JSON.stringify(id)}: the comparison needs keys ending in ":data"`
          )
        }
        previous = id
        legacyCount++
        return row
      }
    }
    let a = await nextLegacy()
    let b = await right.next()
    while (a !== undefined || b !== undefined) {
      const order = a === undefined ? 1 : b === undefined ? -1 : compareIds(a[0] as string, b[0] as string)
      if (order < 0) {
        ids.missing.push(a![0] as string)
        a = await nextLegacy()
        continue
      }
      if (b !== undefined) {
        hereCount++
        await seenHere(b)
      }
      if (order > 0) {
        if (b![2] !== true) ids.extra.push(b![0] as string)
        b = await right.next()
        continue
      }
      const id = a![0] as string
      if (b![2] === true) ids.deleted_here.push(id)
      else if (samePayload(a![1] as string | null, b![1] as string | null)) equal++
      else {
        ids.differing.push(id)
        if (samples.length < sampleLimit) samples.push({ id, fields: fieldDiff(a![1] as string, b![1] as string) })
      }
      a = await nextLegacy()
      b = await right.next()
    }
    await checkVectors()
  } finally {
    await left.close()
    await right.close()
  }
  const counts = Object.fromEntries(PARITY_CLASSES.map((name) => [name, ids[name].length])) as Record<
    ParityClass,
    number
  >
  return {
    kind: PARITY_REPORT_KIND,
    version: PARITY_REPORT_VERSION,
    finished_at: new Date().toISOString(),
    namespace: namespace ?? null,
    compared: { legacy: legacyCount, here: hereCount },
    counts,
    equal,
    seconds: (performance.now() - started) / 1000,
    ignored_fields: ignored,
    samples,
    ids,
    ...(options.vectors === undefined
      ? {}
      : {
          vectors: {
            checked: vectorsChecked,
            counts: { missing: vectorIds.missing.length, orphaned: vectorIds.orphaned.length },
            ids: vectorIds
          }
        })
  }
}

/** Differences in all classes, the vector check's included. */
export function totalDifferences(result: Pick<ParityResult, 'counts' | 'vectors'>): number {
  const vectors = result.vectors === undefined ? 0 : result.vectors.counts.missing + result.vectors.counts.orphaned
  return PARITY_CLASSES.reduce((sum, name) => sum + result.counts[name], vectors)
}

export { ParityClasses }
