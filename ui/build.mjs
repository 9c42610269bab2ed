// Builds the UI into ui/dist (or the folder given as the first argument):
// app.js and app.css bundled by esbuild from src/, plus the static files.
// The output depends only on the sources and the pinned esbuild, so a rebuild
// of unchanged sources is byte-identical (tests/api/browser.rs checks that the
// committed ui/dist is what the sources build to).

import { build } from "esbuild";
import { copyFile, mkdir, rm } from "node:fs/promises";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const out = resolve(process.argv[2] ?? join(here, "dist"));

await rm(out, { recursive: true, force: true });
await mkdir(out, { recursive: true });
await build({
  absWorkingDir: here,
  entryPoints: { app: "src/main.ts" },
  outdir: out,
  bundle: true,
  format: "esm",
  target: ["es2022", "chrome110", "firefox110", "safari16"],
  charset: "utf8",
  legalComments: "none",
  logLevel: "warning",
});
for (const file of ["index.html", "favicon.svg"]) {
  await copyFile(join(here, file), join(out, file));
}
console.log(`built ${out}`);
