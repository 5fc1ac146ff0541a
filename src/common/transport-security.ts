import { readFile } from 'node:fs/promises';
import { X509Certificate } from 'node:crypto';
import { checkServerIdentity as tlsCheckServerIdentity, type PeerCertificate } from 'node:tls';
import { isIP } from 'node:net';
import { ChannelCredentials, ServerCredentials, credentials } from '@grpc/grpc-js';
import { invalidArgument } from './errors.js';
import { describeIdentity, identityFromSan, type PeerIdentity, type Role } from './tls-identity.js';

// How a process's gRPC links are secured: mutual TLS with certificates from
// files, or --insecure (plaintext, no authorization), which only loopback
// may use. Services check their callers with this (authz.ts); clients check
// that the server they dialed holds a certificate of the role they meant.

export interface TlsFiles {
  cert: string;
  key: string;
  ca: string;
}

export type TransportSecurity =
  | { kind: 'mtls'; ca: Buffer; cert: Buffer; key: Buffer; self: PeerIdentity }
  | { kind: 'insecure' };

export const INSECURE: TransportSecurity = { kind: 'insecure' };

/** Reads the three PEM files and the identity of the certificate; refuses a certificate without one. */
export async function loadTlsFiles(files: TlsFiles): Promise<TransportSecurity> {
  const read = async (flag: string, path: string) => {
    try {
      return await readFile(path);
    } catch (err) {
      throw invalidArgument(`cannot read ${flag} ${JSON.stringify(path)}: ${(err as Error).message}`);
    }
  };
  const [cert, key, ca] = [await read('--tls-cert', files.cert), await read('--tls-key', files.key), await read('--tls-ca', files.ca)];
  let parsed: X509Certificate;
  try {
    parsed = new X509Certificate(cert);
  } catch (err) {
    throw invalidArgument(`--tls-cert ${JSON.stringify(files.cert)} is not a PEM certificate: ${(err as Error).message}`);
  }
  const self = identityFromSan(parsed.subjectAltName);
  if (!self) {
    throw invalidArgument(`--tls-cert ${JSON.stringify(files.cert)} has no gridckpt identity (a SAN URI spiffe://gridckpt/<role>/<id>); make certificates with gridckpt certs init`);
  }
  return { kind: 'mtls', ca, cert, key, self };
}

/** A service's certificate must be of its own role and name its own id: a misplaced file is caught at start, not at the first call. */
export function checkOwnIdentity(sec: TransportSecurity, role: Role, id: string): void {
  if (sec.kind !== 'mtls') return;
  if (sec.self.role !== role || sec.self.id !== id) {
    throw invalidArgument(`--tls-cert is the certificate of ${describeIdentity(sec.self)}, but this is ${role} ${JSON.stringify(id)}`);
  }
}

/** 127.0.0.0/8, ::1 and localhost: the only hosts an --insecure service may listen on. */
export function isLoopbackHost(host: string): boolean {
  const h = host.startsWith('[') && host.endsWith(']') ? host.slice(1, -1) : host;
  if (h === 'localhost') return true;
  if (isIP(h) === 4) return h.startsWith('127.');
  if (isIP(h) === 6) return h === '::1' || h === '0:0:0:0:0:0:0:1' || /^::ffff:127\./i.test(h);
  return false;
}

/** Refuses --insecure on any non-loopback listen address: anyone who reaches it could start commands as this process's user. */
export function checkInsecureListen(sec: TransportSecurity, flag: string, listen: string): void {
  if (sec.kind !== 'insecure') return;
  const host = listen.slice(0, listen.lastIndexOf(':'));
  if (!isLoopbackHost(host)) {
    throw invalidArgument(`refusing --insecure on ${flag} ${listen}: ${host} is not a loopback address; give --tls-cert, --tls-key and --tls-ca to listen there`);
  }
}

/** mTLS: a client without a certificate from our CA is refused in the handshake. */
export function serverCredentials(sec: TransportSecurity): ServerCredentials {
  if (sec.kind === 'insecure') return ServerCredentials.createInsecure();
  return ServerCredentials.createSsl(sec.ca, [{ cert_chain: sec.cert, private_key: sec.key }], true);
}

/** Credentials to dial a server of `role` (and of id `id`, when given): its certificate must name the host dialed and be that. */
export function channelCredentials(sec: TransportSecurity, role: Role, id?: string): ChannelCredentials {
  if (sec.kind === 'insecure') return credentials.createInsecure();
  return credentials.createSsl(sec.ca, sec.key, sec.cert, {
    checkServerIdentity: (host: string, cert: PeerCertificate) => {
      const hostError = tlsCheckServerIdentity(host, cert);
      if (hostError) return hostError;
      const who = identityFromSan(cert.subjectaltname);
      if (who?.role !== role || (id !== undefined && who.id !== id)) {
        const meant = id === undefined ? `a ${role}` : describeIdentity({ role, id });
        return new Error(`the server at ${host} is ${who ? describeIdentity(who) : 'no gridckpt identity'}, not ${meant}`);
      }
      return undefined;
    },
  });
}
