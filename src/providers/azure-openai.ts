import type { Operation } from '../core/context.ts'
import { OPERATION_PATH, splitBase, type Provider } from './types.ts'

/**
 * Azure OpenAI. The classic surface puts the deployment in the path and the API version in the query;
 * the v1 surface (`apiVersion: v1`, or `preview`) is OpenAI's own paths under `/openai/v1/` with the
 * deployment as `model`, and the Responses API lives there in either case. The key goes in `api-key`;
 * with Entra ID auth (managedIdentity, entra) a bearer token is added by the credentials instead.
 */
export const azureOpenai: Provider = {
  type: 'azure-openai',
  speaks: 'openai',
  // Azure OpenAI has no moderations or rerank endpoints (content filtering is built into its deployments).
  operations: new Set<Operation>(['chat.completions', 'completions', 'embeddings', 'responses', 'images.generations', 'images.edits', 'audio.transcriptions', 'audio.translations', 'audio.speech']),
  target(backend, operation, deployment, baseUrl) {
    const { origin, prefix } = splitBase(baseUrl)
    const headers: Record<string, string> = { ...backend.headers }
    if (backend.auth?.apiKey) headers['api-key'] = backend.auth.apiKey
    const version = backend.apiVersion
    if (version === 'v1' || version === 'preview') {
      const query = version === 'preview' ? '?api-version=preview' : ''
      return { origin, path: `${prefix}/openai/v1${OPERATION_PATH[operation]}${query}`, headers }
    }
    if (operation === 'responses') {
      return { origin, path: `${prefix}/openai/v1/responses`, headers }
    }
    const path = `${prefix}/openai/deployments/${encodeURIComponent(deployment)}${OPERATION_PATH[operation]}?api-version=${encodeURIComponent(version)}`
    return { origin, path, headers }
  },
}
