import fc from 'fast-check'

/** The canonical lowercase uuid whose 128 bits are the four 32-bit words (big-endian, as the string reads). */
export function uuidOf(words: readonly number[]): string {
  const hex = words.map((word) => (word >>> 0).toString(16).padStart(8, '0')).join('')
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`
}

/** A 32-bit word, often one of a few values so that generated uuids share words (only one word tells them apart). */
export const wordArb = fc.oneof(
  fc.constantFrom(0, 1, 0x7fffffff, -0x80000000, -1, 0x0190f5c2),
  fc.integer({ min: -0x80000000, max: 0x7fffffff })
)

export const wordsArb = fc.tuple(wordArb, wordArb, wordArb, wordArb)

/** Characters whose low 7 bits are a hex digit or a hyphen: a parser that masks char codes must still refuse them. */
const LOOKALIKES = ['\u0161', '\u0130', '\u00e1', '\u0aad', 'A', 'F', 'g', 'G', ' ', '-', 'x', '\u0000']

/** Strings that are almost a canonical lowercase uuid, and must be kept as strings, distinct from it. */
export function nearUuidArb(uuid: string): fc.Arbitrary<string> {
  const at = fc.integer({ min: 0, max: 35 })
  return fc.oneof(
    fc.constant(uuid.toUpperCase()),
    at.map((i) => uuid.slice(0, i) + uuid[i]!.toUpperCase() + uuid.slice(i + 1)),
    fc.tuple(at, fc.constantFrom(...LOOKALIKES)).map(([i, c]) => uuid.slice(0, i) + c + uuid.slice(i + 1)),
    // A hyphen moved by one place: still 36 characters with four hyphens, in the wrong places.
    fc.constantFrom(8, 13, 18, 23).map((h) => `${uuid.slice(0, h)}${uuid[h + 1]}-${uuid.slice(h + 2)}`),
    fc.constant(uuid.slice(0, 35)),
    fc.constant(uuid.slice(1)),
    fc.constant(`${uuid}0`),
    fc.constant(`0${uuid}`),
    fc.constant(uuid.replaceAll('-', '')),
    fc.constant(`{${uuid.slice(1, 35)}}`)
  )
}

/** Strings of uuid length and alphabet, mostly not uuids, and plain strings. */
export const otherKeyArb: fc.Arbitrary<string> = fc.oneof(
  fc.string({ maxLength: 40 }),
  fc.string({ minLength: 36, maxLength: 36, unit: fc.constantFrom('0', 'a', 'f', '-', 'A') })
)

/**
 * Keys dedupe may see, in one pool so that they repeat: lowercase uuids (the word table), each with a near-uuid or
 * uppercase twin (a string key that must stay distinct from it), and other strings.
 */
export const keyPoolArb: fc.Arbitrary<string[]> = fc
  .tuple(
    fc.array(
      wordsArb.map(uuidOf).chain((uuid) => fc.tuple(fc.constant(uuid), nearUuidArb(uuid))),
      { minLength: 1, maxLength: 30, size: 'max' }
    ),
    fc.array(otherKeyArb, { maxLength: 10 })
  )
  .map(([twins, others]) => [...twins.flat(), ...others])
