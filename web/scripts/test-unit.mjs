// Bundles every test/unit/*.test.ts with esbuild and runs them with Node's test runner.
import { build } from "esbuild";
import { readdirSync, rmSync } from "node:fs";
import { spawnSync } from "node:child_process";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const web = join(dirname(fileURLToPath(import.meta.url)), "..");
// One directory per run, so runs side by side never read each other's bundles.
const out = join(web, ".build", `unit-${process.pid}`);
const filter = process.argv[2];
const tests = readdirSync(join(web, "test", "unit"))
  .filter((f) => f.endsWith(".test.ts") && (!filter || f.includes(filter)))
  .map((f) => join(web, "test", "unit", f));
if (tests.length === 0) {
  console.error("test-unit: no test files found");
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
const run = spawnSync(process.execPath, ["--test", ...files], { stdio: "inherit", cwd: web });
rmSync(out, { recursive: true, force: true });
process.exit(run.status ?? 1);
