import 'reflect-metadata';
import * as x509 from '@peculiar/x509';
import { webcrypto } from 'node:crypto';
import { access, chmod, mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { isIP } from 'node:net';
import { join } from 'node:path';
import { identityUri, type PeerIdentity } from './tls-identity.js';
import { certPaths } from './cert-paths.js';

// A certificate authority for one grid, kept in a directory: ca.crt and
// ca.key, and per identity <role>-<id>.crt and <role>-<id>.key. Made with
// @peculiar/x509 over Node's own WebCrypto (no openssl binary, no native
// code, no install scripts). ECDSA P-256: fast to generate and verify, and
// every TLS stack takes it. The directory is 0700 and every key 0600.

const ALG = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' } as const;
const DAY_MS = 86_400_000;
const CA_DAYS = 3650;
/** Services are reached on these whatever --host adds: the local grid and the tests dial loopback. */
const LOOPBACK_NAMES = ['localhost', '127.0.0.1', '::1'];

// Node's WebCrypto is the standard one; only the DOM typings differ.
x509.cryptoProvider.set(webcrypto as unknown as Parameters<typeof x509.cryptoProvider.set>[0]);

type CryptoKey = webcrypto.CryptoKey;

export interface IssueOptions {
  /** Extra DNS names or IP addresses the services' certificates are valid for. */
  hosts: string[];
  days: number;
  /** now, as wall-clock ms (the caller reads the clock). */
  nowMs: number;
}

interface Ca {
  cert: x509.X509Certificate;
  key: CryptoKey;
}

/**
 * Makes the CA in dir unless one is there, then a certificate for every
 * identity that has none yet (so a rerun with more identities adds theirs).
 * Returns the identities it issued.
 */
export async function issueCerts(dir: string, identities: PeerIdentity[], o: IssueOptions): Promise<PeerIdentity[]> {
  await mkdir(dir, { recursive: true, mode: 0o700 });
  await chmod(dir, 0o700);
  const ca = (await exists(join(dir, 'ca.key'))) ? await loadCa(dir) : await createCa(dir, o.nowMs);
  const issued: PeerIdentity[] = [];
  for (const who of identities) {
    const paths = certPaths(dir, who);
    if (await exists(paths.cert)) continue;
    const keys = await webcrypto.subtle.generateKey(ALG, true, ['sign', 'verify']);
    const cert = await x509.X509CertificateGenerator.create({
      serialNumber: serial(),
      subject: `CN=${who.id}, O=gridckpt ${who.role}`,
      issuer: ca.cert.subject,
      notBefore: new Date(o.nowMs - 60_000),
      notAfter: new Date(o.nowMs + o.days * DAY_MS),
      signingKey: ca.key,
      publicKey: keys.publicKey,
      signingAlgorithm: ALG,
      extensions: [
        new x509.BasicConstraintsExtension(false, undefined, true),
        new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
        // Services are clients of one another too; an operator is only a client.
        new x509.ExtendedKeyUsageExtension(who.role === 'operator' ? [x509.ExtendedKeyUsage.clientAuth] : [x509.ExtendedKeyUsage.serverAuth, x509.ExtendedKeyUsage.clientAuth]),
        new x509.SubjectAlternativeNameExtension([
          { type: 'url', value: identityUri(who) },
          ...(who.role === 'operator' ? [] : [...LOOPBACK_NAMES, ...o.hosts].map((h) => ({ type: isIP(h) ? 'ip' as const : 'dns' as const, value: h }))),
        ]),
      ],
    });
    // A key without its certificate is what a run killed in between left: it was never used.
    await rm(paths.key, { force: true });
    await writeSecret(paths.key, await pemKey(keys.privateKey));
    await writeFile(paths.cert, cert.toString('pem') + '\n', { mode: 0o644 });
    issued.push(who);
  }
  return issued;
}

async function createCa(dir: string, nowMs: number): Promise<Ca> {
  const keys = await webcrypto.subtle.generateKey(ALG, true, ['sign', 'verify']);
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: serial(),
    name: 'CN=gridckpt CA, O=gridckpt',
    notBefore: new Date(nowMs - 60_000),
    notAfter: new Date(nowMs + CA_DAYS * DAY_MS),
    keys,
    signingAlgorithm: ALG,
    extensions: [
      new x509.BasicConstraintsExtension(true, 0, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
    ],
  });
  await writeSecret(join(dir, 'ca.key'), await pemKey(keys.privateKey));
  await writeFile(join(dir, 'ca.crt'), cert.toString('pem') + '\n', { mode: 0o644 });
  return { cert, key: keys.privateKey };
}

async function loadCa(dir: string): Promise<Ca> {
  const cert = new x509.X509Certificate(await readFile(join(dir, 'ca.crt'), 'utf8'));
  const der = x509.PemConverter.decodeFirst(await readFile(join(dir, 'ca.key'), 'utf8'));
  const key = await webcrypto.subtle.importKey('pkcs8', der, { name: ALG.name, namedCurve: ALG.namedCurve }, false, ['sign']);
  return { cert, key };
}

async function pemKey(key: CryptoKey): Promise<string> {
  return x509.PemConverter.encode(await webcrypto.subtle.exportKey('pkcs8', key), 'PRIVATE KEY') + '\n';
}

/** 0600 from its first byte: the mode is set as the file is created, never after. */
async function writeSecret(path: string, text: string): Promise<void> {
  await writeFile(path, text, { mode: 0o600, flag: 'wx' });
}

function serial(): string {
  const b = webcrypto.getRandomValues(new Uint8Array(16));
  b[0] = b[0]! & 0x7f; // positive, as X.509 wants
  return Buffer.from(b).toString('hex');
}

async function exists(path: string): Promise<boolean> {
  return access(path).then(() => true, () => false);
}
