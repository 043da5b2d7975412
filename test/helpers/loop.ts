/**
 * How long the event loop was held while `fn` ran. A 1 ms ticker records every gap between ticks, with
 * the CPU time the process spent in it: on a shared machine a long gap with little CPU is the scheduler
 * running someone else, not this process blocking, and CPU with no gap is helper threads (parallel GC)
 * working while the loop runs. `maxBlockedCpuMs` is the worst min(gap, CPU) of any tick.
 */
export async function measureLoop<T>(fn: () => Promise<T>): Promise<{ value: T; maxGapMs: number; maxBlockedCpuMs: number }> {
  let maxGap = 0
  let maxCpu = 0
  let lastT = performance.now()
  let lastCpu = process.cpuUsage()
  const tick = setInterval(() => {
    const t = performance.now()
    const cpu = process.cpuUsage(lastCpu)
    const gap = t - lastT
    if (gap > maxGap) maxGap = gap
    // Held = both: wall time passed (not just helper threads busy) and CPU was spent (not just descheduled).
    const held = Math.min(gap, (cpu.user + cpu.system) / 1000)
    if (held > maxCpu) maxCpu = held
    lastT = t
    lastCpu = process.cpuUsage()
  }, 1)
  try {
    const value = await fn()
    return { value, maxGapMs: maxGap, maxBlockedCpuMs: maxCpu }
  } finally {
    clearInterval(tick)
  }
}
