// Who a certificate says its holder is. Each certificate gridckpt issues
// carries one URI SAN, spiffe://gridckpt/<role>/<id> (and CN=<id> for people
// reading it): SAN URIs are where X.509 puts machine identities today (SPIFFE
// uses them), Node's TLS socket hands them over parsed, and a URI holds the
// role and the id in one value that cannot be split across two fields.

export const ROLES = ['grid', 'cluster', 'agent', 'operator'] as const;
export type Role = (typeof ROLES)[number];

export interface PeerIdentity {
  role: Role;
  id: string;
}

const TRUST_DOMAIN = 'gridckpt';
/** The id alphabet is checkName's, so an identity is also a valid node, cluster or grid id. */
const URI_PATTERN = /^spiffe:\/\/gridckpt\/(grid|cluster|agent|operator)\/([A-Za-z0-9][A-Za-z0-9._-]{0,62})$/;

export function identityUri(who: PeerIdentity): string {
  return `spiffe://${TRUST_DOMAIN}/${who.role}/${who.id}`;
}

/**
 * The identity in a certificate's subjectAltName as Node formats it
 * ("URI:spiffe://…, DNS:localhost, IP Address:127.0.0.1"); null unless it
 * holds exactly one gridckpt URI. Node quotes a value holding a comma or a
 * quote, and such a value never matches the pattern, so no SAN can smuggle a
 * second identity into the list.
 */
export function identityFromSan(subjectAltName: string | undefined): PeerIdentity | null {
  if (!subjectAltName) return null;
  const found: PeerIdentity[] = [];
  for (const entry of subjectAltName.split(', ')) {
    if (!entry.startsWith('URI:')) continue;
    const m = URI_PATTERN.exec(entry.slice(4));
    if (m) found.push({ role: m[1] as Role, id: m[2]! });
    else if (entry.startsWith(`URI:spiffe://${TRUST_DOMAIN}/`)) return null;
  }
  return found.length === 1 ? found[0]! : null;
}

export function describeIdentity(who: PeerIdentity): string {
  return `${who.role} ${JSON.stringify(who.id)}`;
}
