/**
 * The JSON text of hub chunks, for one translated stream: the same string `JSON.stringify(chunk)` gives,
 * built faster for the chunks a stream is made of. Every chunk of a stream shares its envelope (id, object,
 * created, model), so its text is made once; a content delta (`{index: 0, delta: {content}, logprobs: null,
 * finish_reason: null}`, most of any answer) costs one string escape. Anything else (other keys, other
 * orders, usage, tool calls) is left to JSON.stringify, whole or for the part that differs: the fast paths
 * only take what they can prove is the exact shape, so the text never differs from JSON.stringify's
 * (test/hub-chunk-json.test.ts checks that against JSON.stringify itself, over every decoder's fixtures).
 */
export class HubChunkJson {
  private id: unknown = undefined
  private object: unknown = undefined
  private created: unknown = undefined
  private model: unknown = undefined
  /** `{"id":…,"object":…,"created":…,"model":…,"choices":[` for the envelope above. */
  private head = ''
  /** Whether the chunk envelope() last looked at has a usage key (its sixth). */
  private hasUsage = false

  text(chunk: Record<string, unknown>): string {
    const head = this.envelope(chunk)
    if (head === null) return JSON.stringify(chunk)
    const choices = chunk.choices as unknown[]
    let body: string
    if (choices.length === 0) body = ''
    else if (choices.length === 1) {
      const one = choiceText(choices[0])
      if (one === undefined) return JSON.stringify(chunk)
      body = one
    } else return JSON.stringify(chunk)
    if (!this.hasUsage) return head + body + ']}'
    const usage = chunk.usage
    // JSON.stringify leaves out a key whose value is undefined (or a function or symbol): those take the slow path.
    if (usage === null || typeof usage !== 'object') return JSON.stringify(chunk)
    return head + body + '],"usage":' + JSON.stringify(usage) + '}'
  }

  /**
   * The envelope's text when the chunk has exactly the keys id, object, created, model, choices (an array)
   * and optionally usage, in that order (JSON.stringify's order is the insertion order); otherwise null.
   */
  private envelope(chunk: Record<string, unknown>): string | null {
    let n = 0
    for (const key in chunk) {
      if (key !== KEYS[n] || !Object.hasOwn(chunk, key)) return null
      n++
    }
    if (n < 5 || !Array.isArray(chunk.choices)) return null
    this.hasUsage = n === 6
    const { id, object, created, model } = chunk
    if (id !== this.id || object !== this.object || created !== this.created || model !== this.model) {
      if (typeof id !== 'string' || typeof object !== 'string' || typeof model !== 'string' || typeof created !== 'number' || !Number.isFinite(created)) return null
      this.id = id
      this.object = object
      this.created = created
      this.model = model
      this.head = `{"id":${JSON.stringify(id)},"object":${JSON.stringify(object)},"created":${JSON.stringify(created)},"model":${JSON.stringify(model)},"choices":[`
    }
    return this.head
  }
}

const KEYS = ['id', 'object', 'created', 'model', 'choices', 'usage'] as const
const CHOICE_KEYS = ['index', 'delta', 'logprobs', 'finish_reason'] as const

/** A choice's text: the content-delta template when it is exactly that shape, JSON.stringify otherwise. */
function choiceText(choice: unknown): string | undefined {
  if (choice === null || typeof choice !== 'object' || Array.isArray(choice)) return JSON.stringify(choice)
  const c = choice as Record<string, unknown>
  let n = 0
  for (const key in c) {
    if (key !== CHOICE_KEYS[n] || !Object.hasOwn(c, key)) return JSON.stringify(choice)
    n++
  }
  if (n !== 4 || c.index !== 0 || c.logprobs !== null || c.finish_reason !== null) return JSON.stringify(choice)
  const content = onlyContent(c.delta)
  if (content === undefined) return JSON.stringify(choice)
  return '{"index":0,"delta":{"content":' + JSON.stringify(content) + '},"logprobs":null,"finish_reason":null}'
}

/** The delta's `content` when the delta is a plain object whose only key is a string `content`. */
function onlyContent(delta: unknown): string | undefined {
  if (delta === null || typeof delta !== 'object' || Array.isArray(delta)) return undefined
  let content: unknown
  let n = 0
  for (const key in delta) {
    if (key !== 'content' || n > 0 || !Object.hasOwn(delta, key)) return undefined
    content = (delta as Record<string, unknown>).content
    n++
  }
  return typeof content === 'string' ? content : undefined
}
