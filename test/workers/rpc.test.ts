import assert from 'node:assert/strict'
import { test } from 'node:test'
import { ErrorCodes, ErrorKinds, kindOf, SfmError } from '../../src/errors.ts'
import { WorkerRpc } from '../../src/workers/rpc.ts'

const worker = new URL('./echo-worker.ts', import.meta.url)

test('calls are answered by id, values cloned (Map, bigint, typed arrays), errors keep their kind and code', async (t) => {
  const rpc = new WorkerRpc(worker, undefined, 'test worker')
  t.after(() => rpc.close())
  const value = { map: new Map([['a', 1n]]), list: [1, 'x', null], vector: Float32Array.of(1.5, -2) }
  const [slow, echoed, squared] = await Promise.all([
    rpc.call<number>('slow', [50]),
    rpc.call('echo', [value]),
    rpc.call<Float64Array>('square', [Float64Array.of(3, 4)])
  ])
  assert.equal(slow, 50)
  assert.deepEqual(echoed, value)
  assert.deepEqual(squared, Float64Array.of(9, 16))
  await assert.rejects(rpc.call('refuse', ['bad item']), (error: unknown) => {
    return error instanceof SfmError && kindOf(error) === ErrorKinds.POISON && error.message === 'bad item'
  })
  await assert.rejects(rpc.call('nope', []), /no method "nope"/)
  // Any other error comes back as a plain Error with its string fields: the caller classifies it (a SQLSTATE).
  await assert.rejects(rpc.call('database', []), (error: unknown) => {
    assert.ok(!(error instanceof SfmError))
    const e = error as Error & Record<string, unknown>
    assert.equal(e.message, 'duplicate key value violates unique constraint "x_pkey"')
    assert.equal(e.code, '23505')
    assert.equal(e.constraint, 'x_pkey')
    assert.equal(e.position, undefined, 'only string fields travel')
    return true
  })
})

test('a worker that dies fails its calls retriable; the next call runs on a new worker', async (t) => {
  const rpc = new WorkerRpc(worker, undefined, 'test worker')
  t.after(() => rpc.close())
  const inFlight = rpc.call('slow', [5_000])
  await assert.rejects(rpc.call('crash', []), (error: unknown) => {
    return error instanceof SfmError && error.canRetry && /test worker exited with code 3/.test(error.message)
  })
  await assert.rejects(inFlight, /exited with code 3/)
  assert.equal(rpc.running, false)
  assert.equal(await rpc.call('echo', ['again']), 'again')
  assert.equal(rpc.running, true)
})

test('abort rejects the call with the reason; close fails what is in flight and refuses more', async () => {
  const rpc = new WorkerRpc(worker, undefined, 'test worker')
  const controller = new AbortController()
  const aborted = rpc.call('slow', [5_000], controller.signal)
  controller.abort(new Error('enough'))
  await assert.rejects(aborted, /enough/)
  const shutdown = (error: unknown) => error instanceof SfmError && error.code === ErrorCodes.SHUTDOWN && error.canRetry
  const inFlight = assert.rejects(rpc.call('slow', [5_000]), shutdown)
  await rpc.close()
  await inFlight
  await assert.rejects(rpc.call('echo', [1]), shutdown)
})

test('an argument that cannot be sent fails that call at once and leaves nothing pending', async (t) => {
  const rpc = new WorkerRpc(worker, undefined, 'test worker')
  t.after(() => rpc.close())
  await assert.rejects(rpc.call('echo', [() => 1]), /could not be cloned/)
  assert.equal(await rpc.call('echo', ['next']), 'next')
})
