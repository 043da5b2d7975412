/** A backend as OTLP attributes describe it (`gen_ai.provider.name`, `server.address`). */
export interface BackendDescription {
  readonly provider: string
  readonly address: string | null
}

/** `gen_ai.provider.name` for each backend type (well-known values from the conventions where they exist). */
export const PROVIDER_NAME: Readonly<Record<string, string>> = {
  openai: 'openai',
  'openai-compatible': 'openai',
  'azure-openai': 'azure.ai.openai',
  anthropic: 'anthropic',
  gemini: 'gcp.gemini',
  bedrock: 'aws.bedrock',
  mock: 'sluice.mock',
}
