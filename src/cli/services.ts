import { chooseStack, describeStack, type ServiceVariable, unreachableServers } from '../config.ts'
import type { Io } from './io.ts'

export interface UseServicesOptions {
  /** As a command: fill unset variables from the running local dev stack, and say first what is used and why. */
  localStack: boolean
  /** `--data-dir`: the embedded stack in that folder, the local stack is not read. */
  dataDir?: string | undefined
  /** The services the command talks to. */
  names: readonly ServiceVariable[]
}

/**
 * The start of a CLI that talks to Kafka and/or PostgreSQL (as `npm run topics` and `produce` do): chooses the stack
 * (`chooseStack`), prints what it uses, and prints one line per configured server that does not answer. Returns
 * false when one does not (the command then exits 2 without starting any client).
 */
export async function useServices(command: string, env: NodeJS.ProcessEnv, io: Io, options: UseServicesOptions) {
  let origins: Record<string, string> | undefined
  if (options.localStack) {
    const choice = await chooseStack(env, { dataDir: options.dataDir })
    const parts = { log: options.names.includes('KAFKA_BROKERS'), database: options.names.includes('DATABASE_URL') }
    io.err(`${command}: ${describeStack(choice, parts)}`)
    origins = choice.origins
  }
  const unreachable = await unreachableServers(env, { names: options.names, ...(origins ? { origins } : {}) })
  for (const line of unreachable) io.err(`${command}: ${line}`)
  return unreachable.length === 0
}
