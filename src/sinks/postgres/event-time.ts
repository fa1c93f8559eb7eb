/**
 * RFC 3339 timestamps as exact microseconds since the epoch. The fence compares timestamps in JavaScript (to reduce
 * a batch) and in PostgreSQL (ON CONFLICT … WHERE), so both sides must see the same value: we parse once here,
 * truncate to microseconds (timestamptz's precision) and send PostgreSQL a canonical UTC text, never the producer's
 * string, which PostgreSQL would round instead of truncate and `Date` would cut to milliseconds.
 */
export interface EventTime {
  /** Microseconds since 1970-01-01T00:00:00Z. */
  readonly micros: bigint
  /** `YYYY-MM-DDTHH:MM:SS.ffffffZ`, what PostgreSQL receives. */
  readonly text: string
}

// Same shape ajv-formats accepts for `date-time` (separator T, t or whitespace; offset Z, ±HH, ±HHMM or ±HH:MM).
const RFC3339 =
  /^(\d{4})-(\d{2})-(\d{2})[Tt\s](\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?(?:([Zz])|([+-])(\d{2})(?::?(\d{2}))?)$/
const DAYS = [31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31]

function isLeapYear(year: number): boolean {
  return year % 4 === 0 && (year % 100 !== 0 || year % 400 === 0)
}

/** Parses an RFC 3339 date-time with a time zone, or returns a reason it cannot be stored. */
export function parseEventTime(value: unknown): EventTime | string {
  if (typeof value !== 'string') return 'timestamp must be a string'
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
  const daysInMonth = month === 2 && isLeapYear(year) ? 29 : DAYS[month - 1]!
  if (day < 1 || day > daysInMonth) return 'timestamp day out of range'
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
