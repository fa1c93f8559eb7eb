import assert from 'node:assert/strict'
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { type TestContext, test } from 'node:test'
import { HttpEmbedder } from '../../src/embedders/http.ts'
import { embedderFromEnv } from '../../src/embedders/index.ts'
import { LexicalEmbedder } from '../../src/embedders/lexical.ts'
import { ErrorCodes, ErrorKinds, kindOf, type SfmError } from '../../src/errors.ts'

interface Seen {
  path: string
  authorization: string | undefined
  body: { model: string; input: string[]; encoding_format?: string; dimensions?: number }
}

/**
 * A local OpenAI-compatible `/v1/embeddings` endpoint (a test peer, not a mock of our code): it embeds with the
 * lexical embedder, returns the data in reverse order (as servers may), and can be told to answer otherwise.
 */
async function endpoint(t: TestContext, respond?: (seen: Seen, res: ServerResponse) => boolean | Promise<boolean>) {
  const lexical = new LexicalEmbedder({ dimensions: 16 })
  const seen: Seen[] = []
  const server = createServer(async (req: IncomingMessage, res: ServerResponse) => {
    const chunks: Buffer[] = []
    for await (const c of req) chunks.push(c as Buffer)
    const s: Seen = {
      path: req.url ?? '',
      authorization: req.headers.authorization,
      body: JSON.parse(Buffer.concat(chunks).toString())
    }
    seen.push(s)
    if (respond && (await respond(s, res))) return
    if (req.method !== 'POST' || s.path !== '/v1/embeddings') {
      res.writeHead(404).end('{"error":{"message":"not found"}}')
      return
    }
    const vectors = await lexical.embed(s.body.input)
    const data = vectors.map((v, index) => ({ object: 'embedding', index, embedding: Array.from(v) })).reverse()
    res.writeHead(200, { 'content-type': 'application/json' })
    res.end(JSON.stringify({ object: 'list', data, model: s.body.model, usage: { prompt_tokens: 1, total_tokens: 1 } }))
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()))
  t.after(() => {
    server.closeAllConnections()
    return new Promise<void>((resolve) => server.close(() => resolve()))
  })
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/v1`
  return { url, seen, lexical }
}

test('batches texts, sends model and key, returns vectors in input order', async (t) => {
  const { url, seen, lexical } = await endpoint(t)
  const embedder = new HttpEmbedder({ url, model: 'mini', dimensions: 16, apiKey: 'sk-test', batchSize: 3 })
  const texts = ['one', 'two', 'three', 'four', 'five', 'six', 'seven']
  const vectors = await embedder.embed(texts)
  assert.equal(vectors.length, 7)
  for (let i = 0; i < texts.length; i++)
    assert.deepEqual(Array.from(vectors[i]!), Array.from(lexical.embedOne(texts[i]!)))
  assert.deepEqual(
    seen.map((s) => s.body.input.length),
    [3, 3, 1]
  )
  assert.ok(seen.every((s) => s.path === '/v1/embeddings' && s.authorization === 'Bearer sk-test'))
  assert.ok(seen.every((s) => s.body.model === 'mini' && s.body.encoding_format === 'float'))
  assert.equal(embedder.revision, 'http:mini:d16')
  assert.equal(embedder.dimensions, 16)
})

test('statuses map to error kinds: 429/5xx retriable, 401/403/404 fatal, 400/413/422 poison', async (t) => {
  let status = 200
  const { url } = await endpoint(t, (_s, res) => {
    if (status === 200) return false
    res.writeHead(status, { 'retry-after': '2' }).end('{"error":{"message":"nope"}}')
    return true
  })
  const embedder = new HttpEmbedder({ url, model: 'm', dimensions: 16, apiKey: 'sk-secret-value' })
  const expectations: Array<[number, string]> = [
    [429, ErrorKinds.RETRIABLE],
    [500, ErrorKinds.RETRIABLE],
    [503, ErrorKinds.RETRIABLE],
    [504, ErrorKinds.RETRIABLE],
    [401, ErrorKinds.FATAL],
    [403, ErrorKinds.FATAL],
    [404, ErrorKinds.FATAL],
    [400, ErrorKinds.POISON],
    [413, ErrorKinds.POISON],
    [422, ErrorKinds.POISON]
  ]
  for (const [code, kind] of expectations) {
    status = code
    const error = await embedder.embed(['x']).catch((e: unknown) => e)
    assert.equal(kindOf(error), kind, `HTTP ${code}`)
    assert.ok(!String((error as Error).message).includes('sk-secret-value'), 'the key is never in a message')
    if (code === 429) assert.equal((error as SfmError).details.retryAfter, '2')
  }
})

test('timeouts and refused connections are retriable; wrong dimensions are fatal', async (t) => {
  const { url } = await endpoint(t, async (s, res) => {
    if (s.body.input[0] === 'slow') {
      await new Promise((r) => setTimeout(r, 1_000))
      res.writeHead(500).end()
      return true
    }
    return false
  })
  const slow = new HttpEmbedder({ url, model: 'm', dimensions: 16, timeoutMs: 200 })
  const timeout = await slow.embed(['slow']).catch((e: unknown) => e)
  assert.equal(kindOf(timeout), ErrorKinds.RETRIABLE)
  assert.equal((timeout as SfmError).code, ErrorCodes.TIMEOUT)

  const wrong = new HttpEmbedder({ url, model: 'm', dimensions: 32 })
  const fatal = await wrong.embed(['x']).catch((e: unknown) => e)
  assert.equal(kindOf(fatal), ErrorKinds.FATAL)
  assert.match(String(fatal), /returned 16 dimensions, configured 32/)

  const refused = new HttpEmbedder({ url: 'http://127.0.0.1:1/v1', model: 'm', dimensions: 16 })
  const down = await refused.embed(['x']).catch((e: unknown) => e)
  assert.equal(kindOf(down), ErrorKinds.RETRIABLE)
  assert.equal((down as SfmError).code, ErrorCodes.UNAVAILABLE)

  const aborted = new AbortController()
  aborted.abort()
  const shutdown = await slow.embed(['x'], aborted.signal).catch((e: unknown) => e)
  assert.equal((shutdown as SfmError).code, ErrorCodes.SHUTDOWN)
})

test('configuration from the environment', async (t) => {
  const { url } = await endpoint(t)
  assert.equal(embedderFromEnv({}).name, 'lexical')
  assert.equal(embedderFromEnv({ SFM_LEXICAL_DIMENSIONS: '64' }).dimensions, 64)
  assert.throws(
    () => embedderFromEnv({ SFM_EMBEDDING_URL: url }),
    /needs SFM_EMBEDDING_MODEL, SFM_EMBEDDING_DIMENSIONS/
  )
  assert.throws(() => embedderFromEnv({ SFM_EMBEDDER: 'gpt' }), /SFM_EMBEDDER must be/)
  const http = embedderFromEnv({ SFM_EMBEDDING_URL: url, SFM_EMBEDDING_MODEL: 'm', SFM_EMBEDDING_DIMENSIONS: '16' })
  assert.equal(http.name, 'http')
  assert.equal((await http.embed(['a']))[0]!.length, 16)
  assert.equal((http as HttpEmbedder).endpoint, `${url}/embeddings`)
  assert.throws(() => new HttpEmbedder({ url: 'ftp://x', model: 'm', dimensions: 4 }), /http or https/)
  // A URL that does not parse is not echoed: it may hold a key.
  assert.throws(
    () => new HttpEmbedder({ url: 'http://key:sk-9f2 e@[bad/v1', model: 'm', dimensions: 4 }),
    (error: Error) => /url is not a URL: \(unparsable URL\)$/.test(error.message) && !error.message.includes('sk-9f2')
  )
})
