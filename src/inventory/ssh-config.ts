import SSHConfig from "ssh-config";

// What an OpenSSH client configuration (~/.ssh/config) says for a host pgrep dials, read with the
// ssh-config package: Host patterns, first value wins. Only the options below are honoured; options
// that would weaken host-key checking, or reach a host some other way, are refused rather than ignored.

export interface SshConfigAnswer {
  hostName: string | undefined;
  user: string | undefined;
  port: number | undefined;
  identityFile: string | undefined;
  identitiesOnly: boolean;
  /** ProxyJump's hops, as written ("user@host:port"); empty for none. */
  proxyJump: string[];
  knownHostsFile: string | undefined;
  connectTimeout: number | undefined;
  /** Why this host's entry cannot be used as it is (each a sentence naming the option). */
  problems: string[];
}

export type ParsedSshConfig = ReturnType<typeof SSHConfig.parse>;

export function parseSshConfig(text: string): ParsedSshConfig {
  return SSHConfig.parse(text);
}

/** %h is the name being looked up, %% a percent sign (the tokens a HostName may hold). */
function expandTokens(v: string, alias: string): string {
  return v.replace(/%([h%])/g, (_m, t: string) => (t === "h" ? alias : "%"));
}

const first = (v: string | string[] | undefined): string | undefined => (Array.isArray(v) ? v[0] : v);

export function sshConfigFor(config: ParsedSshConfig | undefined, alias: string): SshConfigAnswer {
  const c = (config?.compute(alias) ?? {}) as Record<string, string | string[] | undefined>;
  const get = (k: string) => {
    const key = Object.keys(c).find((x) => x.toLowerCase() === k.toLowerCase());
    return key ? first(c[key]) : undefined;
  };
  const problems: string[] = [];
  const strict = get("StrictHostKeyChecking")?.toLowerCase();
  if (strict === "no" || strict === "off") problems.push("StrictHostKeyChecking no turns host-key checking off, which pgrep never does (for a new host, use --accept-new-host-keys once)");
  const known = get("UserKnownHostsFile")?.split(/\s+/)[0];
  if (known === "/dev/null") problems.push("UserKnownHostsFile /dev/null turns host-key checking off, which pgrep never does");
  if (get("ProxyCommand") && get("ProxyCommand")!.toLowerCase() !== "none") problems.push("ProxyCommand is not supported; reach the host with ProxyJump (or ssh.jump in the inventory)");
  const port = get("Port");
  if (port !== undefined && !/^\d+$/.test(port)) problems.push(`Port ${port} is not a number`);
  const timeout = get("ConnectTimeout");
  const jump = get("ProxyJump");
  return {
    hostName: get("HostName") ? expandTokens(get("HostName")!, alias) : undefined,
    user: get("User"),
    port: port && /^\d+$/.test(port) ? Number(port) : undefined,
    identityFile: get("IdentityFile"),
    identitiesOnly: get("IdentitiesOnly")?.toLowerCase() === "yes",
    proxyJump: jump && jump.toLowerCase() !== "none" ? jump.split(",").map((s) => s.trim()).filter(Boolean) : [],
    knownHostsFile: known,
    connectTimeout: timeout && /^\d+$/.test(timeout) ? Number(timeout) : undefined,
    problems,
  };
}

/** "user@host:port", "host:port", "user@host" or "host" (also "[v6]:port"). */
export function parseHop(text: string): { user: string | undefined; host: string; port: number | undefined } | undefined {
  const m = /^(?:([^@\s]+)@)?(\[[^\]\s]+\]|[^@:\s[\]]+)(?::(\d{1,5}))?$/.exec(text.trim());
  if (!m) return undefined;
  return { user: m[1], host: m[2]!.replace(/^\[|\]$/g, ""), port: m[3] ? Number(m[3]) : undefined };
}
