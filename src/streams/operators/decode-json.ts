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
  /**
   * A top-level member of object values whose JSON text a sink may reuse as received instead of serialising the
   * decoded member again (`Delivery.rawMemberOf`; e.g. memory events' `payload`, stored as jsonb). Recorded for
   * ASCII messages whose member name is written without escapes; otherwise the sink serialises. Stages between this
   * one and that sink must replace a value to change it, never change it in place: the sink would store the text as
   * received.
   */
  rawMember?: string
}

export const defaultDecodeJsonOptions = {
  maxBytes: 1024 * 1024,
  maxDepth: 64,
  stage: 'decode'
} satisfies Omit<Required<DecodeJsonOptions>, 'rawMember'>

const OPEN_BRACE = 0x7b
const OPEN_BRACKET = 0x5b
const OPENING_BRACKETS = ['{', '['] as const
const CLOSE_BRACE = 0x7d
const CLOSE_BRACKET = 0x5d
const QUOTE = 0x22
const BACKSLASH = 0x5c
const COMMA = 0x2c

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

const WHITESPACE = [false, false, false, false, false, false, false, false, false, true, true, false, false, true]

/** The index of the first character at or after `i` that is not JSON whitespace (space, tab, newline, return). */
function skipWhitespace(text: string, i: number): number {
  for (;;) {
    const c = text.charCodeAt(i)
    if (c === 0x20 || (c < 14 && WHITESPACE[c])) i++
    else return i
  }
}

/** Index just past the string whose opening quote is at `open` (the text is valid JSON). */
function afterString(text: string, open: number): number {
  let q = open
  for (;;) {
    q = text.indexOf('"', q + 1)
    let b = q - 1
    while (text.charCodeAt(b) === BACKSLASH) b--
    if ((q - 1 - b) % 2 === 0) return q + 1
  }
}

/** Index just past the JSON value that starts at `i` (the text is valid JSON). */
function afterValue(text: string, i: number): number {
  const c = text.charCodeAt(i)
  if (c === QUOTE) return afterString(text, i)
  if (c === OPEN_BRACE || c === OPEN_BRACKET) {
    let depth = 0
    for (;;) {
      const x = text.charCodeAt(i)
      if (x === QUOTE) {
        i = afterString(text, i)
        continue
      }
      if (x === OPEN_BRACE || x === OPEN_BRACKET) depth++
      else if ((x === CLOSE_BRACE || x === CLOSE_BRACKET) && --depth === 0) return i + 1
      i++
    }
  }
  // A number, true, false or null: up to the next comma, closing bracket or whitespace.
  for (;;) {
    const x = text.charCodeAt(i)
    if (x === COMMA || x === CLOSE_BRACE || x === CLOSE_BRACKET || x === 0x20 || (x < 14 && WHITESPACE[x]) || !(x >= 0))
      return i
    i++
  }
}

/**
 * The span `[start, end)` of the JSON text of the top-level member `name` of a JSON object text that JSON.parse has
 * accepted: the last one if the name repeats (the one JSON.parse keeps). Undefined if the text is not an object, has
 * no such member, or writes a member name with an escape (which could spell `name`).
 */
export function topLevelMemberSpan(text: string, name: string): [number, number] | undefined {
  let i = skipWhitespace(text, 0)
  if (text.charCodeAt(i) !== OPEN_BRACE) return undefined
  i = skipWhitespace(text, i + 1)
  let span: [number, number] | undefined
  while (text.charCodeAt(i) === QUOTE) {
    const keyEnd = afterString(text, i)
    // Compared in place, not sliced out: this runs for every member of every message.
    for (let c = i + 1; c < keyEnd - 1; c++) if (text.charCodeAt(c) === BACKSLASH) return undefined
    const isName = keyEnd - i - 2 === name.length && text.startsWith(name, i + 1)
    i = skipWhitespace(text, skipWhitespace(text, keyEnd) + 1)
    const end = afterValue(text, i)
    if (isName) span = [i, end]
    i = skipWhitespace(text, end)
    if (text.charCodeAt(i) !== COMMA) break
    i = skipWhitespace(text, i + 1)
  }
  return span
}

/** Decodes JSON bytes, or throws a PoisonError saying why not. */
export function decodeJsonValue(
  bytes: Uint8Array,
  options: Omit<Required<DecodeJsonOptions>, 'rawMember'> = defaultDecodeJsonOptions
) {
  return decodeJsonText(bytes, options).value
}

/** Decodes JSON bytes to the value and its text, or throws a PoisonError saying why not. */
function decodeJsonText(
  bytes: Uint8Array,
  options: Omit<Required<DecodeJsonOptions>, 'rawMember'>
): { value: unknown; text: string } {
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
    return { value: JSON.parse(text) as unknown, text }
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
  const member = options.rawMember
  const operator = filterMap<Envelope<Buffer>, Envelope<unknown>>((envelope) => {
    try {
      const bytes = envelope.value
      const { value, text } = decodeJsonText(bytes, settings)
      // ASCII only (as many characters as bytes): then a character's index is its byte's.
      if (member !== undefined && text.length === bytes.length && typeof value === 'object' && value !== null) {
        const span = topLevelMemberSpan(text, member)
        if (span) envelope.delivery.setRawMember(value, bytes.subarray(span[0], span[1]))
      }
      return envelope.withValue(value)
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
