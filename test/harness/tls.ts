import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

/** A certificate authority generated for one test run. */
export interface TestCa {
  certFile: string;
  keyFile: string;
  /** PEM of the CA certificate, for a client's `tls.ca`. */
  pem: string;
}

/** A server certificate and key, and the CA that signed it (what redis-server's TLS options need). */
export interface ServerCertificate {
  certFile: string;
  keyFile: string;
  caCertFile: string;
}

const EC_KEY = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];

/** A new CA (EC P-256, valid one day) made with the `openssl` CLI; files `<name>-ca.*` in `dir`. */
export function makeCa(dir: string, name: string): TestCa {
  const certFile = join(dir, `${name}-ca.crt`);
  const keyFile = join(dir, `${name}-ca.key`);
  openssl('req', '-x509', ...EC_KEY, '-keyout', keyFile, '-out', certFile, '-days', '1', '-subj', `/CN=${name} test CA`);
  return { certFile, keyFile, pem: readFileSync(certFile, 'utf8') };
}

/**
 * A server certificate signed by `ca` for `altNames` (subjectAltName entries, default
 * `DNS:localhost, IP:127.0.0.1`); files `<name>-server.*` in `dir`.
 */
export function makeServerCertificate(dir: string, name: string, ca: TestCa, altNames = ['DNS:localhost', 'IP:127.0.0.1']): ServerCertificate {
  const keyFile = join(dir, `${name}-server.key`);
  const csr = join(dir, `${name}-server.csr`);
  const certFile = join(dir, `${name}-server.crt`);
  const ext = join(dir, `${name}-server.ext`);
  openssl('req', '-new', ...EC_KEY, '-keyout', keyFile, '-out', csr, '-subj', `/CN=${name} test server`);
  writeFileSync(ext, `subjectAltName=${altNames.join(',')}\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=serverAuth\n`);
  openssl('x509', '-req', '-in', csr, '-CA', ca.certFile, '-CAkey', ca.keyFile, '-CAcreateserial', '-out', certFile, '-days', '1', '-extfile', ext);
  return { certFile, keyFile, caCertFile: ca.certFile };
}

function openssl(...args: string[]): void {
  try {
    execFileSync('openssl', args, { stdio: ['ignore', 'ignore', 'pipe'] });
  } catch (error) {
    const stderr = (error as { stderr?: Buffer }).stderr?.toString() ?? '';
    throw new Error(`openssl ${args[0]} failed: ${stderr || (error as Error).message}`);
  }
}
