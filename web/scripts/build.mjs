// Builds the browser client into web/dist, which is committed and embedded into the
// server binary:
//   dist/index.html                    the one page (no inline script or style)
//   dist/assets/app-<hash>.js          src/main.tsx and everything it imports
//   dist/assets/app-<hash>.css         src/styles.css (and any CSS the code imports)
//   dist/assets/icon-<hash>.svg        static/icon.svg, the favicon
// The output is deterministic: the same sources and lockfile give the same bytes.
//
//   node scripts/build.mjs           rebuild web/dist
//   node scripts/build.mjs --check   build into a temporary directory and fail if it
//                                    differs from web/dist (file list or bytes)
import { build } from "esbuild";
import { createHash } from "node:crypto";
import {
  cpSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  rmSync,
  statSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, relative, sep } from "node:path";
import { fileURLToPath } from "node:url";

const web = join(dirname(fileURLToPath(import.meta.url)), "..");
const dist = join(web, "dist");
const args = process.argv.slice(2);
const check = args.includes("--check");
if (args.some((a) => a !== "--check")) {
  console.error("usage: node scripts/build.mjs [--check]");
  process.exit(2);
}

/** Every file under `dir`, as sorted paths relative to it with `/` separators. */
function listFiles(dir) {
  if (!existsSync(dir)) return [];
  const out = [];
  const walk = (d) => {
    for (const name of readdirSync(d)) {
      const p = join(d, name);
      if (statSync(p).isDirectory()) walk(p);
      else out.push(relative(dir, p).split(sep).join("/"));
    }
  };
  walk(dir);
  return out.sort();
}

/** A short content hash for files esbuild does not produce. */
function contentHash(bytes) {
  return createHash("sha256").update(bytes).digest("hex").slice(0, 12);
}

function escapeAttr(s) {
  return s.replace(/&/g, "&amp;").replace(/"/g, "&quot;").replace(/</g, "&lt;");
}

/** Builds everything into `out` (an empty directory). */
async function buildInto(out) {
  const result = await build({
    absWorkingDir: web,
    entryPoints: [
      { in: "src/main.tsx", out: "app" },
      { in: "src/styles.css", out: "app" },
    ],
    outdir: out,
    entryNames: "assets/[name]-[hash]",
    chunkNames: "assets/chunk-[hash]",
    assetNames: "assets/[name]-[hash]",
    loader: {
      ".svg": "file",
      ".png": "file",
      ".woff2": "file",
      ".wasm": "file",
    },
    publicPath: "/",
    bundle: true,
    format: "esm",
    platform: "browser",
    target: "es2022",
    minify: true,
    sourcemap: false,
    legalComments: "eof",
    charset: "utf8",
    define: { "process.env.NODE_ENV": '"production"' },
    metafile: true,
    write: true,
    logLevel: "warning",
  });

  const outputs = Object.entries(result.metafile.outputs).map(([path, meta]) => ({
    url: "/" + relative(out, join(web, path)).split(sep).join("/"),
    meta,
  }));
  const script = outputs.find((o) => o.meta.entryPoint === "src/main.tsx");
  if (!script) throw new Error("build: esbuild produced no script for src/main.tsx");
  // The stylesheet entry first, then any CSS the code imports, in a stable order.
  const styles = outputs
    .filter((o) => o.url.endsWith(".css"))
    .sort((a, b) =>
      (a.meta.entryPoint === "src/styles.css" ? 0 : 1) -
        (b.meta.entryPoint === "src/styles.css" ? 0 : 1) || a.url.localeCompare(b.url),
    );

  const icon = readFileSync(join(web, "static", "icon.svg"));
  const iconUrl = `/assets/icon-${contentHash(icon)}.svg`;
  writeFileSync(join(out, iconUrl), icon);

  const html = [
    "<!doctype html>",
    '<html lang="en">',
    "<head>",
    '<meta charset="utf-8">',
    '<meta name="viewport" content="width=device-width, initial-scale=1">',
    '<meta name="color-scheme" content="light dark">',
    "<title>Sotto</title>",
    `<link rel="icon" type="image/svg+xml" href="${escapeAttr(iconUrl)}">`,
    ...styles.map((s) => `<link rel="stylesheet" href="${escapeAttr(s.url)}">`),
    `<script type="module" src="${escapeAttr(script.url)}"></script>`,
    "</head>",
    "<body>",
    '<div id="app"></div>',
    "<noscript>Sotto needs JavaScript.</noscript>",
    "</body>",
    "</html>",
    "",
  ].join("\n");
  writeFileSync(join(out, "index.html"), html);
}

/** The differences between two directories, as lines for people. */
function compare(expected, actual) {
  const a = listFiles(expected);
  const b = listFiles(actual);
  const problems = [];
  for (const f of b) if (!a.includes(f)) problems.push(`  missing from web/dist: ${f}`);
  for (const f of a) if (!b.includes(f)) problems.push(`  not produced by the build: ${f}`);
  for (const f of a) {
    if (b.includes(f) && !readFileSync(join(expected, f)).equals(readFileSync(join(actual, f)))) {
      problems.push(`  content differs: ${f}`);
    }
  }
  return problems;
}

const tmp = mkdtempSync(join(tmpdir(), "sotto-web-"));
try {
  await buildInto(tmp);
  if (check) {
    const problems = compare(dist, tmp);
    if (problems.length > 0) {
      const kept = mkdtempSync(join(tmpdir(), "sotto-web-check-"));
      cpSync(tmp, kept, { recursive: true });
      console.error(
        "build --check: web/dist does not match a fresh build of web/src:\n" +
          problems.join("\n") +
          `\nThe fresh build is in ${kept}.` +
          "\nRun `cd web && npm ci && npm run build` and commit web/dist.",
      );
      process.exitCode = 1;
    } else {
      console.log(`build --check: web/dist matches the sources (${listFiles(tmp).length} files)`);
    }
  } else {
    rmSync(dist, { recursive: true, force: true });
    mkdirSync(dist, { recursive: true });
    cpSync(tmp, dist, { recursive: true });
    for (const f of listFiles(dist)) {
      console.log(`  dist/${f}  ${statSync(join(dist, f)).size} bytes`);
    }
  }
} finally {
  rmSync(tmp, { recursive: true, force: true });
}
