import { buildChatApp } from './app.js'

const port = Number(process.env.PORT ?? 9997)
const host = process.env.HOST ?? '127.0.0.1'

const app = await buildChatApp()
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => { app.close().then(() => process.exit(0), () => process.exit(1)) })
}
const address = await app.listen({ port, host })
app.log.info({ url: address }, 'chat example listening: open this URL in two browsers')
