// Throwaway certificates for TLS tests, made with the openssl command at test time.
import { execFile } from "node:child_process";
import { mkdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { promisify } from "node:util";

const run = promisify(execFile);

/** A key and certificate, as files and as their PEM contents. */
export interface KeyPair {
  readonly keyFile: string;
  readonly certFile: string;
  readonly key: Buffer;
  readonly cert: Buffer;
}

/** Everything the TLS tests need. */
export interface TestCertificates {
  /** The CA that signs the server's and the good client's certificates. */
  readonly ca: KeyPair;
  /** A certificate for 127.0.0.1, ::1 and localhost, signed by `ca`. */
  readonly server: KeyPair;
  /** A client certificate signed by `ca`. */
  readonly client: KeyPair;
  /** Another CA, unknown to the server. */
  readonly otherCa: KeyPair;
  /** A client certificate signed by `otherCa`: must be refused. */
  readonly stranger: KeyPair;
}

const EC = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];

async function pair(dir: string, name: string): Promise<KeyPair> {
  const keyFile = join(dir, `${name}.key`);
  const certFile = join(dir, `${name}.crt`);
  return { keyFile, certFile, key: await readFile(keyFile), cert: await readFile(certFile) };
}

async function makeCa(dir: string, name: string): Promise<KeyPair> {
  await run("openssl", [
    "req",
    "-x509",
    ...EC,
    "-keyout",
    join(dir, `${name}.key`),
    "-out",
    join(dir, `${name}.crt`),
    "-subj",
    `/CN=confab test ${name}`,
    "-days",
    "2",
    "-addext",
    "basicConstraints=critical,CA:TRUE",
    "-addext",
    "keyUsage=critical,keyCertSign,cRLSign",
  ]);
  return pair(dir, name);
}

async function makeSigned(
  dir: string,
  name: string,
  ca: KeyPair,
  extensions: string,
  serial: number,
): Promise<KeyPair> {
  const csr = join(dir, `${name}.csr`);
  const ext = join(dir, `${name}.ext`);
  await writeFile(ext, extensions);
  await run("openssl", [
    "req",
    "-new",
    ...EC,
    "-keyout",
    join(dir, `${name}.key`),
    "-out",
    csr,
    "-subj",
    `/CN=confab test ${name}`,
  ]);
  await run("openssl", [
    "x509",
    "-req",
    "-in",
    csr,
    "-CA",
    ca.certFile,
    "-CAkey",
    ca.keyFile,
    "-set_serial",
    String(serial),
    "-out",
    join(dir, `${name}.crt`),
    "-days",
    "2",
    "-extfile",
    ext,
  ]);
  return pair(dir, name);
}

/** Makes a CA, a server certificate, a client certificate and a stranger's in `dir`. */
export async function makeTestCertificates(dir: string): Promise<TestCertificates> {
  await mkdir(dir, { recursive: true });
  const ca = await makeCa(dir, "ca");
  const otherCa = await makeCa(dir, "other-ca");
  const server = await makeSigned(
    dir,
    "server",
    ca,
    "subjectAltName=IP:127.0.0.1,IP:::1,DNS:localhost\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
    2,
  );
  const clientExt = "basicConstraints=CA:FALSE\nextendedKeyUsage=clientAuth\n";
  const client = await makeSigned(dir, "client", ca, clientExt, 3);
  const stranger = await makeSigned(dir, "stranger", otherCa, clientExt, 4);
  return { ca, server, client, otherCa, stranger };
}
