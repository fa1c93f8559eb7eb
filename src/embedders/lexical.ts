import { FatalError } from '../errors.ts'
import type { Embedder } from './types.ts'

export interface LexicalEmbedderOptions {
  /** Vector length. More dimensions, fewer hash collisions. */
  dimensions: number
  /** Length of the character n-grams taken from each word (with `#` marking word boundaries). */
  charNgram: number
  /** Relative weight of the three feature groups; each group is scaled to unit norm before weighting. */
  wordWeight: number
  bigramWeight: number
  charWeight: number
}

export const defaultLexicalEmbedderOptions = {
  dimensions: 384,
  charNgram: 3,
  wordWeight: 1,
  bigramWeight: 0.6,
  charWeight: 0.5
} as const satisfies LexicalEmbedderOptions

// Per-group hash seeds: the same string as a word, a bigram half or an n-gram lands in unrelated buckets.
const WORD_SEED = 0x811c9dc5
const BIGRAM_SEED = 0x01000193
const CHAR_SEED = 0x9e3779b9
const TOKEN = /[\p{L}\p{N}]+/gu
const MARKS = /\p{M}+/gu

/** FNV-1a over `text[start, end)`, from `seed`. */
function fnv(text: string, start: number, end: number, seed: number): number {
  let h = seed >>> 0
  for (let i = start; i < end; i++) {
    h ^= text.charCodeAt(i)
    h = Math.imul(h, 0x01000193)
  }
  return h >>> 0
}

/** `#` marks a word's boundaries in its character n-grams. */
const BOUNDARY = 35

/**
 * FNV-1a from CHAR_SEED over characters `[start, start + n)` of `#token#`, read from `token` without building the
 * padded string (one allocation per word saved; the hash is the same as over the padded string).
 */
function ngramHash(token: string, start: number, n: number): number {
  const last = token.length + 1
  let h = CHAR_SEED >>> 0
  for (let i = start; i < start + n; i++) {
    h ^= i === 0 || i === last ? BOUNDARY : token.charCodeAt(i - 1)
    h = Math.imul(h, 0x01000193)
  }
  return h >>> 0
}

/** MurmurHash3's finaliser: FNV's low bits are weak, and we take both the bucket and the sign from the hash. */
function mix(h: number): number {
  h ^= h >>> 16
  h = Math.imul(h, 0x85ebca6b)
  h ^= h >>> 13
  h = Math.imul(h, 0xc2b2ae35)
  h ^= h >>> 16
  return h >>> 0
}

/** Lower case, compatibility forms folded, accents removed: "Café" and "cafe" are the same word. */
export function normalizeText(text: string): string {
  return text.normalize('NFKD').replace(MARKS, '').toLowerCase()
}

export function tokenize(text: string): string[] {
  return normalizeText(text).match(TOKEN) ?? []
}

/**
 * The built-in embedder: deterministic, no model, no download. Feature hashing (Weinberger et al. 2009) of
 * normalised word unigrams, word bigrams and character n-grams into `dimensions` signed buckets, each group scaled
 * to unit norm and weighted, the sum L2-normalised. Cosine similarity is then a blend of word overlap, phrase
 * overlap and spelling overlap: a text is its own nearest neighbour, texts that share words rank above unrelated
 * ones, and inflections ("memory"/"memories") still meet through their n-grams. It carries no meaning beyond the
 * words (no synonyms); use the HTTP embedder with a real model for that.
 */
export class LexicalEmbedder implements Embedder {
  readonly name = 'lexical'
  readonly dimensions: number
  readonly revision: string
  readonly #options: Readonly<LexicalEmbedderOptions>
  readonly #groups: { words: Float64Array; bigrams: Float64Array; chars: Float64Array }

  constructor(options: Partial<LexicalEmbedderOptions> = {}) {
    const o: LexicalEmbedderOptions = { ...defaultLexicalEmbedderOptions, ...options }
    if (!Number.isInteger(o.dimensions) || o.dimensions < 8 || o.dimensions > 16_000) {
      throw new FatalError(`lexical embedder: dimensions must be an integer in 8..16000, got ${o.dimensions}`)
    }
    if (!Number.isInteger(o.charNgram) || o.charNgram < 2 || o.charNgram > 8) {
      throw new FatalError(`lexical embedder: charNgram must be an integer in 2..8, got ${o.charNgram}`)
    }
    for (const key of ['wordWeight', 'bigramWeight', 'charWeight'] as const) {
      if (!(o[key] >= 0) || !Number.isFinite(o[key])) {
        throw new FatalError(`lexical embedder: ${key} must be a finite number ≥ 0, got ${o[key]}`)
      }
    }
    this.#options = Object.freeze(o)
    this.#groups = {
      words: new Float64Array(o.dimensions),
      bigrams: new Float64Array(o.dimensions),
      chars: new Float64Array(o.dimensions)
    }
    this.dimensions = o.dimensions
    // Every parameter that changes the vectors is in the revision, so a changed setting triggers a reindex.
    this.revision = `lexical-v1:d${o.dimensions}:n${o.charNgram}:w${o.wordWeight}:b${o.bigramWeight}:c${o.charWeight}`
  }

  /** The validated options (all of them, defaults filled in): what rebuilds this embedder elsewhere. */
  get options(): Readonly<LexicalEmbedderOptions> {
    return this.#options
  }

  async embed(texts: readonly string[]): Promise<Float32Array[]> {
    return texts.map((text) => this.embedOne(text))
  }

  embedOne(text: string): Float32Array {
    const { dimensions, charNgram, wordWeight, bigramWeight, charWeight } = this.#options
    const out = new Float32Array(dimensions)
    let tokens = tokenize(text)
    // Only punctuation or symbols: embed them as one token rather than return a zero vector (undefined cosine).
    if (tokens.length === 0) tokens = [normalizeText(text).trim() || text]
    // Scratch space reused across calls (embedOne is synchronous): three fewer allocations per text.
    const { words, bigrams, chars } = this.#groups
    words.fill(0)
    bigrams.fill(0)
    chars.fill(0)
    const wordHashes = new Array<number>(tokens.length)
    for (let t = 0; t < tokens.length; t++) {
      const token = tokens[t]!
      const h = fnv(token, 0, token.length, WORD_SEED)
      wordHashes[t] = h
      add(words, mix(h), dimensions)
      const padded = token.length + 2
      if (padded <= charNgram) add(chars, mix(ngramHash(token, 0, padded)), dimensions)
      else {
        for (let i = 0; i + charNgram <= padded; i++) add(chars, mix(ngramHash(token, i, charNgram)), dimensions)
      }
    }
    for (let t = 1; t < tokens.length; t++) {
      add(bigrams, mix(Math.imul(wordHashes[t - 1]! ^ BIGRAM_SEED, 0x01000193) ^ wordHashes[t]!), dimensions)
    }
    accumulate(out, words, wordWeight)
    accumulate(out, bigrams, bigramWeight)
    accumulate(out, chars, charWeight)
    normalize(out)
    return out
  }
}

function add(target: Float64Array, hash: number, dimensions: number): void {
  // The top bit gives the sign, so collisions cancel out on average instead of piling up.
  target[hash % dimensions]! += hash & 0x80000000 ? -1 : 1
}

function accumulate(out: Float32Array, group: Float64Array, weight: number): void {
  if (weight === 0) return
  let sum = 0
  for (let i = 0; i < group.length; i++) sum += group[i]! * group[i]!
  if (sum === 0) return
  const scale = weight / Math.sqrt(sum)
  for (let i = 0; i < group.length; i++) out[i]! += group[i]! * scale
}

function normalize(v: Float32Array): void {
  let sum = 0
  for (let i = 0; i < v.length; i++) sum += v[i]! * v[i]!
  if (sum === 0) {
    v[0] = 1
    return
  }
  const scale = 1 / Math.sqrt(sum)
  for (let i = 0; i < v.length; i++) v[i]! *= scale
}
