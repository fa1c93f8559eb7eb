import type { Format, FormatDefinition } from 'ajv'
import { fullFormats } from 'ajv-formats/dist/formats.js'
import { readDateAndTime } from '../date-time.ts'
import { ErrorCodes, FatalError } from '../errors.ts'
import { isCanonicalUuid } from '../uuid.ts'

/**
 * `date-time` and `uuid` format checks that give exactly what ajv-formats' "full" formats give for every string,
 * only faster: ajv-formats' `date_time` (a split by /t|\s/i, then two regular expressions and closures) and its `uuid`
 * regular expression run for every event and showed in the memory topology's CPU profile (docs/BENCHMARKS.md,
 * memory-kv). Each check reads the shape producers nearly always send
 * (`Date#toISOString`, canonical uuids) with char codes, answers true only for a string it has fully verified,
 * and hands everything else (offsets, leap seconds, `urn:uuid:`, anything odd or invalid) to ajv-formats' own
 * function, so it can never accept what ajv-formats refuses. test/schemas/formats.test.ts compares both for many
 * generated strings.
 */

type StringCheck = (value: string) => boolean

/** ajv-formats' function (or regular expression) for a string format, as a plain predicate. */
function upstreamCheck(name: string, format: Format): StringCheck {
  if (format instanceof RegExp) return (value) => format.test(value)
  if (typeof format === 'object' && typeof format.validate === 'function' && !('async' in format && format.async)) {
    return format.validate as StringCheck
  }
  throw new FatalError(`ajv-formats' "${name}" format is neither a regular expression nor a sync check`, {
    code: ErrorCodes.INTERNAL
  })
}

const upstreamDateTime = upstreamCheck('date-time', fullFormats['date-time'])
const upstreamUuid = upstreamCheck('uuid', fullFormats.uuid)

const ZERO = 0x30
const NINE = 0x39
const DOT = 0x2e

/**
 * `YYYY-MM-DD(T|t)HH:MM:SS[.f{1,9}](Z|z)`, fully checked (the date and time by src/date-time.ts). ajv-formats reads
 * the seconds with `+"SS.f…"` and requires `< 60`; a fraction of up to 9 digits after at most 59 seconds never
 * rounds to 60 (15 nines do), so longer fractions go to the fall-back, as do leap seconds (second 60), which
 * ajv-formats checks against the offset. Year 0000 is accepted, and is a leap year, as in ajv-formats.
 */
function isCommonDateTime(value: string): boolean {
  const length = value.length
  if (length < 20 || length === 21 || length > 30) return false
  const last = value.charCodeAt(length - 1)
  if (last !== 0x5a /* Z */ && last !== 0x7a /* z */) return false
  const t = value.charCodeAt(10)
  if (t !== 0x54 && t !== 0x74 /* T or t */) return false
  if (length > 20) {
    if (value.charCodeAt(19) !== DOT) return false
    for (let i = 20; i < length - 1; i++) {
      const c = value.charCodeAt(i)
      if (c < ZERO || c > NINE) return false
    }
  }
  return readDateAndTime(value)
}

/** ajv-formats' full `date-time` (RFC 3339 with a time zone), exactly. */
export function isDateTime(value: string): boolean {
  return isCommonDateTime(value) || upstreamDateTime(value)
}

/** ajv-formats' full `uuid` (RFC 4122 text, optional `urn:uuid:`, either case), exactly. */
export function isUuid(value: string): boolean {
  return isCanonicalUuid(value) || upstreamUuid(value)
}

/**
 * Definitions for `ajv.addFormat` / ajv's `formats` option, to apply after ajv-formats' own. `date-time` keeps
 * ajv-formats' `compare`, which its formatMinimum/formatMaximum keywords use.
 */
export const fastFormatDefinitions = {
  'date-time': {
    type: 'string',
    validate: isDateTime,
    ...compareOf(fullFormats['date-time'])
  },
  uuid: { type: 'string', validate: isUuid }
} as const satisfies Record<string, FormatDefinition<string>>

function compareOf(format: Format): Pick<FormatDefinition<string>, 'compare'> {
  if (typeof format === 'object' && !(format instanceof RegExp) && typeof format.compare === 'function') {
    return { compare: format.compare as NonNullable<FormatDefinition<string>['compare']> }
  }
  return {}
}
