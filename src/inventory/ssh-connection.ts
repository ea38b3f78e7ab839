import { readFileSync } from "node:fs";
import type { Connection, SshHop } from "../model/cluster.js";
import type { Inventory } from "./schema.js";
import { parseHop, parseSshConfig, sshConfigFor, type ParsedSshConfig } from "./ssh-config.js";

// How pgrep dials a host over SSH: the inventory's values first, then what ~/.ssh/config says for the
// name it dials (as `ssh NAME` would read it), then pgrep's defaults.

type SshSettings = Inventory["ssh"];
type Path = (string | number)[];

export interface ResolveHelpers {
  fail(path: Path, message: string): void;
  /** A file on this machine pgrep will read, checked before any host is contacted. */
  localFile(p: string, key: Path): string;
  expand(p: string): string;
}

/** The OpenSSH client configuration the inventory asks for: ssh.config_file, else ~/.ssh/config if there. */
export function loadSshConfig(top: SshSettings, h: ResolveHelpers): { config: ParsedSshConfig | undefined; path: string | undefined } {
  const named = top.config_file;
  if (named === "none") return { config: undefined, path: undefined };
  const path = h.expand(named ?? "~/.ssh/config");
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (named) h.fail(["ssh", "config_file"], `cannot read ${path} (${code === "ENOENT" ? "no such file" : code})`);
    return { config: undefined, path: undefined };
  }
  try {
    return { config: parseSshConfig(text), path };
  } catch (e) {
    h.fail(named ? ["ssh", "config_file"] : ["ssh"], `${path}: ${(e as Error).message.split("\n")[0]}`);
    return { config: undefined, path: undefined };
  }
}

export function sshConnection(
  top: SshSettings,
  own: SshSettings | undefined,
  address: string,
  at: (...k: Path) => Path,
  cfg: { config: ParsedSshConfig | undefined; path: string | undefined },
  h: ResolveHelpers,
): Extract<Connection, { kind: "ssh" }> {
  const s = { ...top, ...own };
  const alias = s.host ?? address;
  const c = sshConfigFor(cfg.config, alias);
  const where = (key: string): Path => (own && (own as Record<string, unknown>)[key] !== undefined ? at("ssh", key) : ["ssh", key]);
  for (const p of c.problems) h.fail(own?.host ? at("ssh", "host") : at("address"), `${cfg.path}, for ${alias}: ${p}`);
  const identity = s.identity_file ? h.localFile(s.identity_file, where("identity_file")) : c.identityFile ? h.localFile(c.identityFile, at("address")) : undefined;
  const host = c.hostName ?? alias;
  const port = s.port ?? c.port ?? 22;
  const user = s.user ?? c.user ?? "root";
  const hops = s.jump ?? c.proxyJump;
  const jumps: SshHop[] = [];
  for (const text of hops) {
    const hop = parseHop(text);
    if (!hop) {
      h.fail(s.jump ? where("jump") : at("address"), `'${text}' is not a hop like user@bastion:22`);
      continue;
    }
    // A hop's name is looked up in the configuration too (its HostName, User, Port, key), as OpenSSH does.
    const hc = sshConfigFor(cfg.config, hop.host);
    for (const p of hc.problems) h.fail(s.jump ? where("jump") : at("address"), `${cfg.path}, for ${hop.host}: ${p}`);
    jumps.push({
      host: hc.hostName ?? hop.host,
      port: hop.port ?? hc.port ?? 22,
      user: hop.user ?? hc.user ?? top.user ?? "root",
      identityFile: hc.identityFile ? h.localFile(hc.identityFile, s.jump ? where("jump") : at("address")) : identity,
    });
  }
  return {
    kind: "ssh",
    host,
    port,
    user,
    identityFile: identity,
    // Without a separate dial address, the others reach sshd where pgrep does.
    peerPort: s.peer_port ?? (host === address && !jumps.length ? port : 22),
    // A few seconds (a LAN handshake takes well under one): a failover must not wait long on a host that froze.
    connectTimeoutMs: (s.connect_timeout ?? c.connectTimeout ?? 3) * 1000,
    jumps,
    knownHostsFile: top.known_hosts === undefined && c.knownHostsFile ? h.expand(c.knownHostsFile) : undefined,
    identitiesOnly: c.identitiesOnly,
  };
}
