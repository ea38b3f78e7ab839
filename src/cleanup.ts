// Work that must be undone even when pgrep is interrupted (Ctrl-C, SIGTERM): a temporary SSH key on a
// primary, a backup session. The CLI runs what is registered here before it exits.

const pending = new Set<() => Promise<unknown>>();

/** Registers an undo; call the returned function once the work is undone the normal way. */
export function onInterrupt(undo: () => Promise<unknown>): () => void {
  pending.add(undo);
  return () => pending.delete(undo);
}

export async function runInterruptCleanups(timeoutMs = 20_000): Promise<void> {
  const all = [...pending];
  pending.clear();
  await Promise.race([Promise.allSettled(all.map((f) => f())), new Promise((r) => setTimeout(r, timeoutMs))]);
}
