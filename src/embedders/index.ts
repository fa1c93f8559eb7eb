import { envInt } from '../config.ts'
import { ErrorCodes, FatalError } from '../errors.ts'
import { HttpEmbedder } from './http.ts'
import { LexicalEmbedder } from './lexical.ts'
import { ThreadedEmbedder } from './threaded.ts'
import type { Embedder } from './types.ts'

export { type EmbedOutcome, embedIsolating } from './embed-isolating.ts'
export { HttpEmbedder, type HttpEmbedderInput, type HttpEmbedderOptions } from './http.ts'
export { LexicalEmbedder, type LexicalEmbedderOptions } from './lexical.ts'
export { canonicalJson, excerpt } from './text.ts'
export { ThreadedEmbedder } from './threaded.ts'
export type { Embedder } from './types.ts'

export const EmbedderKinds = { LEXICAL: 'lexical', HTTP: 'http' } as const
export type EmbedderKind = (typeof EmbedderKinds)[keyof typeof EmbedderKinds]

/**
 * The embedder the environment asks for:
 *
 * - `SFM_EMBEDDER=lexical` (the default unless `SFM_EMBEDDING_URL` is set): the built-in lexical embedder,
 *   `SFM_LEXICAL_DIMENSIONS` (default 384) and `SFM_LEXICAL_NGRAM` (character n-gram length, default 3). Both are
 *   in its revision: changing the n-gram length keeps the index's dimensions and calls for a reindex. With
 *   `{ thread: true }` (the long-running topologies) it runs on a worker thread of its own (threaded.ts) unless
 *   `SFM_EMBEDDER_THREAD=off`; one-off commands (recall) embed on the calling thread.
 * - `SFM_EMBEDDER=http`, or `SFM_EMBEDDING_URL` set: an OpenAI-compatible server. `SFM_EMBEDDING_URL` (e.g.
 *   `http://gpu-1:8000/v1`), `SFM_EMBEDDING_MODEL`, `SFM_EMBEDDING_DIMENSIONS` are required;
 *   `SFM_EMBEDDING_API_KEY` (or `OPENAI_API_KEY`), `SFM_EMBEDDING_BATCH` (64), `SFM_EMBEDDING_TIMEOUT_MS` (30000)
 *   and `SFM_EMBEDDING_REVISION` are optional.
 */
export function embedderFromEnv(env: NodeJS.ProcessEnv = process.env, options: { thread?: boolean } = {}): Embedder {
  const kind = env.SFM_EMBEDDER || (env.SFM_EMBEDDING_URL ? EmbedderKinds.HTTP : EmbedderKinds.LEXICAL)
  if (kind === EmbedderKinds.LEXICAL) {
    const lexical = {
      dimensions: envInt('SFM_LEXICAL_DIMENSIONS', 384, env),
      charNgram: envInt('SFM_LEXICAL_NGRAM', 3, env)
    }
    const thread = env.SFM_EMBEDDER_THREAD || 'on'
    if (thread !== 'on' && thread !== 'off') {
      throw new FatalError(`SFM_EMBEDDER_THREAD must be "on" or "off", got ${JSON.stringify(thread)}`, {
        code: ErrorCodes.CONFIG
      })
    }
    return options.thread === true && thread === 'on' ? new ThreadedEmbedder(lexical) : new LexicalEmbedder(lexical)
  }
  if (kind !== EmbedderKinds.HTTP) {
    throw new FatalError(`SFM_EMBEDDER must be "lexical" or "http", got ${JSON.stringify(kind)}`)
  }
  const missing = ['SFM_EMBEDDING_URL', 'SFM_EMBEDDING_MODEL', 'SFM_EMBEDDING_DIMENSIONS'].filter((k) => !env[k])
  if (missing.length > 0) throw new FatalError(`the http embedder needs ${missing.join(', ')}`)
  return new HttpEmbedder({
    url: env.SFM_EMBEDDING_URL!,
    model: env.SFM_EMBEDDING_MODEL!,
    dimensions: envInt('SFM_EMBEDDING_DIMENSIONS', 0, env),
    batchSize: envInt('SFM_EMBEDDING_BATCH', 64, env),
    timeoutMs: envInt('SFM_EMBEDDING_TIMEOUT_MS', 30_000, env),
    ...(env.SFM_EMBEDDING_API_KEY || env.OPENAI_API_KEY
      ? { apiKey: env.SFM_EMBEDDING_API_KEY || env.OPENAI_API_KEY }
      : {}),
    ...(env.SFM_EMBEDDING_REVISION ? { revision: env.SFM_EMBEDDING_REVISION } : {})
  })
}
