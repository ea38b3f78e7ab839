import { createHash, createHmac, pbkdf2Sync, randomBytes, timingSafeEqual } from "node:crypto";

// pgrep sends PostgreSQL a SCRAM-SHA-256 verifier, never the password: the plaintext cannot end up in the
// server's log or pg_stat_activity. Same format as the server's own (RFC 5802/7677).

const ITERATIONS = 4096;

function keys(password: string, salt: Buffer, iterations: number) {
  // SASLprep is the identity for ASCII; NFKC covers the normalisation part for other passwords.
  const salted = pbkdf2Sync(Buffer.from(password.normalize("NFKC"), "utf8"), salt, iterations, 32, "sha256");
  const clientKey = createHmac("sha256", salted).update("Client Key").digest();
  return {
    storedKey: createHash("sha256").update(clientKey).digest(),
    serverKey: createHmac("sha256", salted).update("Server Key").digest(),
  };
}

export function scramVerifier(password: string, salt: Buffer = randomBytes(16), iterations = ITERATIONS): string {
  const { storedKey, serverKey } = keys(password, salt, iterations);
  return `SCRAM-SHA-256$${iterations}:${salt.toString("base64")}$${storedKey.toString("base64")}:${serverKey.toString("base64")}`;
}

/** True when a stored verifier (pg_authid.rolpassword) was made from this password. */
export function verifierMatches(stored: string | null | undefined, password: string): boolean {
  const m = /^SCRAM-SHA-256\$(\d+):([^$]+)\$([^:]+):(.+)$/.exec(stored ?? "");
  if (!m) return false;
  const { storedKey, serverKey } = keys(password, Buffer.from(m[2]!, "base64"), Number(m[1]));
  const a = Buffer.concat([storedKey, serverKey]);
  const b = Buffer.concat([Buffer.from(m[3]!, "base64"), Buffer.from(m[4]!, "base64")]);
  return a.length === b.length && timingSafeEqual(a, b);
}
