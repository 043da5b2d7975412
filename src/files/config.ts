import { z } from 'zod'
import { byteSize } from '../config/schema-units.ts'

/** OpenAI's own cap on one uploaded file (Files API reference: "individual files can be up to 512 MB"). */
export const DEFAULT_MAX_UPLOAD_BYTES = 512 * 1024 * 1024

const backendId = z.string().min(1)

/**
 * The `files:` section: which backend serves `/v1/files` and `/v1/batches` (an OpenAI-style or Azure OpenAI
 * backend), per product when products use different ones, and the upload size limit. Without the section
 * those routes answer 404.
 */
export const filesSection = z.strictObject({
  /** The backend for consumers whose product names none in `products`. */
  backend: backendId.optional(),
  /** Product id → backend id. */
  products: z.record(z.string(), backendId).default({}),
  /** Largest upload accepted (declared or streamed): 413 `request_too_large` past it. */
  maxUploadBytes: byteSize.default(DEFAULT_MAX_UPLOAD_BYTES),
  /** Largest JSON body of a batch creation. */
  maxJsonBytes: byteSize.default(1024 * 1024),
}).optional()
export type FilesConfig = NonNullable<z.infer<typeof filesSection>>

/** Backend types that speak OpenAI's Files and Batch APIs. */
export const FILES_BACKEND_TYPES: ReadonlySet<string> = new Set(['openai', 'azure-openai', 'openai-compatible', 'mock', 'vllm'])

type Report = (path: (string | number)[], message: string) => void

export function checkFilesReferences(files: FilesConfig | undefined, backends: ReadonlyMap<string, { type: string }>, products: ReadonlySet<string>, report: Report): void {
  if (!files) return
  const check = (id: string, path: (string | number)[]) => {
    const b = backends.get(id)
    if (!b) report(path, `unknown backend "${id}"`)
    else if (!FILES_BACKEND_TYPES.has(b.type)) report(path, `backend "${id}" (${b.type}) does not serve the Files and Batch APIs (use ${[...FILES_BACKEND_TYPES].join(', ')})`)
  }
  if (files.backend !== undefined) check(files.backend, ['files', 'backend'])
  for (const [product, id] of Object.entries(files.products)) {
    if (!products.has(product)) report(['files', 'products', product], `unknown product "${product}"`)
    check(id, ['files', 'products', product])
  }
  if (files.backend === undefined && Object.keys(files.products).length === 0) report(['files'], 'files needs a backend (or products: { <product>: <backend> })')
}
