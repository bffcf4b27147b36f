import { EventEmitter } from 'node:events'
import type { IncomingMessage, Server } from 'node:http'
import type { Socket } from 'node:net'
import type { Duplex } from 'node:stream'
import type { WebSocketServer } from 'ws'

/**
 * Every upgrade request reaches @fastify/websocket through this gate, so the plugin sees how each
 * one ended. While the app closes, Fastify answers every new request with 503 before any hook runs;
 * on an upgrade request nothing ends the socket after that answer (@fastify/websocket ends refused
 * upgrades in an onResponse hook, which that answer skips), and `server.close()` would wait for it
 * forever: one browser reconnecting during a shutdown was enough to hang `app.close()`.
 */
export class UpgradeGate extends EventEmitter {
  readonly #upgraded = new WeakSet<IncomingMessage>()

  /** Listens on the app's server; hand the gate to @fastify/websocket as the server to listen on. */
  constructor (server: Server) {
    super()
    server.on('upgrade', (request: IncomingMessage, socket: Duplex, head: Buffer) => { this.#pass(request, socket as Socket, head) })
  }

  /** Notes the requests ws turned into websockets (every route's, not only the plugin's). */
  watch (websocketServer: WebSocketServer): void {
    websocketServer.on('connection', (_socket, request) => { this.#upgraded.add(request) })
  }

  #pass (request: IncomingMessage, socket: Socket, head: Buffer): void {
    const written = socket.bytesWritten
    this.emit('upgrade', request, socket, head)
    // Answered within the routing itself and not upgraded: nothing else will end this socket.
    if (socket.bytesWritten > written && !this.#upgraded.has(request)) socket.destroySoon()
  }
}
