import { createServer, type AddressInfo, type Server } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { KnownHosts } from "../../../src/transport/known-hosts.js";
import { openSocket, SshTransport, type OpenedSocket } from "../../../src/transport/ssh.js";

// The TCP connection is opened before ssh2 is loaded (it may fail before ssh2 is there to see it): what
// such a failure says, with real sockets on this machine.

const listen = (onConnection: (s: import("node:net").Socket) => void): Promise<Server> =>
  new Promise((resolve) => {
    const server = createServer(onConnection);
    server.listen(0, "127.0.0.1", () => resolve(server));
  });

const settled = (o: OpenedSocket) => new Promise<void>((resolve) => (o.sock.destroyed ? resolve() : o.sock.once("close", () => resolve())));

async function dial(port: number, opened: OpenedSocket): Promise<string> {
  const knownHosts = await KnownHosts.load(join(tmpdir(), "pgrep-no-such-known-hosts"));
  return SshTransport.connect({ name: "db1", host: "127.0.0.1", port, user: "deploy", knownHosts, acceptNewHostKeys: false, connectTimeoutMs: 3_000 }, opened).then(
    () => "connected",
    (e: Error) => e.message,
  );
}

describe("an SSH dial whose TCP connection ended before the handshake", () => {
  const servers: Server[] = [];
  afterAll(() => servers.forEach((s) => s.close()));

  it("a port that accepts and closes at once (a proxy before a host whose sshd is gone) is said as ssh2 says it", async () => {
    const server = await listen((s) => s.destroy());
    servers.push(server);
    const { port } = server.address() as AddressInfo;
    const opened = openSocket("127.0.0.1", port);
    // Wait until the socket has been closed, as happens when ssh2 is still loading.
    await settled(opened);
    expect(await dial(port, opened)).toBe(`db1: SSH connection to deploy@127.0.0.1:${port} failed: Connection lost before handshake`);
  });

  it("a refused connection is said to be refused", async () => {
    const server = await listen(() => {});
    const { port } = server.address() as AddressInfo;
    await new Promise((r) => server.close(r));
    const opened = openSocket("127.0.0.1", port);
    await settled(opened);
    expect(await dial(port, opened)).toBe(`db1: SSH connection refused by deploy@127.0.0.1:${port}`);
  });
});
