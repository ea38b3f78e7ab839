// Wraps a command so that it runs as another OS user. Non-interactive: sudo never prompts (-n).
export function becomeArgv(loginUser: string, user: string | undefined, argv: readonly string[]): string[] {
  if (!user || user === loginUser) return [...argv];
  if (loginUser === "root") return ["runuser", "-u", user, "--", ...argv];
  if (user === "root") return ["sudo", "-n", "--", ...argv];
  return ["sudo", "-n", "-u", user, "--", ...argv];
}
