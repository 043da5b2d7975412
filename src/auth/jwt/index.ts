import type { Snapshot } from '../../config/snapshot.ts'
import type { JwtIssuerConfig } from './config.ts'
import { JwtValidator } from './validator.ts'

export { looksLikeJwt } from './validator.ts'

/**
 * Holds the validator of the running `auth.jwt` configuration. A reload that leaves `auth.jwt` as it was
 * keeps the validator, and with it the fetched signing keys; a changed one builds a new validator.
 */
export class JwtIssuers {
  private current: { key: string; validator: JwtValidator } | null = null

  constructor(private readonly now: () => number, private readonly onJwksError?: (issuer: string, reason: string) => void) {}

  /** The validator for a snapshot, or null when it configures no issuer. */
  forSnapshot(snapshot: Snapshot): JwtValidator | null {
    const configs: readonly JwtIssuerConfig[] = snapshot.config.auth.jwt
    if (configs.length === 0) return null
    const key = JSON.stringify(configs)
    if (this.current?.key !== key) {
      const validator = new JwtValidator(configs, this.now, this.onJwksError)
      validator.warm()
      this.current = { key, validator }
    }
    return this.current.validator
  }
}
