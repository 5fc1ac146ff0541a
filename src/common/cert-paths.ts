import { join } from 'node:path';
import type { PeerIdentity } from './tls-identity.js';

// Where a certs directory (cert-authority.ts, `gridckpt certs init`) keeps
// each identity's files. Apart from the issuer so that a process that only
// reads certificates does not load the X.509 builder.

export interface CertPaths {
  cert: string;
  key: string;
  ca: string;
}

export function certPaths(dir: string, who: PeerIdentity): CertPaths {
  return { cert: join(dir, `${who.role}-${who.id}.crt`), key: join(dir, `${who.role}-${who.id}.key`), ca: join(dir, 'ca.crt') };
}
