import { debug } from "../debug.js";
import { UnreachableError } from "../errors.js";
import { KnownHosts } from "../transport/known-hosts.js";
import { openSocket, SshTransport, type OpenedSocket } from "../transport/ssh.js";
import type { Transport } from "../transport/types.js";
import type { ClusterSpec, HostSpec, SshHop } from "../model/cluster.js";

export interface ConnectOptions {
  acceptNewHostKeys: boolean;
}

/**
 * Opens one transport per host (in parallel) and keeps it for the whole run. A host that did not answer is
 * remembered as such: it is never dialled again in the same command.
 */
export class Connections {
  private readonly open = new Map<string, Promise<Transport>>();
  private readonly answered = new Map<string, boolean>();
  /** known_hosts files, each read once: the cluster's, and any a host's ~/.ssh/config entry names. */
  private readonly knownHosts = new Map<string, Promise<KnownHosts>>();
  /** Jump hosts, one connection each per run, shared by every host behind them (keyed by the path to them). */
  private readonly hops = new Map<string, Promise<SshTransport>>();

  constructor(
    private readonly spec: ClusterSpec,
    private readonly opts: ConnectOptions,
  ) {}

  get(host: HostSpec): Promise<Transport> {
    let t = this.open.get(host.name);
    if (!t) {
      t = this.connect(host);
      t.then(
        () => this.answered.set(host.name, true),
        () => this.answered.set(host.name, false), // and observed by whoever awaits it
      );
      this.open.set(host.name, t);
    }
    return t;
  }

  private async connect(host: HostSpec): Promise<Transport> {
    const c = host.connection;
    if (c.kind === "local") {
      // Loaded only when a host is this machine: execa alone takes longer to load than an SSH round trip.
      const { LocalTransport } = await import("../transport/local.js");
      return new LocalTransport(host.name);
    }
    const started = Date.now();
    const via = c.jumps.map((j) => `${j.user}@${j.host}:${j.port}`);
    debug(`${host.name}: dialling ${c.user}@${c.host}:${c.port}${via.length ? ` via ${via.join(" → ")}` : ""} (timeout ${c.connectTimeoutMs / 1000} s)`);
    try {
      // The TCP connection first: the host's sshd starts its session while known_hosts and ssh2 load.
      const sock = c.jumps.length ? undefined : openSocket(c.host, c.port);
      const knownHosts = this.knownHostsFile(c.knownHostsFile ?? this.spec.knownHostsFile);
      const opened: OpenedSocket = sock ?? (await (await this.hop(host, c.jumps)).forward(c.host, c.port, c.connectTimeoutMs));
      const t = await SshTransport.connect({
        name: host.name,
        host: c.host,
        port: c.port,
        user: c.user,
        identityFile: c.identityFile,
        identitiesOnly: c.identitiesOnly,
        knownHosts: await knownHosts,
        acceptNewHostKeys: this.opts.acceptNewHostKeys,
        connectTimeoutMs: c.connectTimeoutMs,
      }, opened);
      debug(`${host.name}: connected in ${Date.now() - started} ms`);
      return t;
    } catch (e) {
      debug(`${host.name}: not connected after ${Date.now() - started} ms: ${(e as Error).message}`);
      // A jump host's failure, said for the host behind it.
      if (e instanceof UnreachableError && e.host !== host.name) throw new UnreachableError(host.name, `through ${e.message}`, e.hint, e, e.down);
      if (e instanceof UnreachableError) throw e;
      throw new UnreachableError(host.name, (e as Error).message);
    }
  }

  private knownHostsFile(path: string): Promise<KnownHosts> {
    let k = this.knownHosts.get(path);
    if (!k) this.knownHosts.set(path, (k = KnownHosts.load(path)));
    return k;
  }

  /**
   * The connection to the last of `jumps`, through the ones before it: each hop's host key checked against
   * the cluster's known_hosts, like any host's. A hop that fails makes every host behind it unreachable.
   */
  private hop(host: HostSpec, jumps: SshHop[]): Promise<SshTransport> {
    const key = jumps.map((j) => `${j.user}@${j.host}:${j.port}`).join(" ");
    let p = this.hops.get(key);
    if (p) return p;
    const last = jumps.at(-1)!;
    const c = host.connection as Extract<HostSpec["connection"], { kind: "ssh" }>;
    p = (async () => {
      const opened = jumps.length > 1 ? await (await this.hop(host, jumps.slice(0, -1))).forward(last.host, last.port, c.connectTimeoutMs) : openSocket(last.host, last.port);
      const t = await SshTransport.connect({
        name: `jump host ${last.host}`,
        host: last.host,
        port: last.port,
        user: last.user,
        identityFile: last.identityFile,
        identitiesOnly: c.identitiesOnly,
        knownHosts: await this.knownHostsFile(this.spec.knownHostsFile),
        acceptNewHostKeys: this.opts.acceptNewHostKeys,
        connectTimeoutMs: c.connectTimeoutMs,
        hop: true,
      }, opened);
      debug(`jump host ${last.user}@${last.host}:${last.port}: connected`);
      return t;
    })();
    p.catch(() => {});
    this.hops.set(key, p);
    return p;
  }

  /** Whether the host's connection is open (false also while it is still being dialled). */
  connected(name: string): boolean {
    return this.answered.get(name) === true;
  }

  async closeAll(): Promise<void> {
    const all = await Promise.allSettled(this.open.values());
    await Promise.all(all.map((r) => (r.status === "fulfilled" ? r.value.close() : undefined)));
    // The hosts behind a jump host first, then the jump hosts, the nearest last.
    for (const p of [...this.hops.values()].reverse()) await p.then((t) => t.close(), () => undefined);
  }
}
