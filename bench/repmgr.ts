import type { Rig } from "../test/rig/rig.js";

// The peer an operator would pick instead of pgrep, set up the way its own quick-start guide does it
// (Debian's postgresql-15-repmgr): a superuser 'repmgr' with its own database, trust for it from the
// hosts' network in pg_hba.conf, a repmgr.conf per node. Only its timed commands are compared.

const BIN = "/usr/lib/postgresql/15/bin";
const DATA = "/var/lib/postgresql/15/main";
const CONF = "/etc/postgresql/15/main";
const asPostgres = (cmd: string) => `runuser -u postgres -- ${cmd}`;

function repmgrConf(nodeId: number, name: string): string {
  return [
    `node_id=${nodeId}`,
    `node_name='${name}'`,
    `conninfo='host=${name} user=repmgr dbname=repmgr connect_timeout=2'`,
    `data_directory='${DATA}'`,
    `pg_bindir='${BIN}'`,
    "service_start_command='pg_ctlcluster 15 main start'",
    "service_stop_command='pg_ctlcluster 15 main stop'",
    "service_restart_command='pg_ctlcluster 15 main restart'",
    "service_reload_command='pg_ctlcluster 15 main reload'",
    "service_promote_command='pg_ctlcluster 15 main promote'",
    "",
  ].join("\n");
}

async function writeConf(rig: Rig, host: string, nodeId: number): Promise<void> {
  await rig.sh(host, `cat > /etc/repmgr.conf <<'EOF'\n${repmgrConf(nodeId, host)}EOF\nchown postgres: /etc/repmgr.conf`);
}

/** Once, on the primary: the repmgr role and database, its pg_hba lines, and the primary registered. */
export async function repmgrPrimary(rig: Rig, primary: string): Promise<void> {
  await rig.psql(primary, "CREATE ROLE repmgr SUPERUSER LOGIN");
  await rig.psql(primary, "CREATE DATABASE repmgr OWNER repmgr");
  await rig.sh(primary, `printf 'host replication repmgr samenet trust\\nhost repmgr repmgr samenet trust\\n' >> ${CONF}/pg_hba.conf && pg_ctlcluster 15 main reload`);
  await writeConf(rig, primary, 1);
  await rig.sh(primary, asPostgres(`${BIN}/repmgr -f /etc/repmgr.conf primary register --force`));
}

/** The quick-start's postgresql.conf and pg_hba.conf lines, which on Debian live in /etc (a clone does not bring them). */
const NODE_CONFIG = [
  `printf "listen_addresses = '*'\\n" > ${CONF}/conf.d/repmgr.conf`,
  `printf 'host replication repmgr samenet trust\\nhost repmgr repmgr samenet trust\\n' >> ${CONF}/pg_hba.conf`,
].join(" && ");

/** Untimed: an empty Debian cluster (its /etc configuration in place) and the node's repmgr.conf. */
export async function repmgrStandbyReady(rig: Rig, host: string, nodeId: number): Promise<void> {
  await rig.sh(host, `pg_dropcluster --stop 15 main >/dev/null 2>&1; rm -rf ${DATA}; pg_createcluster 15 main >/dev/null && rm -rf ${DATA}/* && ${NODE_CONFIG}`);
  await writeConf(rig, host, nodeId);
}

/** Timed: repmgr's own steps to add a standby, until it streams (as pgrep's setup and the baseline end). */
export function repmgrAddStandby(rig: Rig, host: string, primary: string): Promise<string> {
  return rig.sh(
    host,
    [
      asPostgres(`${BIN}/repmgr -h ${primary} -U repmgr -d repmgr -f /etc/repmgr.conf standby clone --fast-checkpoint -F`),
      "pg_ctlcluster 15 main start",
      asPostgres(`${BIN}/repmgr -f /etc/repmgr.conf standby register -F`),
      `until [ "$(${asPostgres(`psql -XAtc "SELECT status FROM pg_stat_wal_receiver"`)})" = streaming ]; do sleep 0.05; done`,
    ].join(" && "),
  );
}

/** Timed: repmgr standby promote, the old primary stopped. */
export function repmgrPromote(rig: Rig, host: string): Promise<string> {
  return rig.sh(host, asPostgres(`${BIN}/repmgr -f /etc/repmgr.conf standby promote`));
}
