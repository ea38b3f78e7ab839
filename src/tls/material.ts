import { createHash, generateKeyPairSync, randomBytes } from "node:crypto";
import { mkdir, readFile, writeFile } from "node:fs/promises";
import { isIP } from "node:net";
import { join } from "node:path";
import forge from "node-forge";
import type { ClusterSpec, HostSpec } from "../cluster/model.js";
import { InputError } from "../errors.js";

// Certificates for replication over TLS. node-forge builds and signs X.509 (Node's crypto cannot); the RSA
// keys come from Node's crypto, which is native and fast. Without a CA of the user's, pgrep's own lives in
// the state directory (key 0600) and issues each host a server certificate naming its address.

export interface HostTls {
  cert: string;
  key: string;
}

export interface TlsMaterial {
  sslmode: "verify-full" | "verify-ca";
  ca: string;
  hosts: Map<string, HostTls>;
}

/** A file's content hash, as observe reports it for the files on a host (the key never leaves this machine). */
export function sha256(text: string): string {
  return createHash("sha256").update(text).digest("hex");
}

const pki = forge.pki;
const DAY = 24 * 3600 * 1000;

function newKey(): { pem: string; forgeKey: forge.pki.rsa.PrivateKey } {
  const { privateKey } = generateKeyPairSync("rsa", { modulusLength: 2048, privateKeyEncoding: { type: "pkcs8", format: "pem" }, publicKeyEncoding: { type: "spki", format: "pem" } });
  return { pem: privateKey, forgeKey: pki.privateKeyFromPem(privateKey) as forge.pki.rsa.PrivateKey };
}

function publicOf(key: forge.pki.rsa.PrivateKey): forge.pki.rsa.PublicKey {
  return pki.setRsaPublicKey(key.n, key.e);
}

function certificate(subjectCn: string, days: number): forge.pki.Certificate {
  const c = pki.createCertificate();
  // Positive, 16 random bytes: unique per issue, so a re-issued certificate is never confused with the old.
  c.serialNumber = `01${randomBytes(15).toString("hex")}`;
  c.validity.notBefore = new Date(Date.now() - DAY);
  c.validity.notAfter = new Date(Date.now() + days * DAY);
  c.setSubject([{ name: "commonName", value: subjectCn }]);
  return c;
}

function newCa(cluster: string): { cert: string; key: string } {
  const k = newKey();
  const c = certificate(`pgrep CA for cluster ${cluster}`, 3650);
  c.publicKey = publicOf(k.forgeKey);
  c.setIssuer(c.subject.attributes);
  c.setExtensions([{ name: "basicConstraints", cA: true, critical: true }, { name: "keyUsage", keyCertSign: true, cRLSign: true, critical: true }, { name: "subjectKeyIdentifier" }]);
  c.sign(k.forgeKey, forge.md.sha256.create());
  return { cert: pki.certificateToPem(c), key: k.pem };
}

/** The names a host's certificate must carry: its address (what verify-full checks) and its name. */
function altNames(h: HostSpec): { type: number; value?: string; ip?: string }[] {
  const names = [...new Set([h.address, h.name])];
  return names.map((n) => (isIP(n) ? { type: 7, ip: n } : { type: 2, value: n }));
}

function issue(h: HostSpec, ca: { cert: string; key: string }): HostTls {
  const caCert = pki.certificateFromPem(ca.cert);
  const caKey = pki.privateKeyFromPem(ca.key) as forge.pki.rsa.PrivateKey;
  const k = newKey();
  const c = certificate(h.name, 825);
  c.publicKey = publicOf(k.forgeKey);
  c.setIssuer(caCert.subject.attributes);
  c.setExtensions([
    { name: "basicConstraints", cA: false },
    { name: "keyUsage", digitalSignature: true, keyEncipherment: true, critical: true },
    { name: "extKeyUsage", serverAuth: true, clientAuth: true },
    { name: "subjectAltName", altNames: altNames(h) },
  ]);
  c.sign(caKey, forge.md.sha256.create());
  return { cert: pki.certificateToPem(c), key: k.pem };
}

/** An issued certificate is kept while the CA signed it, it names the host's address and has 30 days left. */
function stillGood(h: HostSpec, tls: HostTls, caPem: string): boolean {
  try {
    const c = pki.certificateFromPem(tls.cert);
    if (!pki.certificateFromPem(caPem).verify(c)) return false;
    if (c.validity.notAfter.getTime() - Date.now() < 30 * DAY) return false;
    const san = c.getExtension("subjectAltName") as { altNames?: { value?: string; ip?: string }[] } | null;
    return !!san?.altNames?.some((a) => a.value === h.address || a.ip === h.address);
  } catch {
    return false;
  }
}

async function readText(path: string, what: string): Promise<string | undefined> {
  try {
    return await readFile(path, "utf8");
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === "ENOENT") return undefined;
    throw new InputError(`cannot read ${what} ${path} (${code ?? "error"})`);
  }
}

async function required(path: string, what: string): Promise<string> {
  const t = await readText(path, what);
  if (t === undefined) throw new InputError(`cannot read ${what} ${path} (no such file)`);
  return t;
}

async function keep(path: string, text: string, mode: number): Promise<void> {
  await writeFile(path, text, { mode });
}

/**
 * The CA and every host's certificate and key, for an inventory with replication.tls; undefined without.
 * `create`: issue what is missing (setup and role changes); otherwise only what exists is read.
 */
export async function loadTls(spec: ClusterSpec, create: boolean): Promise<TlsMaterial | undefined> {
  if (!spec.tls) return undefined;
  const dir = join(spec.stateDir, "tls");
  let ca: { cert: string; key: string | undefined };
  if (spec.tls.caCert) {
    ca = { cert: await required(spec.tls.caCert, "the CA certificate"), key: spec.tls.caKey ? await required(spec.tls.caKey, "the CA key") : undefined };
  } else {
    const cert = await readText(join(dir, "ca.crt"), "pgrep's CA certificate");
    const key = await readText(join(dir, "ca.key"), "pgrep's CA key");
    if (cert && key) ca = { cert, key };
    else {
      if (!create) throw new InputError(`no TLS certificates yet: ${join(dir, "ca.crt")} does not exist`, "run pgrep setup with this inventory first");
      ca = newCa(spec.name);
      await mkdir(dir, { recursive: true, mode: 0o700 });
      await keep(join(dir, "ca.key"), ca.key!, 0o600);
      await keep(join(dir, "ca.crt"), ca.cert, 0o644);
    }
  }
  const hosts = new Map<string, HostTls>();
  for (const h of spec.hosts) {
    if (h.tlsFiles) {
      hosts.set(h.name, { cert: await required(h.tlsFiles.cert, `${h.name}'s certificate`), key: await required(h.tlsFiles.key, `${h.name}'s key`) });
      continue;
    }
    const certPath = join(dir, `${h.name}.crt`);
    const keyPath = join(dir, `${h.name}.key`);
    const cert = await readText(certPath, `${h.name}'s certificate`);
    const key = await readText(keyPath, `${h.name}'s key`);
    if (cert && key && stillGood(h, { cert, key }, ca.cert)) {
      hosts.set(h.name, { cert, key });
      continue;
    }
    if (!ca.key) throw new InputError(`${h.name}: no certificate, and no CA key to issue one`, "give hosts[].tls: { cert, key }, or replication.tls.ca_key");
    if (!create) throw new InputError(`${h.name}: no current TLS certificate`, "run pgrep setup with this inventory first");
    const issued = issue(h, { cert: ca.cert, key: ca.key });
    await mkdir(dir, { recursive: true, mode: 0o700 });
    await keep(keyPath, issued.key, 0o600);
    await keep(certPath, issued.cert, 0o644);
    hosts.set(h.name, issued);
  }
  return { sslmode: spec.tls.sslmode, ca: ca.cert, hosts };
}
