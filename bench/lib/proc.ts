/**
 * Linux /proc readings for benchmarks that compare whole processes (bench/peers.ts): a process's CPU time and RSS,
 * the process listening on a TCP port (the Kafka broker, the Kafka Connect worker), and the local TCP ports a
 * process holds open (to find its PostgreSQL backends in pg_stat_activity by client_port). Everything is undefined
 * or empty when /proc is not there or not readable.
 */
import { readdirSync, readFileSync, readlinkSync } from 'node:fs'

/** Clock ticks per second of /proc's CPU times (USER_HZ): 100 on every Linux architecture Node runs on. */
export const CLOCK_TICKS = 100

/** Fields 3.. of /proc/<pid>/stat (after the command name, which may hold blanks), or undefined if it is gone. */
export function procStat(pid: number | string): string[] | undefined {
  try {
    const text = readFileSync(`/proc/${pid}/stat`, 'utf8')
    return text.slice(text.lastIndexOf(')') + 2).split(' ')
  } catch {
    return undefined
  }
}

/** CPU seconds (user + system) the process has used so far; NaN if it is gone. */
export function cpuSeconds(pid: number): number {
  const fields = procStat(pid)
  // utime and stime are fields 14 and 15 of stat, i.e. 11 and 12 after the command name.
  return fields === undefined ? Number.NaN : (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS
}

/** A line of /proc/<pid>/status in bytes (VmRSS: now, VmHWM: the peak so far); NaN if unreadable. */
export function statusBytes(pid: number, field: 'VmRSS' | 'VmHWM'): number {
  try {
    const match = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(readFileSync(`/proc/${pid}/status`, 'utf8'))
    return match ? Number(match[1]) * 1024 : Number.NaN
  } catch {
    return Number.NaN
  }
}

/** The socket inodes a process holds open. */
function socketInodes(pid: number): Set<string> {
  const inodes = new Set<string>()
  let fds: string[]
  try {
    fds = readdirSync(`/proc/${pid}/fd`)
  } catch {
    return inodes
  }
  for (const fd of fds) {
    try {
      const link = readlinkSync(`/proc/${pid}/fd/${fd}`)
      if (link.startsWith('socket:[')) inodes.add(link.slice(8, -1))
    } catch {
      // closed meanwhile
    }
  }
  return inodes
}

interface TcpSocket {
  localPort: number
  remotePort: number
  listening: boolean
  inode: string
}

/** The host's TCP sockets (IPv4 and IPv6) from /proc/net/tcp*. */
function tcpSockets(): TcpSocket[] {
  const sockets: TcpSocket[] = []
  for (const file of ['/proc/net/tcp', '/proc/net/tcp6']) {
    let text: string
    try {
      text = readFileSync(file, 'utf8')
    } catch {
      continue
    }
    for (const line of text.split('\n').slice(1)) {
      const cols = line.trim().split(/\s+/)
      if (cols.length < 10) continue
      const port = (address: string | undefined) => Number.parseInt(address?.split(':')[1] ?? '', 16)
      sockets.push({
        localPort: port(cols[1]),
        remotePort: port(cols[2]),
        listening: cols[3] === '0A',
        inode: cols[9]!
      })
    }
  }
  return sockets
}

/** The process listening on a local TCP port (e.g. the broker's or a REST API's), or undefined. */
export function pidListeningOn(port: number): number | undefined {
  const inodes = new Set(
    tcpSockets()
      .filter((s) => s.listening && s.localPort === port)
      .map((s) => s.inode)
  )
  if (inodes.size === 0) return undefined
  for (const entry of readdirSync('/proc')) {
    const pid = Number(entry)
    if (!Number.isInteger(pid)) continue
    for (const inode of socketInodes(pid)) if (inodes.has(inode)) return pid
  }
  return undefined
}

/** The local ports of a process's TCP connections to `remotePort` (e.g. its connections to PostgreSQL). */
export function clientPorts(pid: number, remotePort: number): number[] {
  const inodes = socketInodes(pid)
  return tcpSockets()
    .filter((s) => !s.listening && s.remotePort === remotePort && inodes.has(s.inode))
    .map((s) => s.localPort)
}
