import { appConfig, type AppFormat } from "../app-config/formats.js";
import { EXIT, InputError, type ExitCode } from "../errors.js";
import { loadCluster } from "../inventory/index.js";
import type { Output } from "../output.js";

export interface AppConfigCommandOptions {
  inventory: string;
  format: AppFormat;
  user: string;
  database: string;
  passwordEnv: string;
  withSecrets: boolean;
  environment: string;
  eachStandby: boolean;
}

/** Prints the application side of the cluster; reads only the inventory. */
export async function appConfigCommand(opts: AppConfigCommandOptions, out: Output): Promise<ExitCode> {
  const spec = await loadCluster(opts.inventory);
  let password: string | undefined;
  if (opts.withSecrets) {
    // Taken from the environment, never from the command line (where ps would show it).
    password = process.env[opts.passwordEnv];
    if (password === undefined || password === "")
      throw new InputError(`--with-secrets reads the application's password from $${opts.passwordEnv}, which is not set`, `export ${opts.passwordEnv}, or name another variable with --password-env`);
  }
  out.result(appConfig(spec, opts.format, { ...opts, password }));
  return EXIT.ok;
}
