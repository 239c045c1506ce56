// Bundles every test/e2e/*.test.ts with esbuild and runs them one file at a time with
// Node's test runner, against the real `sotto` binary (SOTTO_BIN, default
// ../target/debug/sotto) and Chromium at /usr/bin/chromium (see test/e2e/harness.ts).
//   node scripts/test-e2e.mjs [FILTER]   only the files whose name contains FILTER
import { build } from "esbuild";
import { readdirSync, rmSync } from "node:fs";
import { spawnSync } from "node:child_process";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const web = join(dirname(fileURLToPath(import.meta.url)), "..");
// A directory of this run's own: browser tests may run at the same time from another
// shell, and one run must not delete the bundles another is about to load.
const out = join(web, ".build", `e2e-${process.pid}`);
const filter = process.argv[2];
const tests = readdirSync(join(web, "test", "e2e"))
  .filter((f) => f.endsWith(".test.ts") && (!filter || f.includes(filter)))
  .map((f) => join(web, "test", "e2e", f));
if (tests.length === 0) {
  console.error("test-e2e: no test files found");
  process.exit(1);
}
rmSync(out, { recursive: true, force: true });
await build({
  entryPoints: tests,
  outdir: out,
  outExtension: { ".js": ".mjs" },
  bundle: true,
  platform: "node",
  format: "esm",
  target: "node20",
  packages: "external",
  sourcemap: "inline",
  logLevel: "warning",
});
const files = readdirSync(out).filter((f) => f.endsWith(".mjs")).map((f) => join(out, f));
const run = spawnSync(process.execPath, ["--enable-source-maps", "--test", "--test-concurrency=1", ...files], {
  stdio: "inherit",
  cwd: web,
});
rmSync(out, { recursive: true, force: true });
process.exit(run.status ?? 1);
