import { Option, type Command } from 'commander';
import { status } from '@grpc/grpc-js';
import { checkInsecureListen, checkOwnIdentity, INSECURE, loadTlsFiles, type TransportSecurity } from '../common/transport-security.js';
import type { Role } from '../common/tls-identity.js';
import { UsageError } from './output.js';

// The security flags every gridckpt command takes (--tls-cert, --tls-key,
// --tls-ca or --insecure), read once before the command runs. A service
// needs one or the other; so does a client command, once it dials.

const FLAGS = ['--tls-cert', '--tls-key', '--tls-ca'] as const;
const NO_CERTS = 'give --tls-cert, --tls-key and --tls-ca (gridckpt certs init DIR makes them), or --insecure for plaintext on loopback';

interface SecurityFlags {
  tlsCert?: string;
  tlsKey?: string;
  tlsCa?: string;
  insecure?: boolean;
}

/** What the flags said: null until they were read, 'none' when no flag was given. */
let chosen: TransportSecurity | 'none' | null = null;

export function addSecurityOptions(program: Command): void {
  program
    .addOption(new Option('--tls-cert <file>', 'this process\'s certificate (PEM), for mutual TLS').env('GRIDCKPT_TLS_CERT'))
    .addOption(new Option('--tls-key <file>', 'its private key (PEM)').env('GRIDCKPT_TLS_KEY'))
    .addOption(new Option('--tls-ca <file>', 'the grid\'s CA certificate (PEM): peers must hold a certificate it signed').env('GRIDCKPT_TLS_CA'))
    .option('--insecure', 'no TLS and no authorization (loopback only)')
    .configureHelp({ showGlobalOptions: true })
    .hook('preAction', async (_program, action) => {
      // `gridckpt check` judges the files itself, one verdict each, rather than refusing to run (not `bank check`).
      if (action.name() === 'check' && action.parent === program) return;
      // An explicit --insecure wins over certificates named only in the environment.
      const fromCli = (k: string) => program.getOptionValueSource(k) === 'cli';
      chosen = await securityFrom(program.opts<SecurityFlags>(), fromCli);
    });
}

async function securityFrom(o: SecurityFlags, fromCli: (key: string) => boolean): Promise<TransportSecurity | 'none'> {
  const keys = ['tlsCert', 'tlsKey', 'tlsCa'] as const;
  if (o.insecure) {
    const clash = FLAGS.filter((_, i) => fromCli(keys[i]!));
    if (clash.length > 0) throw new UsageError(`--insecure and ${clash.join(', ')} exclude each other: give one or the other`);
    return INSECURE;
  }
  const given = keys.map((k) => o[k]);
  const count = given.filter((v) => v !== undefined).length;
  if (count === 0) return 'none';
  if (count < 3) throw new UsageError(`mutual TLS needs all of ${FLAGS.join(', ')}: missing ${FLAGS.filter((_, i) => given[i] === undefined).join(', ')}`);
  return loadTlsFiles({ cert: o.tlsCert!, key: o.tlsKey!, ca: o.tlsCa! });
}

/** A service's security: certificates of its own role and id, or --insecure on a loopback address only. */
export function serviceSecurity(role: Role, id: string, listenFlag: string, listen: string): TransportSecurity {
  const sec = flagsRead();
  if (sec === 'none') throw new UsageError(`refusing to serve ${listen} without TLS: ${NO_CERTS}`);
  checkInsecureListen(sec, listenFlag, listen);
  checkOwnIdentity(sec, role, id);
  return sec;
}

/** A client command's security (an operator's certificate, or --insecure). */
export function clientSecurity(): TransportSecurity {
  const sec = flagsRead();
  if (sec === 'none') throw new UsageError(`no client certificate: ${NO_CERTS}`);
  return sec;
}

function flagsRead(): TransportSecurity | 'none' {
  if (chosen === null) throw new Error('invariant broken: the security flags are read before any command runs (addSecurityOptions)');
  return chosen;
}

/** --insecure was given: `up` then runs its local grid in plaintext instead of making certificates. */
export function insecureChosen(): boolean {
  return flagsRead() === INSECURE;
}

/** A failed TLS handshake reaches a client only as UNAVAILABLE: say what to check. */
export function unavailableHint(code: number): string {
  if (code !== status.UNAVAILABLE || chosen === null || chosen === 'none') return '';
  return chosen.kind === 'mtls'
    ? ' (if the service is up: is it --insecure, or are its certificate and this one from different CAs, or does its certificate not name this host?)'
    : ' (if the service is up: it may require mutual TLS; give --tls-cert, --tls-key and --tls-ca)';
}

/**
 * grpc-js sends the host dialed as the TLS server name even when it is an
 * IP address (as 127.0.0.1 is here), and Node warns about that once per
 * process (DEP0123); the certificate is still checked against the IP.
 * The warning tells an operator nothing they can change, so it is dropped.
 */
export function muteIpServerNameWarning(): void {
  const emit = process.emitWarning.bind(process) as (...args: unknown[]) => void;
  process.emitWarning = ((...args: unknown[]) => {
    const [, typeOrOptions, code] = args;
    const c = typeof typeOrOptions === 'object' && typeOrOptions !== null ? (typeOrOptions as { code?: string }).code : code;
    if (c === 'DEP0123') return;
    emit(...args);
  }) as typeof process.emitWarning;
}
