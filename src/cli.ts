#!/usr/bin/env node
import { Command, CommanderError, InvalidArgumentError, Option } from "commander";
import { EXIT, PgrepError } from "./errors.js";
import { packagePath } from "./paths.js";

// Commander wiring only. Commands are imported when they run, so `pgrep --help` loads no SSH code.
// This file is the one place that turns an error into a message and an exit code.

const DEMO = packagePath("inventories", "local.yml");
let debug = process.argv.includes("--debug");

function inventoryOption(): Option {
  return new Option("-i, --inventory <file>", "the cluster's inventory (default: the local demo, inventories/local.yml)");
}

function hostKeysOption(): Option {
  return new Option("--accept-new-host-keys", "record SSH host keys not yet in known_hosts (a changed key is always refused)").default(false);
}

/** A number option: anything else is a usage error (exit 2) naming the option, before anything is read. */
function numberArg(flag: string, min: number): (v: string) => number {
  return (v) => {
    const n = Number(v);
    if (v.trim() === "" || !Number.isFinite(n) || n < min) throw new InvalidArgumentError(`${flag} must be a number${min === 0 ? " ≥ 0" : ` ≥ ${min}`} (got '${v}')`);
    return n;
  };
}

function streamTimeoutOption(what: string): Option {
  return new Option("--stream-timeout <seconds>", `how long to wait for ${what} to stream`).argParser(numberArg("--stream-timeout", 1)).default(120);
}

function promoteTimeoutOption(): Option {
  return new Option("--promote-timeout <seconds>", "how long the promotion may take; then its request is withdrawn and nothing is promoted").argParser(numberArg("--promote-timeout", 1)).default(60);
}

function dryRunOption(): Option {
  return new Option("--dry-run", "print the plan, with a diff of every file it would write; change nothing").default(false);
}

function quietOption(): Option {
  return new Option("-q, --quiet", "print only the result (errors still go to stderr)").default(false);
}

function waitLockOption(): Option {
  return new Option("--wait-lock <seconds>", "when another pgrep command holds the cluster's lock, wait this long for it (default: exit 6 at once)")
    .argParser(numberArg("--wait-lock", 0))
    .default(0);
}

function maxLagOption(): Option {
  return new Option("--max-lag-bytes <n>", "refuse when the standby is further behind than this").argParser(numberArg("--max-lag-bytes", 0)).default(16 * 1024 * 1024);
}

function restartPrimaryOption(): Option {
  return new Option("--restart-primary <how>", "when the primary must restart: 'restart' it last, or 'switchover' to a streaming standby (or name one), so that writes pause only for a switchover").default("restart");
}

function inventoryPath(v: string | undefined): string {
  if (v) return v;
  process.stderr.write(`Using the local demo inventory ${DEMO} (pass --inventory FILE for your own cluster).\n`);
  return DEMO;
}

async function output(quiet = false) {
  const { consoleOutput } = await import("./output.js");
  return consoleOutput(quiet);
}

const program = new Command()
  .name("pgrep")
  .description("Provision PostgreSQL streaming replication: a primary and hot standbys, from one inventory file.")
  .version("0.1.0")
  .option("--debug", "show stack traces for errors")
  .showHelpAfterError("(run with --help for usage)")
  .exitOverride();

program
  .command("setup")
  .description("create or converge the cluster: primary settings, replication role, pg_hba, standbys cloned and streaming")
  .addOption(inventoryOption())
  .addOption(dryRunOption())
  .option("--force <host...>", "replace these standbys' data even if it is not a standby of this cluster", [])
  .addOption(hostKeysOption())
  .addOption(streamTimeoutOption("each standby"))
  .addOption(restartPrimaryOption())
  .option("--reset-auto-conf", "reset what postgresql.auto.conf (ALTER SYSTEM, pg_basebackup -R) sets over pgrep's settings", false)
  .addOption(maxLagOption().hideHelp())
  .addOption(waitLockOption())
  .addOption(quietOption())
  .addHelpText("after", "\nExamples:\n  pgrep setup                       # the local demo: a primary and two standbys on this machine\n  pgrep setup -i prod.yml --dry-run     # what would change, with diffs; touches nothing; exit 7 when something differs\n  pgrep setup -i prod.yml --dry-run -q >/dev/null || alert   # cron: anything edited by hand, ALTER SYSTEM, a pending restart\n  pgrep setup -i prod.yml\n  pgrep setup -i prod.yml --restart-primary switchover   # a setting needs a restart: standbys one by one, then a switchover\n  pgrep setup -i prod.yml --reset-auto-conf   # also reset what ALTER SYSTEM or pg_basebackup -R set elsewhere than the inventory says\n  pgrep setup -i prod.yml --force db3   # re-clone db3 even though its data belongs to another cluster")
  .action(async (o) => {
    const { setupCommand } = await import("./commands/setup.js");
    return finish(setupCommand({ inventory: inventoryPath(o.inventory), waitLock: o.waitLock, dryRun: o.dryRun, force: o.force, acceptNewHostKeys: o.acceptNewHostKeys, streamTimeoutSeconds: o.streamTimeout, restartPrimary: o.restartPrimary, resetAutoConf: o.resetAutoConf, maxLagBytes: o.maxLagBytes }, await output(o.quiet)));
  });

program
  .command("restart [hosts...]")
  .description("restart PostgreSQL on the hosts (default: all), one at a time: standbys first, each streaming again before the next, the primary last")
  .addOption(inventoryOption())
  .addOption(restartPrimaryOption())
  .addOption(maxLagOption())
  .addOption(dryRunOption())
  .addOption(hostKeysOption())
  .addOption(streamTimeoutOption("each restarted standby"))
  .addOption(waitLockOption())
  .addOption(quietOption())
  .addHelpText("after", "\nExamples:\n  pgrep restart -i prod.yml --dry-run        # the order, touches nothing\n  pgrep restart -i prod.yml                  # after a minor-version package upgrade\n  pgrep restart db3 -i prod.yml\n  pgrep restart -i prod.yml --restart-primary switchover   # writes pause only for a switchover")
  .action(async (hosts: string[], o) => {
    const { restartCommand } = await import("./commands/restart.js");
    return finish(restartCommand({ inventory: inventoryPath(o.inventory), hosts, restartPrimary: o.restartPrimary, waitLock: o.waitLock, dryRun: o.dryRun, acceptNewHostKeys: o.acceptNewHostKeys, streamTimeoutSeconds: o.streamTimeout, maxLagBytes: o.maxLagBytes }, await output(o.quiet)));
  });

program
  .command("status")
  .description("show each host's role, state, timeline, LSN and lag, and what differs from the inventory; exit 5 when the cluster is degraded, 7 when it is healthy but differs")
  .addOption(inventoryOption())
  .option("--json", "machine-readable output", false)
  .addOption(hostKeysOption())
  .addHelpText("after", "\nExamples:\n  pgrep status -i prod.yml\n  pgrep status -i prod.yml --json | jq '.hosts[] | {name, state, lagBytes, differs}'\n  pgrep status -i prod.yml >/dev/null; [ $? -eq 7 ] && echo 'a file edited by hand, ALTER SYSTEM, or a pending restart'")
  .action(async (o) => {
    const { statusCommand } = await import("./commands/status.js");
    return finish(statusCommand({ inventory: inventoryPath(o.inventory), json: o.json, acceptNewHostKeys: o.acceptNewHostKeys }, await output()));
  });

program
  .command("wait [hosts...]")
  .description("return when the standbys (default: all) stream within the lag limits; fail with the reason on timeout")
  .addOption(inventoryOption())
  .option("--max-lag-bytes <n>", "how far behind a standby may be, in bytes", numberArg("--max-lag-bytes", 0), 1024 * 1024)
  .option("--max-lag-seconds <s>", "how far behind a standby may be, in seconds of replay", numberArg("--max-lag-seconds", 0), 10)
  .option("--timeout <seconds>", "give up after this long (exit 5)", numberArg("--timeout", 1), 600)
  .addOption(hostKeysOption())
  .addHelpText("after", "\nExamples:\n  pgrep wait -i prod.yml                     # every standby\n  pgrep wait db2 -i prod.yml --max-lag-bytes 0 --timeout 60")
  .action(async (hosts: string[], o) => {
    const { waitCommand } = await import("./commands/wait.js");
    return finish(
      waitCommand(
        { inventory: inventoryPath(o.inventory), hosts, maxLagBytes: o.maxLagBytes, maxLagSeconds: o.maxLagSeconds, timeoutSeconds: o.timeout, acceptNewHostKeys: o.acceptNewHostKeys },
        await output(),
      ),
    );
  });

/** What promote and failover share: how the old primary is dealt with, and the bounds of the role change. */
function promotionCommand(name: string, description: string, force: boolean): Command {
  const c = program
    .command(name)
    .description(description)
    .addOption(inventoryOption())
    .addOption(new Option("--fence", "the primary is up: stop it cleanly first (nothing it acknowledged is lost)").default(false).conflicts("oldPrimaryIsDown"))
    .option("--old-primary-is-down", "the primary cannot be reached and you have made sure it is down", false)
    .addOption(maxLagOption());
  if (force) c.option("--force", "promote even if another standby holds more WAL, it is behind, or the primary still accepts writes (two primaries!)", false);
  return c.addOption(dryRunOption()).addOption(hostKeysOption()).addOption(streamTimeoutOption("each standby")).addOption(promoteTimeoutOption()).addOption(waitLockOption()).addOption(quietOption());
}

/** The options both take, as their commands want them. */
function promotionArgs(o: Record<string, any>) {
  return { inventory: inventoryPath(o.inventory), waitLock: o.waitLock, fence: o.fence, oldPrimaryIsDown: o.oldPrimaryIsDown, maxLagBytes: o.maxLagBytes, dryRun: o.dryRun, acceptNewHostKeys: o.acceptNewHostKeys, streamTimeoutSeconds: o.streamTimeout, promoteTimeoutSeconds: o.promoteTimeout };
}

promotionCommand("promote <host>", "make a standby the primary; the other standbys follow it, and the inventory records it", true)
  .addHelpText("after", "\nExamples:\n  pgrep promote db2 -i prod.yml --fence --dry-run     # the steps and every file change, touching nothing\n  pgrep promote db2 -i prod.yml --fence               # db1 is up: stop it, then promote db2\n  pgrep promote db2 -i prod.yml --old-primary-is-down # db1 is gone\n  pgrep switchover db2 -i prod.yml                     # planned swap: db1 comes back as a standby")
  .action(async (host: string, o) => {
    const { promoteCommand } = await import("./commands/promote.js");
    return finish(promoteCommand({ ...promotionArgs(o), target: host, force: o.force }, await output(o.quiet)));
  });

promotionCommand("failover", "the primary is lost or must go: compare the standbys, print the candidates, promote the one that received the most WAL; the others follow", false)
  .addHelpText("after", "\nExamples:\n  pgrep failover -i prod.yml --old-primary-is-down --dry-run   # the candidates and the plan; touches nothing\n  pgrep failover -i prod.yml --old-primary-is-down             # db1 is gone: the standby with the most WAL takes over\n  pgrep failover -i prod.yml                                   # db1's PostgreSQL crashed, its host is up: what it wrote is salvaged\n  pgrep failover -i prod.yml --fence                           # db1 is up but must go")
  .action(async (o) => {
    const { failoverCommand } = await import("./commands/failover.js");
    return finish(failoverCommand(promotionArgs(o), await output(o.quiet)));
  });

program
  .command("rejoin <host>")
  .description("bring a former primary back as a standby of the current primary (pg_rewind)")
  .addOption(inventoryOption())
  .option("--allow-reclone", "copy the whole data directory when pg_rewind cannot be used", false)
  .addOption(dryRunOption())
  .addOption(hostKeysOption())
  .addOption(streamTimeoutOption("it"))
  .addOption(waitLockOption())
  .addOption(quietOption())
  .addHelpText("after", "\nExamples:\n  pgrep rejoin db1 -i prod.yml --dry-run\n  pgrep rejoin db1 -i prod.yml     # after pgrep promote db2")
  .action(async (host: string, o) => {
    const { rejoinCommand } = await import("./commands/rejoin.js");
    return finish(rejoinCommand({ inventory: inventoryPath(o.inventory), waitLock: o.waitLock, host, allowReclone: o.allowReclone, dryRun: o.dryRun, acceptNewHostKeys: o.acceptNewHostKeys, streamTimeoutSeconds: o.streamTimeout }, await output(o.quiet)));
  });

program
  .command("switchover <host>")
  .description("planned, lossless swap: the primary stops cleanly, <host> takes over, the old primary follows it")
  .addOption(inventoryOption())
  .addOption(maxLagOption())
  .addOption(dryRunOption())
  .addOption(hostKeysOption())
  .addOption(streamTimeoutOption("each standby"))
  .addOption(promoteTimeoutOption())
  .addOption(waitLockOption())
  .addOption(quietOption())
  .addHelpText("after", "\nExamples:\n  pgrep switchover db2 -i prod.yml --dry-run\n  pgrep switchover db2 -i prod.yml")
  .action(async (host: string, o) => {
    const { switchoverCommand } = await import("./commands/switchover.js");
    return finish(switchoverCommand({ inventory: inventoryPath(o.inventory), waitLock: o.waitLock, target: host, maxLagBytes: o.maxLagBytes, dryRun: o.dryRun, acceptNewHostKeys: o.acceptNewHostKeys, streamTimeoutSeconds: o.streamTimeout, promoteTimeoutSeconds: o.promoteTimeout }, await output(o.quiet)));
  });

program
  .command("init")
  .description("write an inventory from what the hosts have (PostgreSQL majors, layout, clusters already there), dialled with your SSH settings; changes nothing on the hosts")
  .requiredOption("--primary <host>", "the host that is (or will be) the primary, as you reach it (a name in ~/.ssh/config works)")
  .option("--standby <host>", "a standby host; repeat for each", (v: string, all: string[]) => [...all, v], [] as string[])
  .option("-o, --out <file>", "where the inventory goes", "inventory.yml")
  .option("--name <cluster>", "the cluster's name (default: the primary's name)")
  .option("--ssh-user <user>", "log in as this user (default: ~/.ssh/config's, else root); not root: passwordless sudo")
  .option("--identity-file <file>", "the SSH key (default: ~/.ssh/config's, else the agent)")
  .option("--known-hosts <file>", "known_hosts to check host keys against (default ~/.ssh/known_hosts)")
  .option("--ssh-config <file>", "an OpenSSH client configuration to read instead of ~/.ssh/config")
  .option("--force", "replace the output file if it exists", false)
  .addOption(hostKeysOption())
  .addOption(quietOption())
  .addHelpText("after", "\nExamples:\n  pgrep init --primary db1 --standby db2 --standby db3 -o prod.yml\n  pgrep init --primary db1.example.com --standby db2.example.com --ssh-user deploy -o prod.yml   # then: pgrep setup -i prod.yml --dry-run")
  .action(async (o) => {
    const { initCommand } = await import("./commands/init.js");
    return finish(initCommand({ primary: o.primary, standbys: o.standby, out: o.out, name: o.name, force: o.force, acceptNewHostKeys: o.acceptNewHostKeys, ssh: { user: o.sshUser, identityFile: o.identityFile, knownHosts: o.knownHosts, configFile: o.sshConfig } }, await output(o.quiet)));
  });

program
  .command("upgrade")
  .description("upgrade the whole cluster to a newer PostgreSQL major in place: pg_upgrade --link on the primary, the standbys by rsync of hard links (never copied again), checked first")
  .addOption(inventoryOption())
  .requiredOption("--major <n>", "the PostgreSQL major to upgrade to", numberArg("--major", 1))
  .option("--check", "only check, on every host, what the upgrade needs; exit 4 when anything is missing", false)
  .addOption(new Option("--dry-run", "check, then print the procedure; change nothing").default(false))
  .addOption(hostKeysOption())
  .addOption(streamTimeoutOption("each standby"))
  .addOption(waitLockOption())
  .addOption(quietOption())
  .addHelpText("after", "\nExamples:\n  pgrep upgrade -i prod.yml --major 15 --check   # what is missing, on every host; touches nothing\n  pgrep upgrade -i prod.yml --major 15 --dry-run\n  pgrep upgrade -i prod.yml --major 15")
  .action(async (o) => {
    const { upgradeCommand } = await import("./commands/upgrade.js");
    return finish(upgradeCommand({ inventory: inventoryPath(o.inventory), major: o.major, check: o.check, dryRun: o.dryRun, waitLock: o.waitLock, acceptNewHostKeys: o.acceptNewHostKeys, streamTimeoutSeconds: o.streamTimeout }, await output(o.quiet)));
  });

program
  .command("migrate")
  .description("move the cluster onto the hosts of another inventory (a newer major) by logical replication: start, then --cutover with every row checked, --rollback, --finish")
  .addOption(inventoryOption())
  .requiredOption("--to <file>", "the new cluster's inventory (other hosts; the same or a newer major)")
  .option("--cutover", "writes paused on the old primary, everything applied and every table checked, then the new primary takes writes and replicates back", false)
  .option("--rollback", "after a cut-over: back to the old primary, with everything written on the new one", false)
  .option("--finish", "after a cut-over: end the way back and remove what the migration made; the old cluster stays read-only", false)
  .addOption(dryRunOption())
  .addOption(new Option("--check <when>", "when the cut-over (or rollback) checks every row: in-pause, while writes are refused; or after, on snapshots of both sides taken in the pause, for a pause that does not grow with the data").choices(["in-pause", "after"]).default("in-pause"))
  .option("--sync-timeout <seconds>", "how long the first copy of every table may take", numberArg("--sync-timeout", 1), 3600)
  .addOption(streamTimeoutOption("the other side to apply the last write"))
  .addOption(hostKeysOption())
  .addOption(waitLockOption())
  .addOption(quietOption())
  .addHelpText("after", "\nExamples:\n  pgrep migrate -i old.yml --to new.yml --dry-run   # the checks and the steps; touches nothing\n  pgrep migrate -i old.yml --to new.yml             # set up new.yml's hosts, copy and replicate\n  pgrep migrate -i old.yml --to new.yml --cutover\n  pgrep migrate -i old.yml --to new.yml --rollback")
  .action(async (o) => {
    const { migrateCommand } = await import("./commands/migrate.js");
    return finish(
      migrateCommand(
        { inventory: inventoryPath(o.inventory), to: o.to, cutover: o.cutover, rollback: o.rollback, finish: o.finish, dryRun: o.dryRun, waitLock: o.waitLock, acceptNewHostKeys: o.acceptNewHostKeys, syncTimeoutSeconds: o.syncTimeout, streamTimeoutSeconds: o.streamTimeout, check: o.check },
        await output(o.quiet),
      ),
    );
  });

program
  .command("unfollow <host>")
  .description("a standby leaves the cluster and becomes the primary of its own (a copy for analytics, staging, a risky migration), with its own inventory")
  .addOption(inventoryOption())
  .option("--name <cluster>", "the new cluster's name (default: the host's name)")
  .option("--out <file>", "where the new cluster's inventory goes (default: <name>.yml beside this inventory)")
  .addOption(dryRunOption())
  .addOption(hostKeysOption())
  .addOption(streamTimeoutOption("each standby"))
  .addOption(waitLockOption())
  .addOption(quietOption())
  .addHelpText("after", "\nExamples:\n  pgrep unfollow db3 -i prod.yml --dry-run\n  pgrep unfollow db3 -i prod.yml --name analytics   # writes analytics.yml beside prod.yml\n  pgrep status -i analytics.yml")
  .action(async (host: string, o) => {
    const { unfollowCommand } = await import("./commands/unfollow.js");
    return finish(unfollowCommand({ inventory: inventoryPath(o.inventory), host, name: o.name, out: o.out, waitLock: o.waitLock, dryRun: o.dryRun, acceptNewHostKeys: o.acceptNewHostKeys, streamTimeoutSeconds: o.streamTimeout }, await output(o.quiet)));
  });

program
  .command("app-config")
  .description("print how applications connect: writes to the primary, reads from the standbys (reads only the inventory)")
  .addOption(inventoryOption())
  .addOption(new Option("--format <format>", "rails (database.yml), rails-initializer (reads that respect lag), makara, octopus (shards.yml), env (URLs), uri (libpq multi-host)").choices(["rails", "rails-initializer", "makara", "octopus", "env", "uri"]).makeOptionMandatory())
  .option("--user <name>", "the application's database role (default: the inventory's only application role, else app)")
  .option("--database <name>", "the application's database (default: the inventory's database for that role, else app)")
  .option("--password-env <var>", "the environment variable that holds the application's password (default: the role's in the inventory, else DATABASE_PASSWORD)")
  .option("--with-secrets", "write the password itself (from the role's source in the inventory, or --password-env) instead of a reference to it", false)
  .option("--environment <name>", "the Rails environment the entries are for", "production")
  .option("--each-standby", "rails: also one replica entry per standby", false)
  .addOption(new Option("--max-lag-seconds <n>", "a standby further behind serves no reads (default: applications.max_lag_seconds, 10)").argParser(numberArg("--max-lag-seconds", 0.1)))
  .addOption(new Option("--sticky-seconds <n>", "after a write, the session reads from the primary this long").default(2).argParser(numberArg("--sticky-seconds", 0)))
  .option("--out <dir>", "rails: write <dir>/config/database.yml and <dir>/config/initializers/pgrep_replica_reads.rb")
  .addHelpText(
    "after",
    "\nExamples:\n  pgrep app-config -i prod.yml --format rails --out .          # in the Rails application's directory\n  pgrep app-config -i prod.yml --format rails > config/database.yml\n  pgrep app-config -i prod.yml --format uri --user shop --database shop\n  pgrep app-config -i prod.yml --format env --with-secrets > .env",
  )
  .action(async (o) => {
    const { appConfigCommand } = await import("./commands/app-config.js");
    return finish(appConfigCommand({ ...o, inventory: inventoryPath(o.inventory) }, await output()));
  });

program
  .command("destroy")
  .description("stop and delete the clusters pgrep created for a local inventory (asks first)")
  .addOption(inventoryOption())
  .option("-y, --yes", "do not ask for confirmation", false)
  .addOption(dryRunOption())
  .addOption(waitLockOption())
  .addOption(quietOption())
  .addHelpText("after", "\nExamples:\n  pgrep destroy -i inventories/local.yml --dry-run\n  pgrep destroy -i inventories/local.yml --yes")
  .action(async (o) => {
    const { destroyCommand } = await import("./commands/destroy.js");
    return finish(destroyCommand({ inventory: inventoryPath(o.inventory), waitLock: o.waitLock, yes: o.yes, dryRun: o.dryRun }, await output(o.quiet)));
  });

async function finish(p: Promise<number>): Promise<void> {
  process.exitCode = await p;
}

function fail(e: unknown): never {
  if (e instanceof CommanderError) {
    process.exit(e.exitCode === 0 ? EXIT.ok : EXIT.usage);
  }
  if (e instanceof PgrepError) {
    // Red only on a terminal, and never with NO_COLOR.
    const red = process.stderr.isTTY && process.env.NO_COLOR === undefined && process.env.TERM !== "dumb";
    process.stderr.write(`${red ? "\x1b[31mpgrep:\x1b[39m" : "pgrep:"} ${e.message}\n`);
    if (e.hint) process.stderr.write(`hint: ${e.hint}\n`);
    if (debug && e.stack) process.stderr.write(`${e.stack}\n`);
    process.exit(e.exitCode);
  }
  const err = e as Error;
  process.stderr.write(`pgrep: internal error: ${err?.message ?? String(e)}\n`);
  if (debug && err?.stack) process.stderr.write(`${err.stack}\n`);
  else process.stderr.write("hint: run again with --debug for details, and report it\n");
  process.exit(EXIT.internal);
}

// An interrupt undoes what must not outlive pgrep (temporary keys, backup sessions), then exits 130.
for (const sig of ["SIGINT", "SIGTERM"] as const) {
  process.once(sig, () => {
    process.stderr.write(`pgrep: interrupted (${sig}); cleaning up…\n`);
    void import("./cleanup.js").then((c) => c.runInterruptCleanups()).finally(() => process.exit(130));
  });
}

// Whatever escapes (an error event nobody awaited) still ends as one line and an exit code.
process.on("uncaughtException", fail);
process.on("unhandledRejection", fail);
program.parseAsync(process.argv).catch(fail);
debug = debug || !!program.opts().debug;
