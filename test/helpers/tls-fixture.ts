import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { issueCerts } from '../../src/common/cert-authority.js';
import { certPaths } from '../../src/common/cert-paths.js';
import { loadTlsFiles, type TransportSecurity } from '../../src/common/transport-security.js';
import type { PeerIdentity } from '../../src/common/tls-identity.js';

// A CA for one test file, made by the same code as `gridckpt certs init`,
// in a temp dir: certificates are issued on demand, as the test needs them.

export interface TestCa {
  /** The temp dir the CA lives in, removed by remove(): a test may keep its services' data there too. */
  root: string;
  /** Where the CA and the certificates are. */
  dir: string;
  /** The --tls-* flags of a process holding who's certificate (issued if new). */
  flags(who: PeerIdentity): Promise<string[]>;
  /** What a client holding who's certificate dials with. */
  security(who: PeerIdentity): Promise<TransportSecurity>;
  remove(): Promise<void>;
}

export async function makeTestCa(prefix = 'ca'): Promise<TestCa> {
  const dir = await mkdtemp(join(tmpdir(), `gridckpt-${prefix}-`));
  const certs = join(dir, 'certs');
  const issue = async (who: PeerIdentity) => {
    await issueCerts(certs, [who], { hosts: [], days: 1, nowMs: Date.now() });
    return certPaths(certs, who);
  };
  return {
    root: dir,
    dir: certs,
    async flags(who) {
      const p = await issue(who);
      return ['--tls-cert', p.cert, '--tls-key', p.key, '--tls-ca', p.ca];
    },
    async security(who) {
      return loadTlsFiles(await issue(who));
    },
    remove: () => rm(dir, { recursive: true, force: true }),
  };
}
