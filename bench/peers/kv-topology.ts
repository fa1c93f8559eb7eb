/**
 * The memory topology's KV branch alone (memory-kv's `kv` side) as a topology file, so that the peers benchmark runs
 * it as its own process through the CLI, as the peers run theirs: `node src/cli/start.ts bench/peers/kv-topology.ts`.
 * The table is SFM_MEMORY_TABLE (migrated beforehand), the database DATABASE_URL.
 */
import { FatalError } from '../../src/errors.ts'
import { createPool, resolveConnectionOptions } from '../../src/sinks/postgres/index.ts'
import { kvOnlyTopology } from '../memory-kv.ts'

export default async function kvTopology() {
  const table = process.env.SFM_MEMORY_TABLE
  if (!table) throw new FatalError('bench/peers/kv-topology.ts needs SFM_MEMORY_TABLE (the migrated memories table)')
  const connectionString = process.env.DATABASE_URL
  if (!connectionString) throw new FatalError('bench/peers/kv-topology.ts needs DATABASE_URL')
  const pool = createPool(resolveConnectionOptions({ connectionString }))
  pool.on('error', () => {
    // An idle client lost its connection; the sink's next query reconnects.
  })
  return kvOnlyTopology(table, pool)
}
