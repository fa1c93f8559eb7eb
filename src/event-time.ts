import { dateAndTime, daysInMonth, readDateAndTime } from './date-time.ts'

/**
 * RFC 3339 timestamps as exact microseconds since the epoch. The fence compares timestamps in JavaScript (to reduce
 * a batch) and in PostgreSQL (ON CONFLICT … WHERE), so both sides must see the same value: we parse once here,
 * truncate to microseconds (timestamptz's precision) and send PostgreSQL those microseconds (binary timestamptz,
 * binary-array.ts), never the producer's string, which PostgreSQL would round instead of truncate and `Date` would
 * cut to milliseconds. The canonical UTC text is what memory.latest records carry.
 */
export interface EventTime {
  /** Microseconds since 1970-01-01T00:00:00Z. */
  readonly micros: bigint
  /** `YYYY-MM-DDTHH:MM:SS.ffffffZ`: the same instant as text (PostgreSQL would read it back to `micros`). */
  readonly text: string
}

// Same shape ajv-formats accepts for `date-time` (separator T, t or whitespace; offset Z, ±HH, ±HHMM or ±HH:MM).
const RFC3339 =
  /^(\d{4})-(\d{2})-(\d{2})[Tt\s](\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?(?:([Zz])|([+-])(\d{2})(?::?(\d{2}))?)$/

/** Parses an RFC 3339 date-time with a time zone, or returns a reason it cannot be stored. */
export function parseEventTime(value: unknown): EventTime | string {
  if (typeof value !== 'string') return 'timestamp must be a string'
  return parseUtcFast(value) ?? parseRfc3339(value)
}

const ZERO = 0x30
const NINE = 0x39

/** The digits of `value[from..to)` as a number, or -1 if one is not a digit. */
function digits(value: string, from: number, to: number): number {
  let n = 0
  for (let i = from; i < to; i++) {
    const c = value.charCodeAt(i)
    if (c < ZERO || c > NINE) return -1
    n = n * 10 + (c - ZERO)
  }
  return n
}

/** Days from 1970-01-01 to a proleptic Gregorian date (H. Hinnant's days_from_civil), exact for any year ≥ 1. */
function daysFromCivil(year: number, month: number, day: number): number {
  const y = month <= 2 ? year - 1 : year
  const era = Math.floor(y / 400)
  const yoe = y - era * 400
  const doy = Math.floor((153 * (month + (month > 2 ? -3 : 9)) + 2) / 5) + day - 1
  const doe = yoe * 365 + Math.floor(yoe / 4) - Math.floor(yoe / 100) + doy
  return era * 146097 + doe - 719468
}

/**
 * The form producers send nearly always (`Date#toISOString`: `YYYY-MM-DDTHH:MM:SS[.f…]Z`, upper-case T and Z),
 * read without the regular expression, the Date round trip and BigInt arithmetic (the date and time by
 * src/date-time.ts, which validation's `date-time` format reads them with too): those were a visible share of the
 * memory topology's CPU (docs/BENCHMARKS.md, memory-kv). Returns undefined for anything else, including
 * leap seconds and year 0, which `parseRfc3339` handles (or refuses) with its own messages; the differential
 * test in test/event-time.test.ts holds both paths to the same results.
 */
function parseUtcFast(value: string): EventTime | undefined {
  const length = value.length
  if (length < 20 || value.charCodeAt(length - 1) !== 0x5a /* Z */) return undefined
  if (value.charCodeAt(10) !== 0x54 /* T */ || !readDateAndTime(value)) return undefined
  const year = dateAndTime[0]!
  if (year < 1) return undefined
  const month = dateAndTime[1]!
  const day = dateAndTime[2]!
  const hour = dateAndTime[3]!
  const minute = dateAndTime[4]!
  const second = dateAndTime[5]!
  let fraction = 0
  let text: string
  if (length === 20) {
    text = `${value.slice(0, 19)}.000000Z`
  } else {
    // `.` and at least one digit; digits past the sixth are checked, then truncated (as the general path does).
    if (value.charCodeAt(19) !== 0x2e /* . */ || length < 22) return undefined
    const end = length - 1
    if (end > 26 && digits(value, 26, end) < 0) return undefined
    const kept = Math.min(end, 26)
    fraction = digits(value, 20, kept)
    if (fraction < 0) return undefined
    for (let i = kept; i < 26; i++) fraction *= 10
    if (end === 26) text = value
    else if (end === 23)
      text = `${value.slice(0, 23)}000Z` // Date#toISOString
    else text = `${value.slice(0, 19)}.${String(fraction).padStart(6, '0')}Z`
  }
  // Year 1..9999 in UTC is always inside fromMicros' range. Below 2^53 µs (until year 2255) one Number is exact.
  const seconds = daysFromCivil(year, month, day) * 86_400 + hour * 3_600 + minute * 60 + second
  const exact = seconds * 1_000_000 + fraction
  const micros = Number.isSafeInteger(exact) ? BigInt(exact) : BigInt(seconds) * 1_000_000n + BigInt(fraction)
  return { micros, text }
}

/** The general path: every form RFC3339 admits, offsets applied (exported for the differential test). */
export function parseRfc3339(value: string): EventTime | string {
  const m = RFC3339.exec(value)
  if (m === null) return 'timestamp is not an RFC 3339 date-time with a time zone'
  const [year, month, day, hour, minute, second] = [m[1], m[2], m[3], m[4], m[5], m[6]].map(Number) as [
    number,
    number,
    number,
    number,
    number,
    number
  ]
  const offsetSign = m[9] === '-' ? -1 : 1
  const offsetHours = Number(m[10] ?? 0)
  const offsetMinutes = Number(m[11] ?? 0)
  if (month < 1 || month > 12) return 'timestamp month out of range'
  if (day < 1 || day > daysInMonth(year, month)) return 'timestamp day out of range'
  // 60 is a leap second, as ajv-formats and PostgreSQL accept it; it rolls over to the next minute.
  if (hour > 23 || minute > 59 || second > 60) return 'timestamp time out of range'
  if (offsetHours > 23 || offsetMinutes > 59) return 'timestamp offset out of range'

  // Date.UTC maps years 0..99 to 1900..1999; setUTCFullYear does not.
  const date = new Date(0)
  date.setUTCFullYear(year, month - 1, day)
  date.setUTCHours(hour, minute, second, 0)
  const offsetMs = offsetSign * (offsetHours * 60 + offsetMinutes) * 60_000
  const ms = date.getTime() - offsetMs
  const fraction = (m[7] ?? '').slice(0, 6).padEnd(6, '0')
  const micros = BigInt(ms) * 1000n + BigInt(fraction)
  return fromMicros(micros)
}

/** PostgreSQL has no year 0 and we keep to four-digit years: 0001-01-01 .. 9999-12-31 UTC. */
const MIN_MICROS = -62135596800000000n
const MAX_MICROS = 253402300799999999n

export function fromMicros(micros: bigint): EventTime | string {
  if (micros < MIN_MICROS || micros > MAX_MICROS) return 'timestamp outside 0001-01-01..9999-12-31 UTC'
  let ms = micros / 1000n
  let rest = micros % 1000n
  if (rest < 0n) {
    rest += 1000n
    ms -= 1n
  }
  const iso = new Date(Number(ms)).toISOString()
  return { micros, text: `${iso.slice(0, 23)}${rest.toString().padStart(3, '0')}Z` }
}
