import { waitUntil } from "./wait.js";
import { execFileSync, spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { GenericContainer, Network, Wait, type StartedNetwork, type StartedTestContainer } from "testcontainers";

// Real hosts for integration tests: containers from the rig image on one network, each with its own sshd.
// The test process reaches them through ports published on the loopback interface; they reach each
// other by name, like hosts behind a bastion.

export const RIG_IMAGE = process.env.PGREP_RIG_IMAGE ?? "pgrep-rig:bookworm-pg15";
/** The same host with bullseye's PostgreSQL 13 beside bookworm's 15: two majors and pg_upgrade (test/rig/Dockerfile.upgrade). */
export const UPGRADE_IMAGE = process.env.PGREP_UPGRADE_IMAGE ?? "pgrep-rig:bookworm-pg13-15";

export interface RigHost {
  name: string;
  container: StartedTestContainer;
  sshHost: string;
  sshPort: number;
}

/** A trace line with its \\xNN strings made readable. */
function decodeHex(line: string): string {
  return line.replace(/(?:\\x[0-9a-f]{2})+/g, (m) => Buffer.from(m.replace(/\\x/g, ""), "hex").toString("utf8"));
}

/** Where in a line a secret was seen: the program, and the secret with what comes just before it. */
function around(line: string, secrets: string[]): string {
  const program = /execve\("([^"]*)"/.exec(line)?.[1] ?? line.slice(0, 60);
  const at = secrets.map((x) => ({ x, i: line.indexOf(x) })).find((m) => m.i >= 0);
  return at ? `${program}: …${line.slice(Math.max(0, at.i - 40), at.i + at.x.length)}…` : line.slice(0, 200);
}

/** Where a host's cluster lives, for a fingerprint. */
export interface ClusterAt {
  dataDir: string;
  port?: number;
  socketDir?: string;
  /** Directories listed with their entries' times (the configuration's, on Debian). */
  confDirs?: string[];
  /** The configuration files, as a shell glob (default: the data directory's *.conf). */
  confFiles?: string;
}

const DEBIAN_15: ClusterAt = {
  dataDir: "/var/lib/postgresql/15/main",
  confDirs: ["/etc/postgresql"],
  confFiles: "/etc/postgresql/15/main/*.conf /etc/postgresql/15/main/conf.d/*",
};

export class Rig {
  private constructor(
    readonly dir: string,
    readonly network: StartedNetwork,
    readonly hosts: RigHost[],
  ) {}

  get keyFile(): string {
    return join(this.dir, "id_ed25519");
  }
  get knownHostsFile(): string {
    return join(this.dir, "known_hosts");
  }

  /**
   * `mounts`: host directories made visible read-only in every host (e.g. PostgreSQL builds);
   * `capabilities`: given to every host (NET_ADMIN: a test takes a host's network down).
   */
  static async start(names: string[], mounts: { source: string; target: string }[] = [], tmpfs: Record<string, Record<string, string>> = {}, capabilities: string[] = [], image = RIG_IMAGE, hidden: string[] = []): Promise<Rig> {
    const dir = mkdtempSync(join(tmpdir(), "pgrep-rig-"));
    execFileSync("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-C", "pgrep-test", "-f", join(dir, "id_ed25519")]);
    const pub = readFileSync(join(dir, "id_ed25519.pub"), "utf8");
    const network = await new Network().start();
    const started: RigHost[] = [];
    try {
      await Promise.all(
        names.map(async (name) => {
          const base = new GenericContainer(image).withNetwork(network).withNetworkAliases(name).withHostname(name);
          // A hidden host publishes no port: this machine reaches it only through another host (a bastion).
          const container = await (hidden.includes(name) ? base : base.withExposedPorts(22))
            .withCopyContentToContainer([
              { content: pub, target: "/root/.ssh/authorized_keys", mode: 0o600 },
              // Root-owned and world-readable: sshd reads it as deploy, and StrictModes accepts root as owner.
              { content: pub, target: "/home/deploy/.ssh/authorized_keys", mode: 0o644 },
              // PostgreSQL's OS user may log in too (an inventory with ssh.user: postgres).
              { content: pub, target: "/var/lib/postgresql/.ssh/authorized_keys", mode: 0o644 },
            ])
            // SYS_PTRACE: the secrets watcher traces what runs under sshd; a traced setuid program (sudo)
            // keeps its privileges only when its tracer holds this capability.
            .withAddedCapabilities("SYS_PTRACE", ...capabilities)
            .withBindMounts(mounts.map((m) => ({ ...m, mode: "ro" as const })))
            // A size-limited filesystem (a small disk) where a test asks for one.
            .withTmpFs(tmpfs[name] ?? {})
            .withWaitStrategy(hidden.includes(name) ? Wait.forLogMessage(/Server listening on/) : Wait.forListeningPorts())
            .start();
          // Without a route out, Docker's DNS forwards names it does not know (a host removed from the
          // network) to a resolver it cannot reach and answers after ~10 s; a real network says "no such
          // name" at once. One second, one try, is closer to that.
          await container.exec(["sh", "-c", "echo 'options timeout:1 attempts:1' >> /etc/resolv.conf"]);
          started.push(hidden.includes(name) ? { name, container, sshHost: name, sshPort: 22 } : { name, container, sshHost: container.getHost(), sshPort: container.getMappedPort(22) });
        }),
      );
    } catch (e) {
      await Promise.allSettled(started.map((h) => h.container.stop()));
      await network.stop().catch(() => {});
      rmSync(dir, { recursive: true, force: true });
      throw e;
    }
    started.sort((a, b) => names.indexOf(a.name) - names.indexOf(b.name));
    const rig = new Rig(dir, network, started);
    await rig.writeKnownHosts();
    return rig;
  }

  /**
   * Hosts behind a bastion: `names` publish no port and their names resolve only inside the rig's
   * network, so every connection to them goes through `bastion`, the one host with a published port.
   */
  static startBehind(bastion: string, names: string[]): Promise<Rig> {
    return Rig.start([bastion, ...names], [], {}, [], RIG_IMAGE, names);
  }

  /** known_hosts from the keys the containers really have; host-key checking stays on. */
  async writeKnownHosts(): Promise<void> {
    const lines: string[] = [];
    for (const h of this.hosts) {
      const r = await h.container.exec(["sh", "-c", "cat /etc/ssh/ssh_host_*_key.pub"]);
      for (const l of r.output.split("\n").filter((x) => x.startsWith("ssh-") || x.startsWith("ecdsa-"))) {
        const [type, key] = l.split(" ");
        lines.push(`${h.sshPort === 22 ? h.sshHost : `[${h.sshHost}]:${h.sshPort}`} ${type} ${key}`);
      }
    }
    writeFileSync(this.knownHostsFile, lines.join("\n") + "\n", { mode: 0o600 });
  }

  host(name: string): RigHost {
    const h = this.hosts.find((x) => x.name === name);
    if (!h) throw new Error(`no rig host ${name}`);
    return h;
  }

  async sh(name: string, script: string): Promise<string> {
    const r = await this.host(name).container.exec(["sh", "-c", script]);
    if (r.exitCode !== 0) throw new Error(`${name}: '${script}' exited ${r.exitCode}: ${r.output}`);
    return r.output;
  }

  /** The host stops answering SSH (its sshd killed), returning once nothing listens on port 22. */
  async stopSshd(name: string): Promise<void> {
    await this.sh(name, "pkill -x sshd; for i in $(seq 1 50); do ss -Hltn 'sport = :22' | grep -q . || exit 0; sleep 0.1; done; exit 1");
  }

  /** sshd started again, returning once it listens (a test must not race its start). */
  async startSshd(name: string): Promise<void> {
    await this.sh(name, "/usr/sbin/sshd; for i in $(seq 1 50); do ss -Hltn 'sport = :22' | grep -q . && exit 0; sleep 0.1; done; exit 1");
  }

  /**
   * Everything a pgrep run could change on a host: pgrep's and PostgreSQL's files, which server processes
   * exist, its start time and role. Not the words a server rewrites by itself: a standby's startup and
   * walreceiver titles carry WAL positions and states ("waiting for" / "recovering", "streaming 0/…"), a
   * walsender's its client's port; autovacuum workers come and go. The Debian layout by default; `at` names
   * a generic-layout cluster (its configuration lives in its data directory).
   */
  fingerprint(name: string, ...files: string[]): Promise<string> {
    return this.fingerprintAt(name, DEBIAN_15, ...files);
  }

  fingerprintAt(name: string, at: ClusterAt, ...files: string[]): Promise<string> {
    const parent = at.dataDir.replace(/\/[^/]+$/, "");
    const socket = at.socketDir ?? "/var/run/postgresql";
    return this.sh(
      name,
      [
        // Not pgrep's lock directory (a command that refuses has taken the lock first), nor "." and ".." whose times
        // it moves when it is first made. The data directory by its entries' names: WAL and statistics move within it.
        `ls -lA -I .pgrep --time-style=+%s /var/lib/postgresql ${[...(at.confDirs ?? []), parent].join(" ")} 2>&1; ls ${at.dataDir} 2>&1`,
        `md5sum ${at.confFiles ?? `${at.dataDir}/*.conf`} /var/lib/postgresql/.pgpass ${files.join(" ")} 2>&1`,
        // The postmaster's whole command line; its children by what they are, but the WAL receiver: the server
        // itself ends it when its upstream goes and starts it again every few seconds, and its title changes
        // as it starts streaming. What a command could change about it shows in the files and the start time.
        "ps -o args= -u postgres | sed -nE 's#^postgres: [^:]+: (logger|checkpointer|background writer|walwriter|autovacuum launcher|logical replication launcher|stats collector|archiver|startup|walsender)( .*)?$#\\1#p; /^\\//p' | sort",
        `runuser -u postgres -- psql -h ${socket} -p ${at.port ?? 5432} -XAtc 'SELECT pg_postmaster_start_time(), pg_is_in_recovery()' 2>&1`,
        "true",
      ].join("; "),
    );
  }

  /** SSH logins a host's sshd has accepted so far (its log is the container's). */
  sshLogins(name: string): number {
    const r = spawnSync("docker", ["logs", this.host(name).container.getId()], { encoding: "utf8" });
    return (`${r.stdout}${r.stderr}`.match(/Accepted publickey/g) ?? []).length;
  }

  /**
   * Watches for any of the secrets in the arguments and environment of every program started under sshd on
   * the hosts from now until stopped (all that pgrep runs there), however short-lived: strace follows the
   * listening sshd's new sessions and records each execve in full (hex). On stop, also searches the server
   * logs. Returns where each was seen (none: []). The secrets reach the hosts in a 0600 file, so the
   * watcher's own arguments never hold them.
   */
  async watchForSecrets(names: string[], secrets: string[]): Promise<{ stop(): Promise<string[]> }> {
    const plain = secrets.map((x) => x.trim()).filter(Boolean);
    // The trace writes every byte of a string as \xNN.
    const hex = plain.map((x) => [...Buffer.from(x)].map((b) => `\\x${b.toString(16).padStart(2, "0")}`).join(""));
    await Promise.all(
      names.map(async (n) => {
        await this.host(n).container.copyContentToContainer([
          { content: `${plain.join("\n")}\n`, target: "/root/.pgrep-needles", mode: 0o600 },
          { content: `${hex.join("\n")}\n`, target: "/root/.pgrep-needles.hex", mode: 0o600 },
        ]);
        // Returns once strace holds the listening sshd (its TracerPid set): nothing started after is missed.
        await this.sh(
          n,
          "rm -f /tmp/.watch.trace; p=$(pgrep -o -x sshd); setsid strace -f -qq -xx -v -s 1048576 -e trace=execve -e signal=none -o /tmp/.watch.trace -p $p >/dev/null 2>&1 < /dev/null & " +
            "for i in $(seq 1 100); do [ \"$(awk '/^TracerPid:/ {print $2}' /proc/$p/status)\" != 0 ] && exit 0; sleep 0.05; done; echo 'strace did not attach to sshd' >&2; exit 1",
        );
      }),
    );
    return {
      stop: async () => {
        const hits = await Promise.all(
          names.map(async (n) => {
            // SIGINT: strace detaches from every process it follows, and flushes its record.
            const out = await this.sh(
              n,
              "pkill -INT -x strace; for i in $(seq 1 100); do pgrep -x strace >/dev/null || break; sleep 0.05; done; " +
                "grep -a -F -f /root/.pgrep-needles.hex /tmp/.watch.trace; " +
                "grep -r -l -a -F -f /root/.pgrep-needles /var/log/postgresql /var/lib/postgresql/15/main/log 2>/dev/null; rm -f /root/.pgrep-needles /root/.pgrep-needles.hex /tmp/.watch.trace; true",
            );
            return out.split("\n").filter(Boolean).map((l) => `${n}: ${around(decodeHex(l), plain)}`);
          }),
        );
        return hits.flat();
      },
    };
  }

  /**
   * The standby's WAL receiver frozen (SIGSTOP), so that it falls behind without anything on the network
   * changing; a commit of more WAL than socket buffers hold then stays out of its reach.
   */
  async holdReceiver(name: string): Promise<void> {
    await this.sh(name, "p=$(pgrep -f '[w]alreceiver'); [ -n \"$p\" ] && kill -STOP $p");
  }

  /** The WAL receiver thawed: it reads what its socket still holds, and goes on. */
  async releaseReceiver(name: string): Promise<void> {
    await this.sh(name, "kill -CONT $(pgrep -f '[w]alreceiver') 2>/dev/null; true");
  }

  /**
   * The host's network interface down (the host needs NET_ADMIN): every packet to and from it is dropped,
   * nothing is closed. Returns a function that brings it back (with its default route).
   */
  async netDown(name: string): Promise<() => Promise<void>> {
    // Every interface but lo: the host is on the rig's network and on Docker's bridge.
    const links = (await this.sh(name, "ls /sys/class/net")).split(/\s+/).filter((l) => l && l !== "lo");
    const route = (await this.sh(name, "ip route show default")).trim();
    await this.sh(name, links.map((l) => `ip link set ${l} down`).join("; "));
    return async () => {
      await this.sh(name, [...links.map((l) => `ip link set ${l} up`), route ? `ip route replace ${route}` : "true"].join("; "));
    };
  }

  /**
   * Every packet between two hosts on the rig's network dropped, both ways (a blackhole route on each),
   * nothing closed; SSH from this machine still reaches both. Returns a function that ends the cut.
   */
  async cutBetween(a: string, b: string): Promise<() => Promise<void>> {
    const ip = (n: string) => this.host(n).container.getIpAddress(this.network.getName());
    await Promise.all([this.sh(a, `ip route add blackhole ${ip(b)}/32`), this.sh(b, `ip route add blackhole ${ip(a)}/32`)]);
    return async () => {
      await Promise.all([this.sh(a, `ip route del blackhole ${ip(b)}/32`), this.sh(b, `ip route del blackhole ${ip(a)}/32`)]);
    };
  }

  /**
   * What the host sends on the rig's network limited to `rate` (tc's token bucket, e.g. "200mbit"; the
   * host needs NET_ADMIN). Limit both ends for a link between two hosts. Its SSH from this machine comes
   * over Docker's bridge and is left alone. tbf is used because it is in every kernel here; netem is not.
   * `null` takes the limit away.
   */
  async limitLink(name: string, rate: string | null): Promise<void> {
    const ip = this.host(name).container.getIpAddress(this.network.getName());
    const tc = rate ? `tc qdisc replace dev "$dev" root tbf rate ${rate} burst 256kb latency 50ms` : `tc qdisc del dev "$dev" root`;
    await this.sh(name, `dev=$(ip -o -4 addr show | awk '$4 ~ /^${ip.replaceAll(".", "\\.")}\\// {print $2}'); [ -n "$dev" ] && ${tc}`);
  }

  /** SQL on a host's cluster, as its postgres user over the local socket. */
  async psql(name: string, sql: string, port = 5432, socketDir = "/var/run/postgresql"): Promise<string> {
    const r = await this.host(name).container.exec(["runuser", "-u", "postgres", "--", "psql", "-X", "-A", "-t", "-h", socketDir, "-p", String(port), "-d", "postgres", "-c", sql]);
    if (r.exitCode !== 0) throw new Error(`${name}: psql exited ${r.exitCode}: ${r.output}`);
    return r.output.trim();
  }

  /** Polls `check` until it holds; a test waits on the condition itself, never on a sleep. */
  waitFor(what: string, check: () => Promise<boolean>, timeoutMs = 30_000): Promise<void> {
    return waitUntil(what, check, timeoutMs);
  }

  /** Bounded wait until `standby` has replayed up to `from`'s current WAL position. */
  async waitReplayed(from: string, standby: string, timeoutMs = 30_000, port = 5432, socketDir = "/var/run/postgresql"): Promise<void> {
    const target = await this.psql(from, "SELECT pg_current_wal_lsn()", port, socketDir);
    await waitUntil(`${standby} to replay ${target} from ${from}`, async () => (await this.psql(standby, `SELECT pg_last_wal_replay_lsn() >= '${target}'::pg_lsn`, port, socketDir)) === "t", timeoutMs);
  }

  /** An inventory for these hosts, debian layout; `extraTop` is YAML added at the top level. */
  inventory(opts: { primary: string; file?: string; extraTop?: string; sshUsers?: Record<string, string>; knownHosts?: string; listenAddresses?: string; settings?: string; appAddresses?: boolean; upstreams?: Record<string, string>; major?: number }): string {
    const hosts = this.hosts
      .map(
        (h) => `  - name: ${h.name}
    address: ${h.name}${opts.appAddresses ? `\n    app_address: ${h.container.getIpAddress(this.network.getName())}` : ""}
    role: ${h.name === opts.primary ? "primary" : "standby"}${opts.upstreams?.[h.name] ? `\n    upstream: ${opts.upstreams[h.name]}` : ""}
    ssh: { host: ${h.sshHost}, port: ${h.sshPort}${opts.sshUsers?.[h.name] ? `, user: ${opts.sshUsers[h.name]}` : ""} }`,
      )
      .join("\n");
    const text = `cluster: rig
postgres:
  major: ${opts.major ?? 15}
  layout: debian${opts.listenAddresses ? `\n  listen_addresses: '${opts.listenAddresses}'` : ""}${opts.settings ? `\n  settings: { ${opts.settings} }` : ""}
ssh:
  user: root
  identity_file: ${this.keyFile}
  known_hosts: ${opts.knownHosts ?? this.knownHostsFile}
${opts.extraTop ?? ""}
hosts:
${hosts}
`;
    const file = join(this.dir, opts.file ?? "rig.yml");
    writeFileSync(file, text);
    return file;
  }

  async stop(): Promise<void> {
    await Promise.allSettled(this.hosts.map((h) => h.container.stop({ remove: true, removeVolumes: true })));
    await this.network.stop().catch(() => {});
    rmSync(this.dir, { recursive: true, force: true });
  }
}
