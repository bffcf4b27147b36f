import { describe, FST_WSGLUE_INVALID_OPTION } from '../errors.js'

// Readers of raw option values: each returns the value or throws FST_WSGLUE_INVALID_OPTION naming
// the option, the rule and the value received.

/** The error for an invalid option. */
export function invalid (option: string, rule: string, value: unknown): Error {
  return new FST_WSGLUE_INVALID_OPTION(`expected \`${option}\` to be ${rule}, got ${describe(value)}`)
}

export function isPlainObject (value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}

export function readInteger (option: string, value: unknown, fallback: number, min: number, max = Number.MAX_SAFE_INTEGER): number {
  const result = value ?? fallback
  if (typeof result !== 'number' || !Number.isSafeInteger(result) || result < min || result > max) {
    throw invalid(option, max === Number.MAX_SAFE_INTEGER ? `an integer >= ${min}` : `an integer from ${min} to ${max}`, value)
  }
  return result
}

export function readBoolean (option: string, value: unknown, fallback: boolean): boolean {
  const result = value ?? fallback
  if (typeof result !== 'boolean') throw invalid(option, 'a boolean', value)
  return result
}

export function readOptionalString (option: string, value: unknown): string | undefined {
  if (value === undefined) return undefined
  if (typeof value !== 'string' || value === '') throw invalid(option, 'a non-empty string', value)
  return value
}

export function readHook<T> (option: string, value: unknown): T | undefined {
  if (value === undefined) return undefined
  if (typeof value !== 'function') throw invalid(option, 'a function', value)
  return value as T
}

export function readUrlPath (option: string, value: unknown, fallback: string): string {
  const result = value ?? fallback
  if (typeof result !== 'string' || !result.startsWith('/') || /[\s?#]/.test(result)) {
    throw invalid(option, 'a URL path starting with "/" (no spaces, query or fragment)', value)
  }
  return result
}
