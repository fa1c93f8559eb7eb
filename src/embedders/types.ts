/**
 * Turns texts into vectors. One interface for the built-in lexical embedder and for remote embedding servers, so
 * the vector branch, the embedder topology and `npm run recall` do not care which one runs.
 */
export interface Embedder {
  /** Short name for logs and metrics labels (`lexical`, `http`). */
  readonly name: string
  /** Length of every vector `embed` returns. */
  readonly dimensions: number
  /**
   * Identifies the model and its parameters. Stored with every vector (`model_revision`), so an index built by
   * another revision can be found and re-embedded.
   */
  readonly revision: string
  /**
   * One vector per text, in order. Throws RetriableError when the embedding service is unavailable (the batch is
   * held and retried), PoisonError when the input itself is refused (the caller isolates the text), FatalError for
   * configuration problems (wrong key, wrong URL, wrong dimensions).
   */
  embed(texts: readonly string[], signal?: AbortSignal): Promise<Float32Array[]>
  close?(): Promise<void>
}
