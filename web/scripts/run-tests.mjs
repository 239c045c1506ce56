// Bundles the TypeScript test files of one suite with esbuild and runs them with Node's
// test runner; scripts/test-unit.mjs and scripts/test-e2e.mjs are its two callers.
import { build } from "esbuild";
import { readdirSync, rmSync } from "node:fs";
import { spawnSync } from "node:child_process";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const web = join(dirname(fileURLToPath(import.meta.url)), "..");

/**
 * Runs test/<suite>/*.test.ts (only the names containing `filter`, when given) and exits
 * with the runner's status. Each run bundles into a directory of its own, so runs side
 * by side never delete or read each other's bundles.
 */
export async function runSuite(suite, filter, nodeArgs = []) {
  const dir = join(web, "test", suite);
  const tests = readdirSync(dir)
    .filter((f) => f.endsWith(".test.ts") && (!filter || f.includes(filter)))
    .map((f) => join(dir, f));
  if (tests.length === 0) {
    console.error(`test-${suite}: no test files found`);
    process.exit(1);
  }
  const out = join(web, ".build", `${suite}-${process.pid}`);
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
  const run = spawnSync(process.execPath, ["--enable-source-maps", ...nodeArgs, "--test", ...files], { stdio: "inherit", cwd: web });
  rmSync(out, { recursive: true, force: true });
  process.exit(run.status ?? 1);
}
