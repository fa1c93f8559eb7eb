/**
 * The date and time of day of an RFC 3339 timestamp in the form producers nearly always send
 * (`Date#toISOString`: `YYYY-MM-DDTHH:MM:SS…`), read with char codes. One reader for the two fast paths over that
 * form: the `date-time` format of validation (src/schemas/formats.ts) and the Postgres sink's conversion to exact
 * microseconds (src/event-time.ts). Each checks the rest itself (the separator at 10, the fraction,
 * the zone, the years it accepts) and hands every other form to its general path.
 */

/** The fields of the last timestamp `readDateAndTime` accepted: year, month, day, hour, minute, second. */
export const dateAndTime = new Int32Array(6)

const ZERO = 0x30
const HYPHEN = 0x2d
const COLON = 0x3a
// Days per month, index 1–12 (February 29 only in leap years).
const DAYS = [0, 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31]

/** The two digits at `at` as a number, or -1 if either is not an ASCII digit. */
function twoDigits(value: string, at: number): number {
  const a = value.charCodeAt(at) - ZERO
  const b = value.charCodeAt(at + 1) - ZERO
  return a >= 0 && a <= 9 && b >= 0 && b <= 9 ? a * 10 + b : -1
}

/** Days in `month` (1–12) of `year`, Gregorian leap years (RFC 3339 appendix C; year 0 is one too). */
export function daysInMonth(year: number, month: number): number {
  return month === 2 && year % 4 === 0 && (year % 100 !== 0 || year % 400 === 0) ? 29 : (DAYS[month] as number)
}

/**
 * Whether `value[0..19)` is `YYYY-MM-DD?HH:MM:SS` (any character at 10) with a real date (any year from 0000,
 * months 1–12, days within their month) and a time of 00:00:00–23:59:59 (no leap second); then its fields are in
 * `dateAndTime`. A shorter string is refused.
 */
export function readDateAndTime(value: string): boolean {
  if (value.length < 19) return false
  if (value.charCodeAt(4) !== HYPHEN || value.charCodeAt(7) !== HYPHEN) return false
  if (value.charCodeAt(13) !== COLON || value.charCodeAt(16) !== COLON) return false
  const century = twoDigits(value, 0)
  const yy = twoDigits(value, 2)
  const month = twoDigits(value, 5)
  const day = twoDigits(value, 8)
  const hour = twoDigits(value, 11)
  const minute = twoDigits(value, 14)
  const second = twoDigits(value, 17)
  // -1 (not digits) fails these too.
  if (century < 0 || yy < 0 || month < 1 || month > 12 || day < 1) return false
  if (hour < 0 || hour > 23 || minute < 0 || minute > 59 || second < 0 || second > 59) return false
  const year = century * 100 + yy
  if (day > daysInMonth(year, month)) return false
  dateAndTime[0] = year
  dateAndTime[1] = month
  dateAndTime[2] = day
  dateAndTime[3] = hour
  dateAndTime[4] = minute
  dateAndTime[5] = second
  return true
}
