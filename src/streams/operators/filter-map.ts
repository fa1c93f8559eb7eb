import { Observable, type OperatorFunction } from 'rxjs'

/**
 * Maps each value and drops it when the mapper returns undefined, in one pass. The building block of the
 * per-message operators: the mapper itself settles (drops or rejects) what it does not pass on.
 */
export function filterMap<A, B>(fn: (value: A) => B | undefined): OperatorFunction<A, B> {
  return (source) =>
    new Observable<B>((subscriber) =>
      source.subscribe({
        next(value) {
          let result: B | undefined
          try {
            result = fn(value)
          } catch (error) {
            subscriber.error(error)
            return
          }
          if (result !== undefined) subscriber.next(result)
        },
        error: (error) => subscriber.error(error),
        complete: () => subscriber.complete()
      })
    )
}
