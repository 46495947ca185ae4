import { execFile } from 'node:child_process'
import { existsSync } from 'node:fs'
import { chmod, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { hostname, networkInterfaces, tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'

const run = promisify(execFile)

export interface ServerTls {
  /** The CA agents pin, as a file on this server (bootstrap.json and the install script say it). */
  readonly caCert: string
  readonly keyPem: string
  readonly certPem: string
}

/** A CA as PEM texts. */
export interface CaPem {
  readonly certPem: string
  readonly keyPem: string
}

const openssl = (args: string[]) =>
  run('openssl', args).catch((e: Error) => {
    throw new Error(`creating the TLS certificate failed (is openssl installed?): ${e.message}`, {
      cause: e,
    })
  })

const p256 = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes']

async function writeCa(keyFile: string, certFile: string): Promise<void> {
  await openssl([
    'req',
    '-x509',
    ...p256,
    '-keyout',
    keyFile,
    '-out',
    certFile,
    '-days',
    '3650',
    '-subj',
    '/CN=Palisade CA',
    '-addext',
    'basicConstraints=critical,CA:TRUE',
    '-addext',
    'keyUsage=critical,keyCertSign,cRLSign',
  ])
  await chmod(keyFile, 0o600)
}

/** A new CA, made in a private temporary directory that is removed at once. */
export async function makeCa(): Promise<CaPem> {
  const dir = await mkdtemp(join(tmpdir(), 'palisade-ca-'))
  try {
    await writeCa(join(dir, 'ca.key'), join(dir, 'ca.crt'))
    return {
      certPem: await readFile(join(dir, 'ca.crt'), 'utf8'),
      keyPem: await readFile(join(dir, 'ca.key'), 'utf8'),
    }
  } finally {
    await rm(dir, { recursive: true, force: true })
  }
}

/** The addresses and names a server certificate names: every address agents may reach it by. */
function subjectAltNames(listenHost: string): string {
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
  return [...[...ips].map((ip) => `IP:${ip}`), 'DNS:localhost', `DNS:${hostname()}`].join(',')
}

/** `server.key` and `server.crt` in the data dir, signed by the CA in `caCert`/`caKey`. */
async function issueServerCert(
  dataDir: string,
  listenHost: string,
  caCert: string,
  caKey: string,
): Promise<void> {
  const f = {
    key: join(dataDir, 'server.key'),
    csr: join(dataDir, 'server.csr'),
    cert: join(dataDir, 'server.crt'),
    ext: join(dataDir, 'server.ext'),
    serial: join(dataDir, 'ca.srl'),
  }
  await openssl(['req', ...p256, '-keyout', f.key, '-out', f.csr, '-subj', '/CN=palisade-server'])
  await chmod(f.key, 0o600)
  await writeFile(
    f.ext,
    `subjectAltName=${subjectAltNames(listenHost)}\nextendedKeyUsage=serverAuth\nbasicConstraints=CA:FALSE\n`,
  )
  await openssl([
    'x509',
    '-req',
    '-in',
    f.csr,
    '-CA',
    caCert,
    '-CAkey',
    caKey,
    '-CAserial',
    f.serial,
    '-CAcreateserial',
    '-out',
    f.cert,
    '-days',
    '825',
    '-extfile',
    f.ext,
  ])
  for (const tmp of [f.csr, f.ext, f.serial]) await rm(tmp, { force: true })
}

async function serverTls(dataDir: string): Promise<ServerTls> {
  return {
    caCert: join(dataDir, 'ca.crt'),
    keyPem: await readFile(join(dataDir, 'server.key'), 'utf8'),
    certPem: await readFile(join(dataDir, 'server.crt'), 'utf8'),
  }
}

/**
 * A CA and a server certificate in the data dir, made on first start with openssl: one server
 * alone. Agents pin the CA; the server certificate names every address the server listens on.
 */
export async function ensureTls(dataDir: string, listenHost: string): Promise<ServerTls> {
  const caKey = join(dataDir, 'ca.key')
  const caCert = join(dataDir, 'ca.crt')
  const have = ['server.crt', 'server.key', 'ca.crt'].every((f) => existsSync(join(dataDir, f)))
  if (!have) {
    await writeCa(caKey, caCert)
    await issueServerCert(dataDir, listenHost, caCert, caKey)
  }
  return serverTls(dataDir)
}

/**
 * This server's certificate, issued by the cluster's CA (shared by every server on the database)
 * for this server's own addresses: kept in the data dir, made again when the CA is another. The
 * CA's key is written only for the signing, to a private directory removed at once.
 */
export async function ensureTlsFromCa(
  dataDir: string,
  listenHost: string,
  ca: CaPem,
): Promise<ServerTls> {
  const caCert = join(dataDir, 'ca.crt')
  const same = existsSync(caCert) && (await readFile(caCert, 'utf8')) === ca.certPem
  const have =
    same && existsSync(join(dataDir, 'server.crt')) && existsSync(join(dataDir, 'server.key'))
  if (!have) {
    await writeFile(caCert, ca.certPem)
    // A CA key of this server alone, from before it joined the cluster, signs nothing any more.
    await rm(join(dataDir, 'ca.key'), { force: true })
    const dir = await mkdtemp(join(dataDir, 'ca-'))
    try {
      await writeFile(join(dir, 'ca.key'), ca.keyPem, { mode: 0o600 })
      await issueServerCert(dataDir, listenHost, caCert, join(dir, 'ca.key'))
    } finally {
      await rm(dir, { recursive: true, force: true })
    }
  }
  return serverTls(dataDir)
}

/** Certificates the operator made (`--tls-cert`, `--tls-key`, `--tls-ca`): read as they are. */
export async function tlsFromFiles(files: {
  readonly cert: string
  readonly key: string
  readonly ca: string
}): Promise<ServerTls> {
  const read = (what: string, file: string) =>
    readFile(file, 'utf8').catch((e: Error) => {
      throw new Error(`cannot read the ${what} ${file}: ${e.message}`, { cause: e })
    })
  await read('CA certificate (--tls-ca)', files.ca)
  return {
    caCert: files.ca,
    keyPem: await read('server key (--tls-key)', files.key),
    certPem: await read('server certificate (--tls-cert)', files.cert),
  }
}
