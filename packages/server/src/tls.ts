import { execFile } from 'node:child_process'
import { existsSync } from 'node:fs'
import { chmod, readFile, rm, writeFile } from 'node:fs/promises'
import { hostname, networkInterfaces } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'

const run = promisify(execFile)

export interface TlsFiles {
  readonly caCert: string
  readonly key: string
  readonly cert: string
}

/**
 * A CA and a server certificate in the data dir, made on first start with openssl. Agents pin
 * the CA; the server certificate names every address the server listens on.
 */
export async function ensureTls(
  dataDir: string,
  listenHost: string,
): Promise<TlsFiles & { keyPem: string; certPem: string }> {
  const f = {
    caKey: join(dataDir, 'ca.key'),
    caCert: join(dataDir, 'ca.crt'),
    key: join(dataDir, 'server.key'),
    csr: join(dataDir, 'server.csr'),
    cert: join(dataDir, 'server.crt'),
    ext: join(dataDir, 'server.ext'),
  }
  if (!existsSync(f.cert) || !existsSync(f.key) || !existsSync(f.caCert)) {
    const openssl = (args: string[]) =>
      run('openssl', args).catch((e: Error) => {
        throw new Error(
          `creating the TLS certificate failed (is openssl installed?): ${e.message}`,
          { cause: e },
        )
      })
    const wildcard = listenHost === '0.0.0.0' || listenHost === '::'
    // Listening everywhere: agents reach this machine by any of its addresses (as they are now;
    // an address added later needs a DNS name, or a certificate made again).
    const own = wildcard
      ? Object.values(networkInterfaces()).flatMap((list) =>
          (list ?? []).filter((a) => !a.internal && !a.scopeid).map((a) => a.address),
        )
      : []
    const ips = new Set([
      '127.0.0.1',
      '::1',
      ...(/^[\d.]+$|:/.test(listenHost) && !wildcard ? [listenHost] : []),
      ...own,
    ])
    const san = [...[...ips].map((ip) => `IP:${ip}`), 'DNS:localhost', `DNS:${hostname()}`].join(
      ',',
    )
    await openssl([
      'req',
      '-x509',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:P-256',
      '-nodes',
      '-keyout',
      f.caKey,
      '-out',
      f.caCert,
      '-days',
      '3650',
      '-subj',
      '/CN=Palisade CA',
      '-addext',
      'basicConstraints=critical,CA:TRUE',
      '-addext',
      'keyUsage=critical,keyCertSign,cRLSign',
    ])
    await openssl([
      'req',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:P-256',
      '-nodes',
      '-keyout',
      f.key,
      '-out',
      f.csr,
      '-subj',
      '/CN=palisade-server',
    ])
    await writeFile(
      f.ext,
      `subjectAltName=${san}\nextendedKeyUsage=serverAuth\nbasicConstraints=CA:FALSE\n`,
    )
    await openssl([
      'x509',
      '-req',
      '-in',
      f.csr,
      '-CA',
      f.caCert,
      '-CAkey',
      f.caKey,
      '-CAcreateserial',
      '-out',
      f.cert,
      '-days',
      '825',
      '-extfile',
      f.ext,
    ])
    for (const k of [f.caKey, f.key]) await chmod(k, 0o600)
    for (const tmp of [f.csr, f.ext, join(dataDir, 'ca.srl')]) await rm(tmp, { force: true })
  }
  return {
    caCert: f.caCert,
    key: f.key,
    cert: f.cert,
    keyPem: await readFile(f.key, 'utf8'),
    certPem: await readFile(f.cert, 'utf8'),
  }
}
