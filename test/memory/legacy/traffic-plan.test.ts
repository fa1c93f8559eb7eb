import assert from 'node:assert/strict'
import { test } from 'node:test'
import { memoryIdOfLegacyKey } from '../../../src/memory/legacy/memory-id.ts'
import { libpqUrl, TrafficKinds, TrafficPlan, trafficEvent } from '../../../src/memory/legacy/traffic.ts'

test('TrafficPlan: the same seed plans the same writes; creates, updates and deletes over the pool', () => {
  const writes = (seed: number) => {
    const plan = new TrafficPlan({ ids: 50, namespace: 'ns', seed })
    return Array.from({ length: 2_000 }, () => plan.next()).map(({ version: _, ...w }) => w)
  }
  assert.deepEqual(writes(7), writes(7))
  assert.notDeepEqual(writes(7), writes(8))

  const plan = new TrafficPlan({ ids: 50, namespace: 'ns', seed: 3 })
  const live = new Set<string>()
  const kinds = { create: 0, update: 0, delete: 0 }
  let lastVersion = 0
  for (let i = 0; i < 5_000; i++) {
    const w = plan.next()
    const id = trafficEvent(w).id
    kinds[w.kind]++
    assert.ok(w.version > lastVersion, 'versions only grow')
    lastVersion = w.version
    assert.equal(w.coordinate[0]! >= 0 && w.coordinate[0]! < 50, true)
    if (w.kind === TrafficKinds.CREATE) {
      assert.ok(!live.has(id), `${id} is created only when not live`)
      live.add(id)
    } else {
      assert.ok(live.has(id), `${id} is updated or deleted only when live`)
      if (w.kind === TrafficKinds.DELETE) live.delete(id)
    }
    if (w.kind === TrafficKinds.DELETE) assert.equal(w.value, null)
    else {
      assert.deepEqual(w.value!.coordinate, w.coordinate)
      assert.ok(w.value!.memory_type === 'episodic' || w.value!.memory_type === 'semantic')
    }
  }
  assert.equal(plan.live, live.size)
  assert.ok(kinds.create >= 50 && kinds.update > 3_000 && kinds.delete > 400, JSON.stringify(kinds))
})

test('TrafficPlan: a pool of distinct legacy keys, the same whatever the seed; markLive makes the first writes updates', () => {
  const a = new TrafficPlan({ ids: 2_000, namespace: 'default', seed: 1 })
  const b = new TrafficPlan({ ids: 2_000, namespace: 'default', seed: 2 })
  const keys = Array.from({ length: 2_000 }, (_, slot) => a.key(slot))
  assert.equal(new Set(keys).size, 2_000)
  assert.deepEqual(
    keys,
    keys.map((_, slot) => b.key(slot))
  )
  for (const key of keys) {
    assert.match(key, /^default:\(.+\):data$/)
    assert.ok(memoryIdOfLegacyKey(key))
  }
  const plan = new TrafficPlan({ ids: 3, namespace: 'x', seed: 5 })
  plan.markLive([0, 1, 2])
  assert.equal(plan.live, 3)
  const first = plan.next()
  assert.notEqual(first.kind, TrafficKinds.CREATE)
})

test('trafficEvent: a memory.event v1 as sfm_events builds it; libpqUrl writes a query space as %20', () => {
  const plan = new TrafficPlan({ ids: 10, namespace: 'n', seed: 1 })
  const w = plan.next()
  const event = JSON.parse(trafficEvent(w).text)
  assert.equal(event.op, 'upsert')
  assert.equal(event.type, w.value!.memory_type)
  assert.deepEqual(event.payload, w.value)
  assert.equal(event.version, w.version)
  assert.match(event.timestamp, /Z$/)
  const deleted = JSON.parse(trafficEvent({ ...w, kind: TrafficKinds.DELETE, value: null }).text)
  assert.equal(deleted.op, 'delete')
  assert.equal('payload' in deleted, false)
  assert.equal(
    libpqUrl('postgres://u:a+b@h/db?options=-c+search_path%3Dx'),
    'postgres://u:a+b@h/db?options=-c%20search_path%3Dx'
  )
})
