import type { GlueOptions, JsonSchema } from './options.js'

/**
 * The data type a schema describes, where the schema carries it as a type: TypeBox schemas do
 * (`Static<typeof schema>`), as does any schema typed `TypedSchema<T>`. Otherwise `unknown`.
 */
export type SchemaData<Schema> = Schema extends { readonly static: infer Data } ? Data : unknown

/** A JSON Schema typed with the data it describes, for schemas that do not carry it (say, json-schema-to-ts's `FromSchema`). */
export type TypedSchema<Data> = JsonSchema & { readonly static: Data }

/** What `onMessage` receives without a `messageSchema` (`string | Buffer`), or with one. */
export type MessageDataOf<Schema> = [Schema] extends [undefined] ? string | Buffer : SchemaData<Schema>

/** What `answerRequest` receives without a `requestSchema` (`unknown`), or with one. */
export type RequestDataOf<Schema> = [Schema] extends [undefined] ? unknown : SchemaData<Schema>

/** Plugin options whose `onMessage` and `answerRequest` are typed by `messageSchema` and `requestSchema`. */
export type SchemaTypedOptions<MessageSchema, RequestSchema> =
  Omit<GlueOptions<MessageDataOf<MessageSchema>, RequestDataOf<RequestSchema>>, 'messageSchema' | 'requestSchema'> & {
    messageSchema?: MessageSchema
    requestSchema?: RequestSchema
  }

/**
 * Types `onMessage` and `answerRequest` from `messageSchema` and `requestSchema` (TypeBox schemas,
 * or `TypedSchema<T>`), and returns the options unchanged, ready for `app.register(glue, options)`.
 * The plugin validates the data at run time, so the types hold.
 */
export function defineGlueOptions<
  const MessageSchema extends JsonSchema | undefined = undefined,
  const RequestSchema extends JsonSchema | undefined = undefined
> (options: SchemaTypedOptions<MessageSchema, RequestSchema>): GlueOptions {
  return options as GlueOptions
}
