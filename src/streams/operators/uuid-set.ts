import { getRandomValues } from 'node:crypto'
import { hasCanonicalUuidShape } from '../../uuid.ts'

/**
 * A set of uuids kept as 128-bit numbers in an open-addressing hash table on typed arrays, for dedupe's window
 * (RecentKeys). In a JS Set of 100k uuid strings each lookup misses the cache on the Set's hash table and again on
 * the stored key's string. Here a slot is 16 bytes of words plus a one-byte tag (7 bits of the hash) in a separate
 * array, so a probe for an absent key, the common case, mostly reads tags only, and the keys take about half the
 * memory. It pays off for a large window; at 10k keys parsing the hex digits eats the gain (docs/BENCHMARKS.md,
 * memory-kv).
 *
 * Linear probing at a load ≤ 1/2, backward-shift deletion (no tombstones, so a window that turns over forever never
 * degrades), and a hash that mixes all four words with a per-instance random seed: time-ordered uuids (v7: the first
 * 48 bits are a timestamp) or crafted ids must not land in one cluster.
 */

const INVALID = 0x10
/** Hex digit value of a char code below 128, INVALID for the rest; lowercase only: 'A…' and 'a…' are different keys. */
const HEX = new Uint8Array(128).fill(INVALID)
for (let i = 0; i < 10; i++) HEX[0x30 + i] = i
for (let i = 0; i < 6; i++) HEX[0x61 + i] = 10 + i

/** Bit 7 or above once a char read by `word8` was not a lowercase hex digit (reset by parseUuid). */
const notHex = new Int32Array(1)

/** The word of the four hex digits at `key[a…a+3]` then the four at `key[b…b+3]`. */
function word8(key: string, a: number, b: number): number {
  // Two loops of four rather than one over an index table, and the flags kept local: the cheaper of the two shapes.
  let word = 0
  let flags = 0
  for (let i = a; i < a + 4; i++) {
    const code = key.charCodeAt(i)
    const value = HEX[code & 0x7f]!
    flags |= code | ((value & INVALID) << 3)
    word = (word << 4) | value
  }
  for (let i = b; i < b + 4; i++) {
    const code = key.charCodeAt(i)
    const value = HEX[code & 0x7f]!
    flags |= code | ((value & INVALID) << 3)
    word = (word << 4) | value
  }
  notHex[0]! |= flags
  return word
}

/**
 * Parses a canonical lowercase uuid (`xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx`) into four words at `into[at…at+3]`.
 * False for anything else (then `into` holds garbage): a word form must map back to exactly one string.
 */
export function parseUuid(key: string, into: Int32Array, at: number): boolean {
  if (!hasCanonicalUuidShape(key)) return false
  notHex[0] = 0
  into[at] = word8(key, 0, 4)
  into[at + 1] = word8(key, 9, 14)
  into[at + 2] = word8(key, 19, 24)
  into[at + 3] = word8(key, 28, 32)
  return notHex[0]! < 0x80
}

/**
 * MurmurHash3's block and finalisation steps over the four words, each word first XORed with its own seed word so
 * that collisions cannot be built without knowing the seed (plain Murmur3 with a seed only in the initial state has
 * seed-independent multicollisions).
 */
export function hashUuid(words: Int32Array, at: number, seed: Int32Array): number {
  let h = seed[4]!
  for (let i = 0; i < 4; i++) {
    let k = Math.imul(words[at + i]! ^ seed[i]!, 0xcc9e2d51)
    k = Math.imul((k << 15) | (k >>> 17), 0x1b873593)
    h ^= k
    h = (Math.imul((h << 13) | (h >>> 19), 5) + 0xe6546b64) | 0
  }
  h ^= h >>> 16
  h = Math.imul(h, 0x85ebca6b)
  h ^= h >>> 13
  h = Math.imul(h, 0xc2b2ae35)
  return h ^ (h >>> 16)
}

const INITIAL_SLOTS = 1024
/** Keeps the slot mask a 32-bit int (a JS Set holds at most 2^24 entries anyway). */
const MAX_CAPACITY = 2 ** 28

export class UuidSet {
  /** The most uuids it may hold at once; the table grows lazily up to 2× that many slots (a power of two). */
  readonly capacity: number
  readonly #seed = getRandomValues(new Int32Array(5))
  readonly #maxSlots: number
  #mask = 0
  /** 0: empty; otherwise 0x80 | the hash's top 7 bits (not the bits that pick the slot below 2^25 slots). */
  #tags = new Uint8Array(0)
  #words = new Int32Array(0)
  #size = 0

  constructor(capacity: number) {
    if (!Number.isInteger(capacity) || capacity < 1 || capacity > MAX_CAPACITY) {
      throw new RangeError(`capacity must be 1 to ${MAX_CAPACITY}, got ${capacity}`)
    }
    this.capacity = capacity
    let slots = 2
    while (slots < 2 * capacity) slots *= 2
    this.#maxSlots = slots
    this.#allocate(Math.min(INITIAL_SLOTS, this.#maxSlots))
  }

  get size(): number {
    return this.#size
  }

  /** Whether the uuid whose words are at `words[at…at+3]` is in the set. */
  has(words: Int32Array, at: number): boolean {
    return this.#probe(words, at, hashUuid(words, at, this.#seed)) >= 0
  }

  /** Adds the uuid at `words[at…]`; false (and nothing changes) when it is already there. */
  add(words: Int32Array, at: number): boolean {
    if ((this.#size + 1) * 2 > this.#tags.length && this.#tags.length < this.#maxSlots) this.#grow()
    const hash = hashUuid(words, at, this.#seed)
    const found = this.#probe(words, at, hash)
    if (found >= 0) return false
    // Beyond capacity the load could pass 1/2, and a full table would make probing loop forever.
    if (this.#size === this.capacity) throw new RangeError(`UuidSet is full (${this.capacity})`)
    const slot = ~found
    this.#tags[slot] = 0x80 | (hash >>> 25)
    copyWords(words, at, this.#words, slot * 4)
    this.#size++
    return true
  }

  /** Removes the uuid at `words[at…]`; false when it was not there. */
  delete(words: Int32Array, at: number): boolean {
    let hole = this.#probe(words, at, hashUuid(words, at, this.#seed))
    if (hole < 0) return false
    const tags = this.#tags
    const own = this.#words
    const mask = this.#mask
    // Backward shift: pull each later entry of the cluster into the hole unless that would put it before its home.
    for (let next = (hole + 1) & mask; tags[next] !== 0; next = (next + 1) & mask) {
      const home = hashUuid(own, next * 4, this.#seed) & mask
      if (((next - home) & mask) >= ((next - hole) & mask)) {
        tags[hole] = tags[next]!
        copyWords(own, next * 4, own, hole * 4)
        hole = next
      }
    }
    tags[hole] = 0
    this.#size--
    return true
  }

  /** The slot holding the uuid at `words[at…]`, or, when it is absent, `~slot` of the empty slot that ends its probe. */
  #probe(words: Int32Array, at: number, hash: number): number {
    const tag = 0x80 | (hash >>> 25)
    const tags = this.#tags
    const own = this.#words
    const mask = this.#mask
    let slot = hash & mask
    for (let t = tags[slot]!; t !== 0; t = tags[slot]!) {
      if (t === tag && same(own, slot * 4, words, at)) return slot
      slot = (slot + 1) & mask
    }
    return ~slot
  }

  #allocate(slots: number): void {
    this.#tags = new Uint8Array(slots)
    this.#words = new Int32Array(slots * 4)
    this.#mask = slots - 1
  }

  #grow(): void {
    const tags = this.#tags
    const words = this.#words
    this.#allocate(Math.min(tags.length * 2, this.#maxSlots))
    this.#size = 0
    for (let slot = 0; slot < tags.length; slot++) if (tags[slot] !== 0) this.add(words, slot * 4)
  }
}

function same(a: Int32Array, i: number, b: Int32Array, j: number): boolean {
  return a[i] === b[j] && a[i + 1] === b[j + 1] && a[i + 2] === b[j + 2] && a[i + 3] === b[j + 3]
}

/** Copies the four words of a uuid from `from[i…]` to `to[j…]`. */
export function copyWords(from: Int32Array, i: number, to: Int32Array, j: number): void {
  to[j] = from[i]!
  to[j + 1] = from[i + 1]!
  to[j + 2] = from[i + 2]!
  to[j + 3] = from[i + 3]!
}
