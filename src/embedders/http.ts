import { ErrorCodes, errorMessage, FatalError, PoisonError, RetriableError } from '../errors.ts'
import { redact } from '../logger.ts'
import type { Embedder } from './types.ts'

export interface HttpEmbedderOptions {
  /** Base URL of an OpenAI-compatible server, e.g. `http://gpu-1:8000/v1` (`/embeddings` is appended). */
  url: string
  /** Model name sent with every request. */
  model: string
  /** Length of the vectors the model returns; every response is checked against it. */
  dimensions: number
  /** Bearer token; never logged. */
  apiKey?: string
  /** Ask the server for shorter vectors (`dimensions` request field, text-embedding-3 style models only). */
  requestDimensions?: boolean
  /** Texts per request. */
  batchSize: number
  /** Limit per request, ms. */
  timeoutMs: number
  /** Stored as `model_revision`; default `http:<model>:d<dimensions>`. */
  revision?: string
}

export const defaultHttpEmbedderOptions = {
  batchSize: 64,
  timeoutMs: 30_000,
  requestDimensions: false
} as const satisfies Partial<HttpEmbedderOptions>

export type HttpEmbedderInput = Partial<HttpEmbedderOptions> & Pick<HttpEmbedderOptions, 'url' | 'model' | 'dimensions'>

interface EmbeddingsResponse {
  data?: Array<{ index?: unknown; embedding?: unknown }>
}

/** Longest error body quoted in an error message (servers put the reason there; texts never). */
const MAX_ERROR_BODY = 300

/**
 * Client of the OpenAI `POST /v1/embeddings` API, which vLLM, text-embeddings-inference, Ollama, LocalAI and
 * llama.cpp's server also speak. Texts go in batches of `batchSize`, one request at a time (the runtime already
 * writes several sink batches in parallel).
 *
 * Errors, by status: 408, 409, 425, 429, 5xx, timeouts and network failures are retriable (the batch is held and
 * retried with backoff); 401 and 403 (key), 404 (URL or model) are fatal; 400, 413 and 422 mean the server refused
 * the input and are poison — the vector sink then embeds the texts one by one to find the refused one, so a single
 * oversized text goes to the DLQ instead of stopping the topology. A response whose vectors do not have
 * `dimensions` entries is fatal: the index would be corrupt.
 */
export class HttpEmbedder implements Embedder {
  readonly name = 'http'
  readonly dimensions: number
  readonly revision: string
  readonly #options: HttpEmbedderOptions
  readonly #endpoint: string

  constructor(input: HttpEmbedderInput) {
    const o: HttpEmbedderOptions = { ...defaultHttpEmbedderOptions, ...input }
    let url: URL
    try {
      url = new URL(o.url)
    } catch {
      throw new FatalError(`http embedder: url is not a URL: ${redact(String(o.url))}`)
    }
    if (url.protocol !== 'http:' && url.protocol !== 'https:') {
      throw new FatalError(`http embedder: url must be http or https, got ${url.protocol}`)
    }
    if (typeof o.model !== 'string' || o.model.length === 0) throw new FatalError('http embedder: model is required')
    if (!Number.isInteger(o.dimensions) || o.dimensions < 1 || o.dimensions > 16_000) {
      throw new FatalError(`http embedder: dimensions must be an integer in 1..16000, got ${o.dimensions}`)
    }
    if (!Number.isInteger(o.batchSize) || o.batchSize < 1 || o.batchSize > 2048) {
      throw new FatalError(`http embedder: batchSize must be an integer in 1..2048, got ${o.batchSize}`)
    }
    if (!Number.isInteger(o.timeoutMs) || o.timeoutMs < 1) {
      throw new FatalError(`http embedder: timeoutMs must be a positive integer, got ${o.timeoutMs}`)
    }
    this.#options = o
    // Accept both `http://host/v1` and the full `http://host/v1/embeddings`.
    const path = url.pathname.replace(/\/+$/, '')
    url.pathname = path.endsWith('/embeddings') ? path : `${path}/embeddings`
    this.#endpoint = url.toString()
    this.dimensions = o.dimensions
    this.revision = o.revision ?? `http:${o.model}:d${o.dimensions}`
  }

  get endpoint(): string {
    return this.#endpoint
  }

  async embed(texts: readonly string[], signal?: AbortSignal): Promise<Float32Array[]> {
    const out: Float32Array[] = []
    for (let i = 0; i < texts.length; i += this.#options.batchSize) {
      out.push(...(await this.#request(texts.slice(i, i + this.#options.batchSize), signal)))
    }
    return out
  }

  async #request(texts: readonly string[], signal: AbortSignal | undefined): Promise<Float32Array[]> {
    const o = this.#options
    const body: Record<string, unknown> = { model: o.model, input: texts, encoding_format: 'float' }
    if (o.requestDimensions) body.dimensions = o.dimensions
    const headers: Record<string, string> = { 'content-type': 'application/json', accept: 'application/json' }
    if (o.apiKey) headers.authorization = `Bearer ${o.apiKey}`
    const timeout = AbortSignal.timeout(o.timeoutMs)
    let response: Response
    try {
      response = await fetch(this.#endpoint, {
        method: 'POST',
        headers,
        body: JSON.stringify(body),
        signal: signal ? AbortSignal.any([signal, timeout]) : timeout
      })
    } catch (error) {
      if (signal?.aborted) throw new RetriableError('http embedder: shutting down', { code: ErrorCodes.SHUTDOWN })
      const timedOut = timeout.aborted
      throw new RetriableError(
        timedOut
          ? `http embedder: no response within ${o.timeoutMs} ms`
          : `http embedder: request failed: ${errorMessage(error)}`,
        { cause: error, code: timedOut ? ErrorCodes.TIMEOUT : ErrorCodes.UNAVAILABLE, details: { texts: texts.length } }
      )
    }
    let text: string
    try {
      text = await response.text()
    } catch (error) {
      throw new RetriableError(`http embedder: response body lost: ${errorMessage(error)}`, {
        cause: error,
        code: timeout.aborted ? ErrorCodes.TIMEOUT : ErrorCodes.UNAVAILABLE
      })
    }
    if (!response.ok) throw statusError(response, text, texts.length)
    let parsed: EmbeddingsResponse
    try {
      parsed = JSON.parse(text) as EmbeddingsResponse
    } catch (error) {
      // A proxy's HTML error page on a 200, or a body cut short: the next try may well succeed.
      throw new RetriableError('http embedder: response is not JSON', { cause: error })
    }
    return this.#vectors(parsed, texts.length)
  }

  #vectors(response: EmbeddingsResponse, count: number): Float32Array[] {
    const data = response?.data
    if (!Array.isArray(data) || data.length !== count) {
      throw new FatalError(
        `http embedder: expected ${count} embeddings, got ${Array.isArray(data) ? data.length : 'no data array'}`
      )
    }
    const out = new Array<Float32Array | undefined>(count).fill(undefined)
    data.forEach((item, position) => {
      // `index` says which input a vector belongs to; servers may return them out of order.
      const index = typeof item?.index === 'number' ? item.index : position
      const embedding = item?.embedding
      if (!Number.isInteger(index) || index < 0 || index >= count || out[index] !== undefined) {
        throw new FatalError(`http embedder: bad or repeated index ${String(item?.index)} in response`)
      }
      if (!Array.isArray(embedding)) {
        throw new FatalError('http embedder: embedding is not an array of numbers (is encoding_format honoured?)')
      }
      if (embedding.length !== this.dimensions) {
        throw new FatalError(
          `http embedder: model returned ${embedding.length} dimensions, configured ${this.dimensions}`,
          { details: { model: this.#options.model } }
        )
      }
      const vector = new Float32Array(embedding.length)
      for (let i = 0; i < embedding.length; i++) {
        const x = embedding[i]
        if (typeof x !== 'number' || !Number.isFinite(x))
          throw new FatalError('http embedder: non-finite value in embedding')
        vector[i] = x
      }
      out[index] = vector
    })
    return out as Float32Array[]
  }
}

function statusError(response: Response, body: string, texts: number): Error {
  const status = response.status
  const reason = body.slice(0, MAX_ERROR_BODY).replace(/\s+/g, ' ')
  const details: Record<string, unknown> = { status, texts }
  const retryAfter = response.headers.get('retry-after')
  if (retryAfter) details.retryAfter = retryAfter
  const message = `http embedder: HTTP ${status}: ${reason}`
  if (status === 401 || status === 403) {
    return new FatalError(`http embedder: HTTP ${status}: the API key is missing or not allowed`, { details })
  }
  if (status === 404) return new FatalError(`${message} (check the URL and the model name)`, { details })
  if (status === 400 || status === 413 || status === 422) {
    return new PoisonError(message, { code: ErrorCodes.SINK_REJECTED, details })
  }
  if (status === 408 || status === 504) return new RetriableError(message, { code: ErrorCodes.TIMEOUT, details })
  // 409, 425, 429, 5xx and anything unexpected: hold and retry; an unknown status is not the record's fault.
  return new RetriableError(message, { code: ErrorCodes.UNAVAILABLE, details })
}
