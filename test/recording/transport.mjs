import { appendFileSync } from "node:fs";

function record(what) {
  appendFileSync(process.env.PGREP_RECORD, `${what}\n`);
}

export const sshStats = { connections: 0 };

export function openSocket(host, port) {
  record(`tcp ${host}:${port}`);
  return { sock: undefined, openedAt: Date.now(), error: new Error("the recording transport connects nowhere") };
}

export class SshTransport {
  static async connect(target) {
    record(`ssh ${target.name} ${target.user}@${target.host}:${target.port}`);
    throw new Error("the recording transport connects nowhere");
  }
}

export class LocalTransport {
  constructor(host) {
    record(`local ${host}`);
    this.host = host;
    this.loginUser = "recorder";
  }
  async run(argv) {
    record(`local run ${argv[0]}`);
    throw new Error("the recording transport runs nothing");
  }
  spawn(argv) {
    record(`local spawn ${argv[0]}`);
    throw new Error("the recording transport runs nothing");
  }
  async close() {}
}

export function execa(file) {
  record(`execa ${file}`);
  throw new Error("the recording transport runs nothing");
}
