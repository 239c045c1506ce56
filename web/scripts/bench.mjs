// Bundles bench/client.bench.ts and runs it (see that file).
import { build } from "esbuild";
import { spawnSync } from "node:child_process";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const web = join(dirname(fileURLToPath(import.meta.url)), "..");
const out = join(web, ".build", "bench", "client.bench.mjs");
await build({ entryPoints: [join(web, "bench", "client.bench.ts")], outfile: out, bundle: true, platform: "node", format: "esm", target: "node20", packages: "external", logLevel: "warning" });
const run = spawnSync(process.execPath, [out], { stdio: "inherit", cwd: web });
process.exit(run.status ?? 1);
