import type { BackendConfig } from '../config/schema.ts'
import { anthropic } from './anthropic.ts'
import { azureOpenai } from './azure-openai.ts'
import { bedrock } from './bedrock.ts'
import { gemini } from './gemini.ts'
import { vertex } from './vertex.ts'
import { mock, openai, openaiCompatible } from './openai.ts'
import { presetProviders } from './presets.ts'
import type { Provider } from './types.ts'

/** Every provider this build can call, by backend `type`. New providers are one entry here. */
const PROVIDERS: ReadonlyMap<string, Provider> = new Map([openai, openaiCompatible, azureOpenai, mock, anthropic, bedrock, gemini, vertex, ...presetProviders].map((p) => [p.type, p]))

export function providerFor(type: BackendConfig['type']): Provider {
  const p = PROVIDERS.get(type)
  if (!p) throw new Error(`no provider for backend type ${type}`)
  return p
}

export function hasProvider(type: string): boolean {
  return PROVIDERS.has(type)
}

/** The backend's base URL: its own `url`, else the provider's default (undefined: a mock, or a config error). */
export function defaultBaseUrl(backend: BackendConfig): string | undefined {
  return PROVIDERS.get(backend.type)?.defaultUrl?.(backend)
}
