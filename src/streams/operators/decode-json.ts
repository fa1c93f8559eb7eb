import type { OperatorFunction } from 'rxjs'
import { ErrorCodes, PoisonError } from '../../errors.ts'
import { describeOperator } from '../describe.ts'
import type { Envelope } from '../envelope.ts'
import { filterMap } from './filter-map.ts'

export interface DecodeJsonOptions {
  /** Largest value accepted, in bytes. Checked before decoding. */
  maxBytes?: number
  /** Deepest nesting of arrays/objects accepted. Checked by a linear scan before JSON.parse. */
  maxDepth?: number
  /** Stage name in dead letters. */
  stage?: string
}

export const defaultDecodeJsonOptions = {
  maxBytes: 1024 * 1024,
  maxDepth: 64,
  stage: 'decode'
} satisfies Required<DecodeJsonOptions>

const OPEN_BRACE = 0x7b
const OPEN_BRACKET = 0x5b
const OPENING_BRACKETS = ['{', '['] as const
const CLOSE_BRACE = 0x7d
const CLOSE_BRACKET = 0x5d
const QUOTE = 0x22
const BACKSLASH = 0x5c

/**
 * Nesting depth of a JSON text, counted over its bytes without building anything, so that a hostile value (say
 * 100k nested arrays) is refused before JSON.parse recurses through it. Brackets inside strings do not count.
 * Returns as soon as `limit` is exceeded.
 *
 * Strings are skipped with `indexOf` (native, memchr for a Buffer) instead of byte by byte: most of a memory event
 * is string content, and a byte loop over it cost more than JSON.parse itself (docs/BENCHMARKS.md, `runtime`).
 */
export function jsonDepthExceeds(bytes: Uint8Array, limit: number): boolean {
  let depth = 0
  const length = bytes.length
  for (let i = 0; i < length; i++) {
    const c = bytes[i]
    if (c === QUOTE) {
      const end = closingQuote(bytes, i)
      if (end < 0) return false
      i = end
    } else if (c === OPEN_BRACE || c === OPEN_BRACKET) {
      if (++depth > limit) return true
    } else if (c === CLOSE_BRACE || c === CLOSE_BRACKET) depth--
  }
  return false
}

/**
 * True when `text` holds more than `limit` opening brackets (`{` or `[`), counted anywhere, strings included: the
 * nesting depth cannot exceed the number of brackets opened, so below it the depth scan is skipped. A memory event
 * holds a handful of brackets, and counting them is two native searches per bracket where the scan visits every
 * string. It counts in the decoded string, not the bytes: String#indexOf is a V8 builtin, Buffer#indexOf a call
 * into Node's bindings, dearer per call (docs/BENCHMARKS.md, memory-kv).
 */
export function openingBracketsExceed(text: string, limit: number): boolean {
  let count = 0
  for (const bracket of OPENING_BRACKETS) {
    for (let i = text.indexOf(bracket); i >= 0; i = text.indexOf(bracket, i + 1)) {
      if (++count > limit) return true
    }
  }
  return false
}

/**
 * Index of the quote that closes the string opened at `open`, or -1 when the text ends first. A quote is escaped
 * when an odd number of backslashes precede it (`\\"` closes, `\"` does not), the same as reading escapes left to
 * right. No byte of a multi-byte UTF-8 character equals a quote or a backslash, so bytes are safe to search.
 */
function closingQuote(bytes: Uint8Array, open: number): number {
  let q = open
  for (;;) {
    q = bytes.indexOf(QUOTE, q + 1)
    if (q < 0) return -1
    let b = q - 1
    while (bytes[b] === BACKSLASH) b--
    if ((q - 1 - b) % 2 === 0) return q
  }
}

const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: false })

/** Decodes JSON bytes, or throws a PoisonError saying why not. */
export function decodeJsonValue(bytes: Uint8Array, options: Required<DecodeJsonOptions> = defaultDecodeJsonOptions) {
  if (bytes.length > options.maxBytes) {
    throw new PoisonError(`value is ${bytes.length} bytes, larger than the ${options.maxBytes} bytes allowed`, {
      code: ErrorCodes.DECODE
    })
  }
  let text: string
  try {
    text = utf8.decode(bytes)
  } catch {
    throw new PoisonError('value is not valid UTF-8', { code: ErrorCodes.DECODE })
  }
  // Before JSON.parse: decoding UTF-8 is one flat pass, parsing follows the nesting.
  if (openingBracketsExceed(text, options.maxDepth) && jsonDepthExceeds(bytes, options.maxDepth)) {
    throw new PoisonError(`value nests deeper than the ${options.maxDepth} levels allowed`, { code: ErrorCodes.DECODE })
  }
  try {
    return JSON.parse(text) as unknown
  } catch (error) {
    throw new PoisonError(`value is not JSON: ${(error as Error).message}`, { code: ErrorCodes.DECODE })
  }
}

/**
 * Bytes → JSON value. Undecodable, oversized or too-deep values are dead-lettered with the reason; a missing value
 * (a Kafka tombstone) is dead-lettered too, since a JSON topology has nothing to do with it.
 */
export function decodeJson(options: DecodeJsonOptions = {}): OperatorFunction<Envelope<Buffer>, Envelope<unknown>> {
  const settings = { ...defaultDecodeJsonOptions, ...options }
  if (!Number.isInteger(settings.maxBytes) || settings.maxBytes < 1) throw new RangeError('maxBytes must be > 0')
  if (!Number.isInteger(settings.maxDepth) || settings.maxDepth < 1) throw new RangeError('maxDepth must be > 0')
  const operator = filterMap<Envelope<Buffer>, Envelope<unknown>>((envelope) => {
    try {
      return envelope.withValue(decodeJsonValue(envelope.value, settings))
    } catch (error) {
      envelope.reject(error, settings.stage)
      return undefined
    }
  })
  return describeOperator(operator, {
    name: 'decodeJson',
    stage: settings.stage,
    deadLetters: true,
    detail: `≤ ${settings.maxBytes} bytes, depth ≤ ${settings.maxDepth}`
  })
}
