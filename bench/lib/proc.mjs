// What a process costs, read from /proc (Linux): CPU time (all threads) and resident memory.
import { readFileSync, writeFileSync } from 'node:fs'
import { execFileSync } from 'node:child_process'

let ticksPerSecond = 100
try {
  ticksPerSecond = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100
} catch {
  // 100 is the value on every mainstream Linux build
}

/** utime + stime of the whole process (every thread), in microseconds. */
export function cpuMicros(pid) {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
  // The command name may contain spaces and parentheses: fields are counted after its closing ')'.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
  const utime = Number(fields[11])
  const stime = Number(fields[12])
  return ((utime + stime) * 1e6) / ticksPerSecond
}

/** Current and peak resident set size, in MiB. */
export function memory(pid) {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8')
  const kib = (name) => {
    const m = new RegExp(`^${name}:\\s+(\\d+) kB`, 'm').exec(status)
    return m ? Number(m[1]) : NaN
  }
  return { rssMiB: kib('VmRSS') / 1024, peakMiB: kib('VmHWM') / 1024 }
}

export function loadAverage() {
  return readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).map(Number)
}

/** The machine's CPU time counters by line of /proc/stat (`cpu` = all CPUs, `cpu0`, `cpu1`, …), in ticks. */
export function cpuTimes(text = readFileSync('/proc/stat', 'utf8')) {
  const out = {}
  for (const line of text.split('\n')) {
    if (!/^cpu\d*\s/.test(line)) continue
    const [name, ...f] = line.trim().split(/\s+/)
    // user nice system idle iowait irq softirq steal [guest guest_nice — already inside user/nice]
    const n = f.slice(0, 8).map(Number)
    out[name] = { total: n.reduce((a, b) => a + b, 0), steal: n[7] ?? 0, idle: (n[3] ?? 0) + (n[4] ?? 0) }
  }
  return out
}

/**
 * Steal between two cpuTimes() readings, per line, as a share of all the time that passed on it (what the
 * hypervisor gave to other guests while this VM wanted to run) and busy = not idle, not steal.
 */
export function stealBetween(before, after) {
  const out = {}
  for (const [name, a] of Object.entries(after)) {
    const b = before[name]
    if (!b) continue
    const dt = a.total - b.total
    out[name] = dt > 0 ? { steal: (a.steal - b.steal) / dt, busy: (dt - (a.idle - b.idle) - (a.steal - b.steal)) / dt } : { steal: NaN, busy: NaN }
  }
  return out
}

/**
 * Resets the process's peak RSS (VmHWM) to its current RSS (`5` to /proc/PID/clear_refs, Linux ≥ 4.0), so
 * the next VmHWM read is the peak of one run, not of everything before it. False when not permitted.
 */
export function resetPeak(pid) {
  try {
    writeFileSync(`/proc/${pid}/clear_refs`, '5')
    return true
  } catch {
    return false
  }
}
