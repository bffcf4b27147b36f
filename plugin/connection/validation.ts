import type { FastifyInstance, FastifySchema, FastifySchemaCompiler } from 'fastify'
import { invalid } from '../config/validate.js'

/** The outcome of checking client data against a schema: the value to hand on (defaults applied), or why it failed. */
export type CheckResult = { readonly ok: true, readonly value: unknown } | { readonly ok: false, readonly message: string }

/** Checks one client message or request's data; compiled once, at registration. */
export type DataCheck = (data: unknown) => CheckResult

/** The compiled schemas of the options; undefined where no schema was given. */
export interface DataChecks {
  readonly message: DataCheck | undefined
  readonly request: DataCheck | undefined
}

interface ValidationErrorLike { instancePath?: string, message?: string }

// Fastify's own wording for a failed body: `body/op must be string`; here the data is the message's.
function describeErrors (errors: readonly ValidationErrorLike[] | null | undefined): string {
  if (errors === null || errors === undefined || errors.length === 0) return 'data is invalid'
  return errors.map((error) => `data${error.instancePath ?? ''} ${error.message ?? 'is invalid'}`).join(', ')
}

function isThenable (value: unknown): boolean {
  return typeof (value as PromiseLike<unknown> | null)?.then === 'function'
}

/** Wraps a validator function in Fastify's contract: a boolean with `errors` (Ajv), or `{ error, value }`. */
function toCheck (validate: ReturnType<FastifySchemaCompiler<unknown>>): DataCheck {
  return (data) => {
    const result = validate(data)
    if (result === true) return { ok: true, value: data }
    if (result === false) return { ok: false, message: describeErrors(validate.errors) }
    // Messages are handed on in order, in the tick they arrive: a validator cannot make them wait.
    if (isThenable(result)) return { ok: false, message: 'asynchronous validation is not supported' }
    const { error, value } = result as { error?: Error | ValidationErrorLike[], value?: unknown }
    if (error === undefined) return { ok: true, value: 'value' in (result as object) ? value : data }
    return { ok: false, message: Array.isArray(error) ? describeErrors(error) : error.message }
  }
}

/**
 * The app's validator compiler: the one set with `setValidatorCompiler` (or already built for a
 * route), else the one Fastify would build by default, @fastify/ajv-compiler over the app's shared
 * schemas (`addSchema`). Imported only when a schema is given, so apps without one never load Ajv.
 */
async function validatorCompilerOf (fastify: FastifyInstance): Promise<FastifySchemaCompiler<unknown>> {
  const own = fastify.validatorCompiler as FastifySchemaCompiler<unknown> | undefined
  if (own !== undefined) return own
  const { AjvCompiler } = await import('@fastify/ajv-compiler')
  const build = AjvCompiler()(fastify.getSchemas() as Record<string, object>, { customOptions: {}, plugins: [] })
  return build as unknown as FastifySchemaCompiler<unknown>
}

/**
 * Compiles `messageSchema` and `requestSchema` once, with the app's validator compiler.
 * @throws FST_WSGLUE_INVALID_OPTION when the compiler refuses a schema (say, an unknown `$ref`).
 */
export async function compileDataChecks (
  fastify: FastifyInstance,
  schemas: { readonly path: string, readonly messageSchema: unknown, readonly requestSchema: unknown }
): Promise<DataChecks> {
  if (schemas.messageSchema === undefined && schemas.requestSchema === undefined) return { message: undefined, request: undefined }
  const compiler = await validatorCompilerOf(fastify)
  const compile = (option: string, schema: unknown): DataCheck | undefined => {
    if (schema === undefined) return undefined
    try {
      return toCheck(compiler({ schema: schema as FastifySchema, method: 'GET', url: schemas.path, httpPart: 'body' }))
    } catch (err) {
      throw invalid(option, `a JSON Schema the app's validator compiler accepts (${(err as Error).message})`, schema)
    }
  }
  return { message: compile('messageSchema', schemas.messageSchema), request: compile('requestSchema', schemas.requestSchema) }
}
