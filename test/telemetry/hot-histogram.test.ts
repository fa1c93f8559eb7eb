import assert from 'node:assert/strict'
import { test } from 'node:test'
import { PrometheusExporter, PrometheusSerializer } from '@opentelemetry/exporter-prometheus'
import { MeterProvider } from '@opentelemetry/sdk-metrics'
import { HotHistogram } from '../../src/telemetry/hot-histogram.ts'

const BOUNDS = [0.001, 0.0025, 0.005, 0.01, 0.25, 1, 60]

/** The exposition of the SDK's histogram and of a HotHistogram fed the same values, read by the same reader. */
async function expositions(values: readonly number[]): Promise<{ sdk: string[]; hot: string[] }> {
  const hot = new HotHistogram({ name: 'hot', description: 'd', unit: 's', boundaries: BOUNDS, attributes: { t: 'x' } })
  const exporter = new PrometheusExporter({ preventServerStart: true, withoutScopeInfo: true, metricProducers: [hot] })
  const provider = new MeterProvider({ readers: [exporter] })
  try {
    const sdk = provider
      .getMeter('m')
      .createHistogram('sdk', { description: 'd', unit: 's', advice: { explicitBucketBoundaries: BOUNDS } })
    for (const v of values) {
      sdk.record(v, { t: 'x' })
      hot.record(v)
    }
    const text = new PrometheusSerializer(undefined, false, undefined, false, true).serialize(
      (await exporter.collect()).resourceMetrics
    )
    const lines = (name: string) =>
      text
        .split('\n')
        .filter((l) => l.startsWith(name) || l.includes(` ${name} `) || l.includes(` ${name}_`))
        .map((l) => l.replaceAll(name, 'h'))
    return { sdk: lines('sdk'), hot: lines('hot') }
  } finally {
    await provider.shutdown()
  }
}

test("a HotHistogram's exposition equals the SDK histogram's for the same values", async () => {
  let seed = 7
  const random = () => {
    seed = (seed * 1103515245 + 12345) % 2 ** 31
    return seed / 2 ** 31
  }
  // Bounds exactly (a value equal to a bound counts in its bucket), around them, past the last, zero, and values
  // the SDK does not record (negative, NaN).
  const values = [...BOUNDS, 0, 61, 1e6, -1, Number.NaN, ...Array.from({ length: 500 }, () => random() ** 4 * 100)]
  const { sdk, hot } = await expositions(values)
  assert.ok(
    sdk.some((l) => l.startsWith('h_bucket{t="x",le="0.001"}')),
    sdk.join('\n')
  )
  assert.deepEqual(hot, sdk)
})

test('a HotHistogram with no value exports nothing, as the SDK', async () => {
  const { sdk, hot } = await expositions([])
  assert.deepEqual(hot, [])
  assert.deepEqual(sdk, [])
})
