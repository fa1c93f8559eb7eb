/**
 * Just enough of PromQL's lexical structure to list what an expression reads: the metric names of its selectors,
 * the label names each selector matches on, and the labels it groups by. Not a parser: it does not check syntax
 * (promtool does that where it is installed), it only finds names reliably — strings, durations, functions and
 * keywords are never mistaken for metrics.
 */

export interface Selector {
  metric: string
  /** Label names in the selector's matchers, e.g. `topology` in `x{topology=~"a"}`. */
  labels: string[]
}

export interface PromqlNames {
  selectors: Selector[]
  /** Labels named in by / without / on / ignoring / group_left / group_right lists. */
  grouping: string[]
}

const KEYWORDS = new Set(['and', 'or', 'unless', 'bool', 'offset', 'inf', 'nan', 'atan2'])
const GROUPING = new Set(['by', 'without', 'on', 'ignoring', 'group_left', 'group_right'])
/** Aggregation operators may be followed by `by (…)` before their argument: never metric names. */
const AGGREGATIONS = new Set([
  'sum',
  'min',
  'max',
  'avg',
  'group',
  'stddev',
  'stdvar',
  'count',
  'count_values',
  'bottomk',
  'topk',
  'quantile',
  'limitk',
  'limit_ratio'
])

export function promqlNames(expr: string): PromqlNames {
  const selectors: Selector[] = []
  const grouping: string[] = []
  let i = 0
  const skipSpace = () => {
    while (i < expr.length && /\s/.test(expr[i]!)) i++
  }
  const readString = () => {
    const quote = expr[i]!
    i++
    while (i < expr.length && expr[i] !== quote) i += expr[i] === '\\' ? 2 : 1
    i++
  }
  const readIdent = () => {
    const start = i
    while (i < expr.length && /[A-Za-z0-9_:]/.test(expr[i]!)) i++
    return expr.slice(start, i)
  }
  /** `{a="x", b=~"y"}` at i: returns the label names. */
  const readMatchers = (): string[] => {
    const labels: string[] = []
    i++ // {
    for (;;) {
      skipSpace()
      if (i >= expr.length) throw new Error(`unclosed { in ${expr}`)
      const c = expr[i]!
      if (c === '}') {
        i++
        return labels
      }
      if (c === ',') i++
      else if (c === '"' || c === "'" || c === '`') readString()
      else if (/[A-Za-z_]/.test(c)) {
        const name = readIdent()
        skipSpace()
        if (/^(=~|!~|!=|=)/.test(expr.slice(i))) labels.push(name)
      } else i++
    }
  }
  while (i < expr.length) {
    const c = expr[i]!
    if (/\s/.test(c)) {
      i++
    } else if (c === '"' || c === "'" || c === '`') {
      readString()
    } else if (c === '[') {
      // Range or subquery duration: `[5m]`, `[$__rate_interval]`, `[1h:5m]`.
      while (i < expr.length && expr[i] !== ']') i++
      i++
    } else if (c === '{') {
      // A selector without a metric name: `{__name__=~"…"}`. Not used here; keep its labels with no metric.
      selectors.push({ metric: '', labels: readMatchers() })
    } else if (/[0-9.]/.test(c)) {
      while (i < expr.length && /[0-9.eE+\-a-z]/.test(expr[i]!) && !/\s/.test(expr[i]!)) {
        // A number or a duration such as 5m / 1h30m; stop at operators that cannot belong to it.
        if ((expr[i] === '+' || expr[i] === '-') && !/[eE]/.test(expr[i - 1] ?? '')) break
        i++
      }
    } else if (/[A-Za-z_:]/.test(c)) {
      const name = readIdent()
      skipSpace()
      const next = expr[i]
      if (GROUPING.has(name)) {
        if (next === '(') {
          i++
          const end = expr.indexOf(')', i)
          for (const label of expr.slice(i, end).split(',')) if (label.trim() !== '') grouping.push(label.trim())
          i = end + 1
        }
      } else if (next === '(' || AGGREGATIONS.has(name)) {
        // A function or an aggregation: its arguments are scanned as the loop goes on.
      } else if (KEYWORDS.has(name.toLowerCase())) {
        // Binary operator or modifier keyword.
      } else if (next === '{') {
        selectors.push({ metric: name, labels: readMatchers() })
      } else {
        selectors.push({ metric: name, labels: [] })
      }
    } else if (c === '$') {
      // A Grafana variable outside a string or range (e.g. a threshold): skip its name.
      i++
      readIdent()
    } else {
      i++
    }
  }
  return { selectors, grouping }
}
