import type { Operation } from '../core/context.ts'
import { OPERATION_PATH, splitBase, type Provider } from './types.ts'

/**
 * Azure OpenAI: the deployment is part of the path, the API version a query parameter, the key an
 * `api-key` header. The Responses API lives under `/openai/v1/` with the deployment as `model`.
 */
export const azureOpenai: Provider = {
  type: 'azure-openai',
  speaks: 'openai',
  operations: new Set<Operation>(['chat.completions', 'completions', 'embeddings', 'responses']),
  target(backend, operation, deployment, baseUrl) {
    const { origin, prefix } = splitBase(baseUrl)
    const headers: Record<string, string> = { ...backend.headers }
    if (backend.auth?.apiKey) headers['api-key'] = backend.auth.apiKey
    if (operation === 'responses') {
      return { origin, path: `${prefix}/openai/v1/responses`, headers }
    }
    const path = `${prefix}/openai/deployments/${encodeURIComponent(deployment)}${OPERATION_PATH[operation]}?api-version=${encodeURIComponent(backend.apiVersion)}`
    return { origin, path, headers }
  },
}
