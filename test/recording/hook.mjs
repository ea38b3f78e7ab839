// node --import this file: every way pgrep reaches a host (its SSH and local transports, and execa for
// the fence command) is replaced by a recorder that appends the call to $PGREP_RECORD and fails. An empty
// record proves that a run contacted nothing.
import { register } from "node:module";

register(new URL("./resolve.mjs", import.meta.url));
