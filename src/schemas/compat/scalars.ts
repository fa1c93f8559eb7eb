import { add, type Out } from './diff.ts'
import { childPath, describeValue, jsonEqual, ruleName } from './json.ts'

/** String and number keywords: lengths, bounds, patterns, formats, multipleOf. */

export function numberAt(schema: Record<string, unknown>, keyword: string): number | undefined {
  const value = schema[keyword]
  return typeof value === 'number' && Number.isFinite(value) ? value : undefined
}

/** A count bound (`minLength`, `maxItems`, …). A lower bound of 0 is no bound. */
export function compareCount(
  out: Out,
  path: string,
  keyword: string,
  kind: 'min' | 'max',
  o: Record<string, unknown>,
  n: Record<string, unknown>
): void {
  const norm = (v: number | undefined) => (kind === 'min' && v === 0 ? undefined : v)
  const ov = norm(numberAt(o, keyword))
  const nv = norm(numberAt(n, keyword))
  if (ov === nv) return
  const name = ruleName(keyword)
  const where = childPath(path, keyword)
  const tighter = kind === 'min' ? 'old values below it fail' : 'old values above it fail'
  const looser = 'old readers reject values the new bound allows'
  if (ov === undefined) add(out, `${name}_ADDED`, where, false, true, `${keyword} ${nv} added: ${tighter}`)
  else if (nv === undefined) add(out, `${name}_REMOVED`, where, true, false, `${keyword} ${ov} removed: ${looser}`)
  else if (nv > ov) {
    const ok = kind === 'max'
    add(out, `${name}_INCREASED`, where, ok, !ok, `${keyword} ${ov} → ${nv}: ${ok ? looser : tighter}`)
  } else {
    const ok = kind === 'min'
    add(out, `${name}_DECREASED`, where, ok, !ok, `${keyword} ${ov} → ${nv}: ${ok ? looser : tighter}`)
  }
}

/** `pattern`, `format`, `contentEncoding`, `contentMediaType`: a constraint that is either the same or not. */
function compareExact(
  out: Out,
  path: string,
  keyword: string,
  o: Record<string, unknown>,
  n: Record<string, unknown>
): void {
  const ov = o[keyword]
  const nv = n[keyword]
  if (jsonEqual(ov, nv)) return
  const name = ruleName(keyword)
  const where = childPath(path, keyword)
  if (ov === undefined) {
    add(out, `${name}_ADDED`, where, false, true, `${keyword} ${describeValue(nv)} added: old values may not match`)
  } else if (nv === undefined) {
    add(out, `${name}_REMOVED`, where, true, false, `${keyword} ${describeValue(ov)} removed: old readers may reject`)
  } else {
    add(out, `${name}_CHANGED`, where, false, false, `${keyword} ${describeValue(ov)} → ${describeValue(nv)}`)
  }
}

export function compareString(out: Out, path: string, o: Record<string, unknown>, n: Record<string, unknown>): void {
  compareCount(out, path, 'minLength', 'min', o, n)
  compareCount(out, path, 'maxLength', 'max', o, n)
  for (const keyword of ['pattern', 'format', 'contentEncoding', 'contentMediaType']) {
    compareExact(out, path, keyword, o, n)
  }
}

interface Bound {
  value: number
  exclusive: boolean
  keyword: string
}

/** The tightest lower (or upper) bound from `minimum`/`exclusiveMinimum` (numeric, or draft-04 boolean). */
function bound(schema: Record<string, unknown>, side: 'lower' | 'upper'): Bound | undefined {
  const [inclusiveKw, exclusiveKw] =
    side === 'lower' ? ['minimum', 'exclusiveMinimum'] : ['maximum', 'exclusiveMaximum']
  const candidates: Bound[] = []
  const inclusive = numberAt(schema, inclusiveKw)
  if (inclusive !== undefined) {
    candidates.push({ value: inclusive, exclusive: schema[exclusiveKw] === true, keyword: inclusiveKw })
  }
  const exclusive = numberAt(schema, exclusiveKw)
  if (exclusive !== undefined) candidates.push({ value: exclusive, exclusive: true, keyword: exclusiveKw })
  const tighter = (a: Bound, b: Bound) =>
    side === 'lower'
      ? a.value > b.value || (a.value === b.value && a.exclusive)
      : a.value < b.value || (a.value === b.value && a.exclusive)
  return candidates.reduce<Bound | undefined>(
    (best, c) => (best === undefined || tighter(c, best) ? c : best),
    undefined
  )
}

function compareBound(out: Out, path: string, side: 'lower' | 'upper', ob?: Bound, nb?: Bound): void {
  if (ob === undefined && nb === undefined) return
  if (ob !== undefined && nb !== undefined && ob.value === nb.value && ob.exclusive === nb.exclusive) return
  const name = side === 'lower' ? 'MINIMUM' : 'MAXIMUM'
  const where = childPath(path, (nb ?? ob)!.keyword)
  const show = (b: Bound) => `${b.keyword} ${b.value}`
  if (ob === undefined) {
    add(out, `${name}_ADDED`, where, false, true, `${show(nb!)} added: old values beyond it fail`)
    return
  }
  if (nb === undefined) {
    add(out, `${name}_REMOVED`, where, true, false, `${show(ob)} removed: old readers reject values beyond it`)
    return
  }
  const looser =
    side === 'lower'
      ? nb.value < ob.value || (nb.value === ob.value && ob.exclusive)
      : nb.value > ob.value || (nb.value === ob.value && ob.exclusive)
  const moved = (side === 'lower') === looser ? 'DECREASED' : 'INCREASED'
  const why = looser ? 'old readers reject values the new bound allows' : 'old values beyond the new bound fail'
  add(out, `${name}_${moved}`, where, looser, !looser, `${show(ob)} → ${show(nb)}: ${why}`)
}

function isMultiple(a: number, b: number): boolean {
  const q = a / b
  return Math.abs(q - Math.round(q)) < 1e-9
}

export function compareNumber(out: Out, path: string, o: Record<string, unknown>, n: Record<string, unknown>): void {
  compareBound(out, path, 'lower', bound(o, 'lower'), bound(n, 'lower'))
  compareBound(out, path, 'upper', bound(o, 'upper'), bound(n, 'upper'))
  const om = numberAt(o, 'multipleOf')
  const nm = numberAt(n, 'multipleOf')
  if (om === nm) return
  const where = childPath(path, 'multipleOf')
  if (om === undefined) add(out, 'MULTIPLE_OF_ADDED', where, false, true, `multipleOf ${nm} added`)
  else if (nm === undefined) add(out, 'MULTIPLE_OF_REMOVED', where, true, false, `multipleOf ${om} removed`)
  else {
    // Every multiple of the old step is a multiple of the new one when the new step divides the old one.
    const backward = isMultiple(om, nm)
    const forward = isMultiple(nm, om)
    const rule = backward ? 'MULTIPLE_OF_REDUCED' : forward ? 'MULTIPLE_OF_EXPANDED' : 'MULTIPLE_OF_CHANGED'
    add(out, rule, where, backward, forward, `multipleOf ${om} → ${nm}`)
  }
}
