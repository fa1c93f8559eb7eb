import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import { test } from 'node:test'
import { LexicalEmbedder, tokenize } from '../../src/embedders/lexical.ts'
import { textCorpus } from '../helpers/vectors.ts'

function dot(a: Float32Array, b: Float32Array): number {
  let s = 0
  for (let i = 0; i < a.length; i++) s += a[i]! * b[i]!
  return s
}
const norm = (a: Float32Array) => Math.sqrt(dot(a, a))

test('vectors are deterministic, of the configured length and unit norm', async () => {
  const a = new LexicalEmbedder({ dimensions: 128 })
  const b = new LexicalEmbedder({ dimensions: 128 })
  const [x, y] = [(await a.embed(['The quick brown fox']))[0]!, (await b.embed(['The quick brown fox']))[0]!]
  assert.equal(x.length, 128)
  assert.deepEqual(x, y)
  assert.ok(Math.abs(norm(x) - 1) < 1e-6)
  for (const odd of ['!!!', '…', '🎉', 'a']) assert.ok(Math.abs(norm(a.embedOne(odd)) - 1) < 1e-6, odd)
  assert.notEqual(a.revision, new LexicalEmbedder({ dimensions: 256 }).revision)
})

test('normalisation: case, accents and punctuation do not matter', () => {
  const e = new LexicalEmbedder()
  assert.deepEqual(tokenize('Café, CAFE; café!'), ['cafe', 'cafe', 'cafe'])
  assert.ok(dot(e.embedOne('Crème Brûlée recipe'), e.embedOne('creme brulee RECIPE')) > 0.999)
})

test('real lexical signal: a text is its own nearest neighbour; shared words rank above unrelated texts', () => {
  const e = new LexicalEmbedder()
  const corpus = textCorpus(1000, 77)
  const vectors = corpus.map((t) => e.embedOne(t))
  let self = 0
  for (let i = 0; i < corpus.length; i++) {
    let best = -1
    let bestScore = -2
    for (let j = 0; j < corpus.length; j++) {
      const s = dot(vectors[i]!, vectors[j]!)
      if (s > bestScore) [best, bestScore] = [j, s]
    }
    if (best === i || corpus[best] === corpus[i]) self++
  }
  assert.equal(self, corpus.length)

  const query = e.embedOne('kafka consumer group rebalancing')
  const related = e.embedOne('the consumer group is rebalancing after a kafka broker restart')
  const partial = e.embedOne('a consumer of kafka topics')
  const unrelated = e.embedOne('bake the bread at two hundred degrees for forty minutes')
  assert.ok(dot(query, related) > dot(query, partial), 'more shared words, closer')
  assert.ok(dot(query, partial) > dot(query, unrelated) + 0.2, 'shared words beat unrelated text')
  // Inflections meet through character n-grams.
  assert.ok(dot(e.embedOne('memories'), e.embedOne('memory')) > dot(e.embedOne('memories'), e.embedOne('broker')) + 0.1)
  // Word order matters a little (bigrams) but not much.
  const swapped = dot(e.embedOne('red apple green pear'), e.embedOne('green pear red apple'))
  assert.ok(swapped > 0.8 && swapped < 0.999, `swapped ${swapped}`)
})

test('the vectors never change for a given revision (a change of output needs a new revision and a reindex)', () => {
  // SHA-256 of the vectors of a fixed corpus, as made by lexical-v1 since it was written (2026-11-26); speed work on
  // embedOne must keep these bit for bit. Speed itself is measured by `npm run bench -- vectors`, not here.
  const texts = [
    ...textCorpus(500, 11),
    'Grüße aus Köln 🧠 über',
    '…',
    'a',
    '日本語のテキスト',
    'ﬁ ligature',
    'x'.repeat(3000)
  ]
  const expected: Record<number, string> = {
    3: 'eb198ed95a2509d0611f360c314e957b4fbafd7a47e58ef22f8af76d78812549',
    4: '564ff9143c9910aba76ea86690fe94f81064fa2f53308fb4056e305ef810c82b'
  }
  for (const charNgram of [3, 4]) {
    const e = new LexicalEmbedder({ charNgram })
    const hash = createHash('sha256')
    for (const text of texts) hash.update(Buffer.from(e.embedOne(text).buffer))
    assert.equal(hash.digest('hex'), expected[charNgram], `charNgram ${charNgram} (${e.revision})`)
  }
})

test('invalid options are refused with the option named', () => {
  assert.throws(() => new LexicalEmbedder({ dimensions: 4 }), /dimensions must be an integer in 8\.\.16000/)
  assert.throws(() => new LexicalEmbedder({ charNgram: 1 }), /charNgram/)
  assert.throws(() => new LexicalEmbedder({ bigramWeight: -1 }), /bigramWeight/)
})
