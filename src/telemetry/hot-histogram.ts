import { type Attributes, type HrTime, ValueType } from '@opentelemetry/api'
import { hrTime } from '@opentelemetry/core'
import { resourceFromAttributes } from '@opentelemetry/resources'
import {
  AggregationTemporality,
  type CollectionResult,
  DataPointType,
  type HistogramMetricData,
  type MetricProducer
} from '@opentelemetry/sdk-metrics'

export interface HotHistogramOptions {
  name: string
  description: string
  unit: string
  /** Upper bounds, ascending: a value equal to a bound counts in that bound's bucket (as the SDK's histograms). */
  boundaries: readonly number[]
  /** The one series' labels. */
  attributes: Attributes
}

/**
 * A histogram of one series for a value recorded per record (e.g. each message's processing time): `record` is a
 * bucket search and four additions, where the SDK's Histogram instrument hashes the attributes on every call
 * (a sort and a JSON.stringify: a cost on every message, docs/BENCHMARKS.md, peers). It is read as a
 * MetricProducer of the metric reader, so the exposition is the SDK's own: the same buckets, `_sum` and `_count`
 * (cumulative), and nothing until the first value.
 */
export class HotHistogram implements MetricProducer {
  readonly #options: HotHistogramOptions
  readonly #bounds: Float64Array
  readonly #counts: Float64Array
  #count = 0
  #sum = 0
  #min = Number.POSITIVE_INFINITY
  #max = Number.NEGATIVE_INFINITY
  readonly #start: HrTime = hrTime()

  constructor(options: HotHistogramOptions) {
    this.#options = options
    this.#bounds = Float64Array.from(options.boundaries)
    this.#counts = new Float64Array(options.boundaries.length + 1)
  }

  record(value: number): void {
    // As the SDK: NaN and negative values are not recorded.
    if (!(value >= 0)) return
    const bounds = this.#bounds
    let lo = 0
    let hi = bounds.length
    while (lo < hi) {
      const mid = (lo + hi) >>> 1
      if (bounds[mid]! < value) lo = mid + 1
      else hi = mid
    }
    this.#counts[lo]! += 1
    this.#count++
    this.#sum += value
    if (value < this.#min) this.#min = value
    if (value > this.#max) this.#max = value
  }

  async collect(): Promise<CollectionResult> {
    const metrics: HistogramMetricData[] = []
    if (this.#count > 0) {
      metrics.push({
        descriptor: {
          name: this.#options.name,
          description: this.#options.description,
          unit: this.#options.unit,
          valueType: ValueType.DOUBLE
        },
        aggregationTemporality: AggregationTemporality.CUMULATIVE,
        dataPointType: DataPointType.HISTOGRAM,
        dataPoints: [
          {
            attributes: this.#options.attributes,
            startTime: this.#start,
            endTime: hrTime(),
            value: {
              buckets: { boundaries: [...this.#options.boundaries], counts: Array.from(this.#counts) },
              count: this.#count,
              sum: this.#sum,
              min: this.#min,
              max: this.#max
            }
          }
        ]
      })
    }
    return {
      // The reader keeps its own resource; only the scope's metrics are merged in.
      resourceMetrics: { resource: EMPTY_RESOURCE, scopeMetrics: [{ scope: { name: 'sfm-streams' }, metrics }] },
      errors: []
    }
  }
}

const EMPTY_RESOURCE = resourceFromAttributes({})
