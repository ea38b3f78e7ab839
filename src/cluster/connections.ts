import { debug } from "../debug.js";
import { UnreachableError } from "../errors.js";
import { KnownHosts } from "../transport/known-hosts.js";
import { openSocket, SshTransport } from "../transport/ssh.js";
import type { Transport } from "../transport/types.js";
import type { ClusterSpec, HostSpec } from "../model/cluster.js";

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
  private knownHosts: Promise<KnownHosts> | undefined;

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
    debug(`${host.name}: dialling ${c.user}@${c.host}:${c.port} (timeout ${c.connectTimeoutMs / 1000} s)`);
    // The TCP connection first: the host's sshd starts its session while known_hosts and ssh2 load.
    const sock = openSocket(c.host, c.port);
    this.knownHosts ??= KnownHosts.load(this.spec.knownHostsFile);
    try {
      const t = await SshTransport.connect({
        name: host.name,
        host: c.host,
        port: c.port,
        user: c.user,
        identityFile: c.identityFile,
        knownHosts: await this.knownHosts,
        acceptNewHostKeys: this.opts.acceptNewHostKeys,
        connectTimeoutMs: c.connectTimeoutMs,
      }, sock);
      debug(`${host.name}: connected in ${Date.now() - started} ms`);
      return t;
    } catch (e) {
      debug(`${host.name}: not connected after ${Date.now() - started} ms: ${(e as Error).message}`);
      if (e instanceof UnreachableError) throw e;
      throw new UnreachableError(host.name, (e as Error).message);
    }
  }

  /** Whether the host's connection is open (false also while it is still being dialled). */
  connected(name: string): boolean {
    return this.answered.get(name) === true;
  }

  async closeAll(): Promise<void> {
    const all = await Promise.allSettled(this.open.values());
    await Promise.all(all.map((r) => (r.status === "fulfilled" ? r.value.close() : undefined)));
  }
}
