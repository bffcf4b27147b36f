import { buildApp } from './app.js'

const port = Number(process.env.PORT ?? 9998)
const host = process.env.HOST ?? '127.0.0.1'

const app = await buildApp()
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => { app.close().then(() => process.exit(0), () => process.exit(1)) })
}
const address = await app.listen({ port, host })
app.log.info({ url: address }, 'example listening: open this URL in a browser')
