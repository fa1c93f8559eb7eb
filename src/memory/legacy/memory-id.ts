/**
 * The id of a memory of the legacy SomaFractalMemory store, the same string in TypeScript and in Python.
 *
 * The legacy store keys a memory as `f"{namespace}:{repr(coord)}:data"`, `coord` a tuple of Python floats. Its id
 * here is that key without `:data`: `default:(1.0, 2.0, 3.0)`. This module reproduces Python's `repr` of a float
 * tuple: the shortest digits that round-trip (ECMAScript's Number-to-string and Python's `repr` both produce them),
 * laid out the way Python does — positional notation while the decimal point falls within 16 digits of the first
 * significant digit and at most 4 places before it (`0.0001`, `1000000000000000.0`), else exponent notation with a
 * signed exponent of at least two digits (`1e-05`, `1e+16`, `5e-324`); `.0` on integral values, `-0.0`, and a
 * trailing comma in a one-element tuple (`(0.5,)`).
 */
import { ErrorCodes, PoisonError } from '../../errors.ts'

/** The suffix of a memory's key in the legacy `kv_store`. */
export const LEGACY_DATA_SUFFIX = ':data'

/** Python's `repr(float(x))` for a finite number. Throws for NaN and ±Infinity (JSON cannot carry them). */
export function pythonFloatRepr(x: number): string {
  if (!Number.isFinite(x)) {
    throw new PoisonError(
      `a coordinate must be a finite number, got ${String(x)} (JSON cannot carry NaN or Infinity; Python would print ${Number.isNaN(x) ? 'nan' : x > 0 ? 'inf' : '-inf'})`,
      { code: ErrorCodes.VALIDATION }
    )
  }
  if (x === 0) return Object.is(x, -0) ? '-0.0' : '0.0'
  const sign = x < 0 ? '-' : ''
  // toExponential() without an argument gives the shortest round-trip digits: "d.ddde±x".
  const exponential = Math.abs(x).toExponential()
  const e = exponential.indexOf('e')
  const mantissa = exponential.slice(0, e)
  const exponent = Number(exponential.slice(e + 1))
  const digits = mantissa.length > 1 ? mantissa[0] + mantissa.slice(2) : mantissa
  // Python (format_float_short, mode 'r'): the decimal point sits after `decpt` digits; exponent notation when
  // decpt <= -4 or decpt > 16.
  const decpt = exponent + 1
  if (decpt <= -4 || decpt > 16) {
    const body = digits.length > 1 ? `${digits[0]}.${digits.slice(1)}` : digits
    const magnitude = Math.abs(exponent)
    return `${sign}${body}e${exponent < 0 ? '-' : '+'}${magnitude < 10 ? '0' : ''}${magnitude}`
  }
  if (decpt <= 0) return `${sign}0.${'0'.repeat(-decpt)}${digits}`
  if (decpt >= digits.length) return `${sign}${digits}${'0'.repeat(decpt - digits.length)}.0`
  return `${sign}${digits.slice(0, decpt)}.${digits.slice(decpt)}`
}

/** Python's `repr(tuple(float(c) for c in coordinate))`. */
export function pythonFloatTupleRepr(coordinate: readonly unknown[]): string {
  const parts = coordinate.map((c, i) => {
    if (typeof c !== 'number') {
      throw new PoisonError(`coordinate[${i}] must be a number, got ${c === null ? 'null' : typeof c}`, {
        code: ErrorCodes.VALIDATION
      })
    }
    return pythonFloatRepr(c)
  })
  if (parts.length === 1) return `(${parts[0]},)`
  return `(${parts.join(', ')})`
}

/**
 * The id of the legacy memory at `coordinate` in `namespace`: exactly Python's
 * `f"{namespace}:{repr(tuple(float(c) for c in coordinate))}"`. Throws a PoisonError for a coordinate that is not
 * an array of finite numbers.
 */
export function legacyMemoryId(namespace: string, coordinate: readonly unknown[]): string {
  if (!Array.isArray(coordinate)) {
    throw new PoisonError('a coordinate must be an array of numbers', { code: ErrorCodes.VALIDATION })
  }
  return `${namespace}:${pythonFloatTupleRepr(coordinate)}`
}

/** The memory id of a legacy `kv_store` key (`…:data`), or undefined when the key is not a memory's. */
export function memoryIdOfLegacyKey(key: string): string | undefined {
  return key.endsWith(LEGACY_DATA_SUFFIX) ? key.slice(0, -LEGACY_DATA_SUFFIX.length) : undefined
}
