import { setTimeout as sleep } from 'node:timers/promises'
import { concatMap, EMPTY, from, type Observable, type OperatorFunction, of } from 'rxjs'
import { ErrorCodes, kindOf, PoisonError } from '../../errors.ts'
import type { Envelope } from '../../streams/envelope.ts'
import {
  type DecodeJsonOptions,
  decodeJsonValue,
  defaultDecodeJsonOptions
} from '../../streams/operators/decode-json.ts'
import { describeSchemaErrors } from '../../streams/operators/validate.ts'
import { unframe } from './framing.ts'
import { type WireRegistry, type WireRegistryOptions, wireRegistry } from './registry.ts'

export interface DecodeRegisteredOptions extends DecodeJsonOptions {
  registry: WireRegistry | WireRegistryOptions
  /** Stage name in dead letters for unknown schema ids and values the schema rejects. */
  validateStage?: string
  /** Longest wait between fetch attempts while the registry is unreachable, ms. */
  maxBackoffMs?: number
}

/**
 * Confluent-framed bytes → JSON value validated against the schema its id names. Poison goes to the DLQ with the
 * reason: a value that is not framed, undecodable JSON (stage `decode`), an id the registry does not know or a value
 * the schema rejects (stage `validate`). While the registry is unreachable the message waits and the fetch is
 * retried with backoff, holding the partition like any retriable failure; a cached schema needs no registry at all.
 * Order is kept (a message waits for the ones before it).
 */
export function decodeRegistered(
  options: DecodeRegisteredOptions
): OperatorFunction<Envelope<Buffer>, Envelope<unknown>> {
  const registry = wireRegistry(options.registry)
  const settings = { ...defaultDecodeJsonOptions, ...options }
  const validateStage = options.validateStage ?? 'validate'
  const maxBackoffMs = options.maxBackoffMs ?? 5_000

  const finish = (envelope: Envelope<Buffer>, payload: Buffer, check: (value: unknown) => boolean) => {
    let value: unknown
    try {
      value = decodeJsonValue(payload, settings)
    } catch (error) {
      envelope.reject(error, settings.stage)
      return EMPTY
    }
    const validate = check as ((value: unknown) => boolean) & { errors?: Parameters<typeof describeSchemaErrors>[0] }
    if (validate(value)) return of(envelope.withValue(value))
    envelope.reject(
      new PoisonError(`schema validation failed: ${describeSchemaErrors(validate.errors)}`, {
        code: ErrorCodes.VALIDATION
      }),
      validateStage
    )
    return EMPTY
  }

  const load = async (schemaId: number) => {
    for (let attempt = 0; ; attempt++) {
      try {
        return await registry.load(schemaId)
      } catch (error) {
        if (kindOf(error) !== 'retriable') throw error
        await sleep(Math.min(maxBackoffMs, 100 * 2 ** Math.min(attempt, 10)))
      }
    }
  }

  return concatMap((envelope): Observable<Envelope<unknown>> => {
    let framed: ReturnType<typeof unframe>
    try {
      framed = unframe(envelope.value)
    } catch (error) {
      envelope.reject(error, settings.stage)
      return EMPTY
    }
    const cached = registry.cached(framed.schemaId)
    if (cached) return finish(envelope, framed.payload, cached)
    return from(
      load(framed.schemaId).then(
        (validate) => finish(envelope, framed.payload, validate),
        (error: unknown) => {
          envelope.reject(error, validateStage)
          return EMPTY
        }
      )
    ).pipe(concatMap((inner) => inner))
  })
}
