/**
 * Messages of the embedding topics (schemas/embedding.request/v1.json, schemas/embedding.response/v1.json). A
 * request carries what the vector indexer needs to apply the fence, and the embedder copies those fields into the
 * response, so the indexer needs no lookup: request → response → point.
 */
export interface EmbeddingRequest {
  /** Deterministic: the memory event's `event_id`, so a redelivered event makes the same request. */
  readonly request_id: string
  readonly id: string
  readonly namespace: string
  readonly text: string
  /** The embedder revision the requester expects (informational; the response says which one was used). */
  readonly model: string
  readonly type?: string | null
  readonly version: number
  /** Canonical UTC timestamp text of the memory event (second half of the fence). */
  readonly timestamp: string
  readonly importance?: number | null
  readonly excerpt?: string
  readonly [extra: string]: unknown
}

export interface EmbeddingResponse {
  readonly request_id: string
  readonly id: string
  readonly vector: readonly number[]
  readonly dimensions: number
  readonly model_revision: string
  readonly namespace: string
  readonly type?: string | null
  readonly version: number
  readonly timestamp: string
  readonly importance?: number | null
  readonly excerpt?: string
  readonly [extra: string]: unknown
}

export const EMBEDDING_REQUEST_SUBJECT = 'embedding.request'
export const EMBEDDING_RESPONSE_SUBJECT = 'embedding.response'

/** Remote mode: embedding requests are published instead of embedding in the branch. */
export interface EmbeddingRequestPublisher {
  /** Resolves once the requests are durable on the broker. */
  publish(requests: readonly EmbeddingRequest[], signal?: AbortSignal): Promise<void>
  close?(): Promise<void>
}
