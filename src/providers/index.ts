import type { BackendConfig } from '../config/schema.ts'
import { azureOpenai } from './azure-openai.ts'
import { mock, openai, openaiCompatible } from './openai.ts'
import type { Provider } from './types.ts'

const PROVIDERS: ReadonlyMap<string, Provider> = new Map([openai, openaiCompatible, azureOpenai, mock].map((p) => [p.type, p]))

export function providerFor(type: BackendConfig['type']): Provider {
  const p = PROVIDERS.get(type)
  if (!p) throw new Error(`no provider for backend type ${type}`)
  return p
}

export const DEFAULT_BASE_URL: Partial<Record<BackendConfig['type'], string>> = {
  openai: 'https://api.openai.com/v1',
}
