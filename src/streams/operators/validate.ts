import { Ajv2020, type ErrorObject, type ValidateFunction } from 'ajv/dist/2020.js'
import addFormatsModule from 'ajv-formats'
import type { OperatorFunction } from 'rxjs'
import { ErrorCodes, PoisonError } from '../../errors.ts'
import { fastFormatDefinitions } from '../../schemas/formats.ts'
import { describeOperator } from '../describe.ts'
import type { Envelope } from '../envelope.ts'
import { filterMap } from './filter-map.ts'

// ajv-formats is CommonJS with `module.exports = plugin`; under NodeNext its default import is typed as the module.
const addFormats = addFormatsModule as unknown as typeof addFormatsModule.default

let shared: Ajv2020 | undefined
const compiled = new WeakMap<object, ValidateFunction>()

/**
 * One ajv instance per process (JSON Schema 2020-12 with formats); each schema object is compiled once. It stops at
 * the first error (`allErrors: false`): the values are untrusted, and with every error reported a 1 MiB event of
 * ~350,000 invalid array items built one error object per item. A dead letter names that first reason; the schema
 * tooling (`npm run schemas`, src/schemas/compat/check.ts) keeps ajv's `allErrors` for its own reports.
 */
export function compileSchema<T>(schema: object): ValidateFunction<T> {
  let validateFn = compiled.get(schema)
  if (!validateFn) {
    if (!shared) {
      shared = new Ajv2020({ allErrors: false, strict: true, allowUnionTypes: true })
      addFormats(shared)
      // Same answers as ajv-formats' full `date-time` and `uuid`, without their regular expressions on the common
      // shapes, which run for every event. See src/schemas/formats.ts.
      shared.addFormat('date-time', fastFormatDefinitions['date-time'])
      shared.addFormat('uuid', fastFormatDefinitions.uuid)
    }
    const id = (schema as { $id?: unknown }).$id
    validateFn = (typeof id === 'string' && shared.getSchema(id)) || shared.compile(schema)
    compiled.set(schema, validateFn)
  }
  return validateFn as ValidateFunction<T>
}

/** At most `limit` ajv errors as one line: `/path: message; …`. Never includes the value itself. */
export function describeSchemaErrors(errors: readonly ErrorObject[] | null | undefined, limit = 5): string {
  if (!errors || errors.length === 0) return 'invalid'
  const parts = errors.slice(0, limit).map((e) => `${e.instancePath || '/'}: ${e.message ?? e.keyword}`)
  if (errors.length > limit) parts.push(`(+${errors.length - limit} more)`)
  return parts.join('; ')
}

export interface ValidateOptions {
  /** Stage name in dead letters. */
  stage?: string
}

/** Validates each value against a JSON Schema (2020-12); invalid values are dead-lettered with ajv's reasons. */
export function validate<T>(
  schema: object,
  options: ValidateOptions = {}
): OperatorFunction<Envelope<unknown>, Envelope<T>> {
  const check = compileSchema<T>(schema)
  const stage = options.stage ?? 'validate'
  const title = (schema as { title?: unknown; $id?: unknown }).title ?? (schema as { $id?: unknown }).$id
  const info = { name: 'validate', stage, deadLetters: true, ...(typeof title === 'string' ? { detail: title } : {}) }
  const operator = filterMap<Envelope<unknown>, Envelope<T>>((envelope) => {
    if (check(envelope.value)) return envelope as Envelope<T>
    envelope.reject(
      new PoisonError(`schema validation failed: ${describeSchemaErrors(check.errors)}`, {
        code: ErrorCodes.VALIDATION
      }),
      stage
    )
    return undefined
  })
  return describeOperator(operator, info)
}
