import { status, type ServiceError } from '@grpc/grpc-js';
import type { PeerCertificate } from 'node:tls';
import { describeIdentity, identityFromSan, type PeerIdentity, type Role } from './tls-identity.js';
import type { TransportSecurity } from './transport-security.js';

// Authorization of a gRPC service's calls, in one place: each service has a
// table (method -> the roles allowed, each with an optional check of the
// request, e.g. that the node id it names is the caller's own), and
// guardService wraps every handler with it before the server sees them. On
// an --insecure service there is no identity to check, and nothing is.

/** Allowed: null; refused: why. peerId is the id in the caller's certificate. */
export type RequestCheck<Req> = (req: Req, peerId: string) => string | null;
export type Grant<Req> = true | RequestCheck<Req>;

type RequestOf<H> = H extends (call: infer C, ...rest: never[]) => unknown ? (C extends { request: infer R } ? R : never) : never;

/** Every method of the service must appear: a new RPC is refused to all until someone decides who may call it. */
export type AccessTable<S> = { readonly [M in keyof S]: Readonly<Partial<Record<Role, Grant<RequestOf<S[M]>>>>> };

/** The request must name the caller itself (its certificate's id) in this field. */
export function asSelf<Req>(what: string, idOf: (req: Req) => string): RequestCheck<Req> {
  return (req, peerId) => {
    const named = idOf(req);
    return named === peerId ? null : `${what} ${JSON.stringify(named)} is not the caller's own (${JSON.stringify(peerId)})`;
  };
}

interface AuthCall {
  request?: unknown;
  getAuthContext?(): { sslPeerCertificate?: PeerCertificate } | null;
  emit?(event: 'error', err: Partial<ServiceError>): boolean;
}

export function peerIdentity(call: AuthCall): PeerIdentity | null {
  return identityFromSan(call.getAuthContext?.()?.sslPeerCertificate?.subjectaltname);
}

/** The refusal of a call, or null when it may go on. */
export function authorize<Req>(method: string, rules: Partial<Record<Role, Grant<Req>>>, peer: PeerIdentity | null, req: Req): Partial<ServiceError> | null {
  if (!peer) return { code: status.UNAUTHENTICATED, details: `${method}: the caller has no gridckpt client certificate` };
  const grant = rules[peer.role];
  if (grant === undefined) {
    const allowed = Object.keys(rules);
    return { code: status.PERMISSION_DENIED, details: `${method}: ${describeIdentity(peer)} may not call it (${allowed.length > 0 ? `only ${allowed.join(', ')}` : 'no role may'})` };
  }
  const why = grant === true ? null : grant(req, peer.id);
  return why === null ? null : { code: status.PERMISSION_DENIED, details: `${method}: refused to ${describeIdentity(peer)}: ${why}` };
}

type Handler = (call: AuthCall, callback?: (err: Partial<ServiceError> | null) => void) => void;

/** The handlers with the table applied to every call (unary: the callback gets the refusal; server streams: an error status). */
export function guardService<S extends object>(service: string, handlers: S, table: AccessTable<S>, sec: TransportSecurity): S {
  if (sec.kind === 'insecure') return handlers;
  const guarded: Record<string, Handler> = {};
  for (const [method, handler] of Object.entries(handlers) as Array<[string, Handler]>) {
    const rules = (table as Record<string, Partial<Record<Role, Grant<unknown>>>>)[method] ?? {};
    const name = `${service}.${method}`;
    guarded[method] = (call, callback) => {
      const refusal = authorize(name, rules, peerIdentity(call), call.request);
      if (refusal === null) return handler(call, callback);
      if (callback) callback(refusal);
      else call.emit?.('error', refusal);
    };
  }
  return guarded as S;
}
