/** The worker side of ThreadedEmbedder (threaded.ts): a LexicalEmbedder built from `workerData`. */
import { workerData } from 'node:worker_threads'
import { serveRpc } from '../workers/rpc.ts'
import { LexicalEmbedder, type LexicalEmbedderOptions } from './lexical.ts'

const embedder = new LexicalEmbedder(workerData as LexicalEmbedderOptions)

serveRpc({
  /** All vectors in one array (`texts.length × dimensions`): its buffer is transferred, not copied. */
  embed(texts: readonly string[]): Float32Array {
    const out = new Float32Array(texts.length * embedder.dimensions)
    for (let i = 0; i < texts.length; i++) out.set(embedder.embedOne(texts[i]!), i * embedder.dimensions)
    return out
  }
})
