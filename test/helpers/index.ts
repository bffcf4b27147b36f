// Every test helper, by name: `import { startApp, openSocket } from './helpers/index.js'`.
// Nothing here is a test file (tap includes only test/**/*.test.ts).
export { adapterContract, type ClusterFactory, type ContractNode } from './adapter-contract.js'
export {
  closeClient,
  closeSocket,
  cookieWebSocket,
  CLIENT_SECRET,
  inbox,
  nextEvent,
  onlySession,
  openInboxSocket,
  recordEvents,
  startServer,
  type GlueServer,
  type Inbox
} from './client.js'
export { NODE_TIMEOUT, redisAvailable, redisSkip, startRedis, uniquePrefix, type RedisServer } from './redis.js'
export {
  createLogCapture,
  claimsOf,
  firstSessionId,
  forgeCookie,
  SECRET,
  serverTransport,
  sessionIdOf,
  setEnv,
  startApp,
  startNodes,
  type LogCapture,
  type StartedApp,
  type StartOptions
} from './server.js'
export {
  clientFrame,
  closeCodeOf,
  cookiePair,
  dataOf,
  envelopesOf,
  eventually,
  freePort,
  openGlueSocket,
  openSocket,
  openTab,
  pauseReading,
  rawUpgrade,
  refusedHandshake,
  resumeQuery,
  resumeUrl,
  until,
  upgradeRequest,
  type GlueSocket,
  type OpenedSocket,
  type RawSocket,
  type Tab
} from './sockets.js'
export { startBuiltServer, type BuiltServer } from './built-server.js'
export { createBrowser, type Browser } from './browser.js'
export { MiB, mib, startTarget, withoutCoverage, type MemoryFigures, type Target, type TargetConfig } from './target.js'
