// CPU profiling of another process over exactly the window we choose, through its inspector
// (`node --inspect=127.0.0.1:PORT`) and the DevTools protocol. `node --cpu-prof` would also record
// start-up (module compilation, the tsx loader), which at bench durations swamps the per-request cost.
import { request, WebSocket } from 'undici'

export async function connectInspector(port, timeoutMs = 15_000) {
  const deadline = Date.now() + timeoutMs
  let targets
  for (;;) {
    try {
      const res = await request(`http://127.0.0.1:${port}/json/list`)
      targets = await res.body.json()
      if (targets.length) break
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) throw new Error(`no inspector on port ${port}`)
    await new Promise((r) => setTimeout(r, 100))
  }
  const ws = new WebSocket(targets[0].webSocketDebuggerUrl)
  await new Promise((resolve, reject) => {
    ws.addEventListener('open', resolve, { once: true })
    ws.addEventListener('error', () => reject(new Error('inspector connection failed')), { once: true })
  })
  let nextId = 1
  const pending = new Map()
  ws.addEventListener('message', (ev) => {
    const msg = JSON.parse(typeof ev.data === 'string' ? ev.data : Buffer.from(ev.data).toString('utf8'))
    const p = msg.id !== undefined ? pending.get(msg.id) : undefined
    if (!p) return
    pending.delete(msg.id)
    if (msg.error) p.reject(new Error(msg.error.message))
    else p.resolve(msg.result)
  })
  const send = (method, params = {}) => new Promise((resolve, reject) => {
    const id = nextId++
    pending.set(id, { resolve, reject })
    ws.send(JSON.stringify({ id, method, params }))
  })
  return {
    async startProfile(intervalUs = 1000) {
      await send('Profiler.enable')
      await send('Profiler.setSamplingInterval', { interval: intervalUs })
      await send('Profiler.start')
    },
    /** V8 heap in use and allocated, in bytes (main isolate only; workers have their own). */
    async heapUsage() {
      const { usedSize, totalSize } = await send('Runtime.getHeapUsage')
      return { usedSize, totalSize }
    },
    async stopProfile() {
      const { profile } = await send('Profiler.stop')
      return profile
    },
    close() {
      ws.close()
    },
  }
}
