import { TEST_KEY, authHeaders } from './gateway.ts'

export interface Answer {
  readonly status: number
  readonly headers: Headers
  readonly body: any
}

/** POSTs a chat completion to the gateway and reads the whole answer. */
export async function chat(url: string, body: Record<string, unknown>, key = TEST_KEY): Promise<Answer> {
  const res = await fetch(`${url}/v1/chat/completions`, { method: 'POST', headers: authHeaders(key), body: JSON.stringify({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'Say hello.' }], ...body }) })
  const text = await res.text()
  let parsed: unknown = text
  try { parsed = JSON.parse(text) } catch { /* a stream */ }
  return { status: res.status, headers: res.headers, body: parsed }
}

export interface WindowView { name: string; kind: string; limit: number; used: number; remaining: number; resetAt: number; period?: string }
export interface LimitsView { key: string; store: string; limits: { policy: string; scope: string; counter: string; windows: WindowView[] }[] }

export async function adminLimits(adminUrl: string, key: string): Promise<LimitsView> {
  const res = await fetch(`${adminUrl}/admin/limits?key=${encodeURIComponent(key)}`)
  if (res.status !== 200) throw new Error(`admin limits answered ${res.status}: ${await res.text()}`)
  return (await res.json()) as LimitsView
}

/** Polls until `pred` holds (settlement runs just after the response ends), failing after ~5 s. */
export async function eventually<T>(read: () => Promise<T>, pred: (v: T) => boolean, what = 'condition'): Promise<T> {
  let last: T | undefined
  for (let i = 0; i < 250; i++) {
    last = await read()
    if (pred(last)) return last
    await new Promise((r) => setTimeout(r, 20))
  }
  throw new Error(`${what} never held; last value: ${JSON.stringify(last)}`)
}

/** Tokens used in a policy's window, read from the admin plane. */
export async function usedTokens(adminUrl: string, key: string, window = 'tpm', policy = 'token-limit'): Promise<number> {
  const v = await adminLimits(adminUrl, key)
  const w = v.limits.find((l) => l.policy === policy)?.windows.find((x) => x.name.startsWith(window))
  if (!w) throw new Error(`no ${policy} window ${window} in ${JSON.stringify(v)}`)
  return w.used
}
