/** The part of a message that says who it is for (every ClusterMessage has this shape). */
export type Addressing =
  | { readonly kind: 'send', readonly sessionId: string }
  | { readonly kind: 'broadcast', readonly except: string | undefined }
  | { readonly kind: 'publish', readonly topic: string, readonly except: string | undefined }
  | { readonly kind: 'close' | 'subscribe' | 'unsubscribe' | 'expire' | 'rotate' | 'revoke' | 'revokeUser' | 'closeUser' }

/**
 * The one rule for who receives a message, used by live fan-out, by detached sessions coming back
 * and by replays from the cluster: a send reaches its session, a broadcast every session but
 * `except`, a publish every subscriber of its topic but `except`. Other kinds are not messages.
 */
export function receives (message: Addressing, sessionId: string, isSubscribed: (topic: string) => boolean): boolean {
  switch (message.kind) {
    case 'send': return message.sessionId === sessionId
    case 'broadcast': return message.except !== sessionId
    case 'publish': return message.except !== sessionId && isSubscribed(message.topic)
    default: return false
  }
}
