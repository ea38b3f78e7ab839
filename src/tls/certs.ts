import { generateKeyPairSync, randomBytes } from "node:crypto";
import { ipFamily } from "../model/address.js";
import forge from "node-forge";
import type { HostSpec } from "../model/cluster.js";
import type { HostTls } from "./material.js";

// X.509 with node-forge (Node's crypto cannot build or sign certificates); the RSA keys come from Node's
// crypto, which is native and fast. Loaded only for inventories with replication.tls: node-forge alone
// took ~70 ms of every command's start.

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

export function newCa(cluster: string): { cert: string; key: string } {
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
  return names.map((n) => (ipFamily(n) ? { type: 7, ip: n } : { type: 2, value: n }));
}

export function issue(h: HostSpec, ca: { cert: string; key: string }): HostTls {
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
export function stillGood(h: HostSpec, tls: HostTls, caPem: string): boolean {
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
