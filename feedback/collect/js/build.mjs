// Bundles the survivor pages' scripts into feedback/collect/static/ (committed, so that Python-only
// installs work). tests/collect/test_browser_bundle.py rebuilds and checks that nothing changed.
import { build } from "esbuild";
import { fileURLToPath } from "node:url";
import path from "node:path";

const here = path.dirname(fileURLToPath(import.meta.url));
const outdir = process.argv[2] || path.join(here, "..", "static");

await build({
  entryPoints: [
    path.join(here, "survey.js"),
    path.join(here, "exit.js"),
    path.join(here, "retry.js"),
  ],
  outdir,
  bundle: true,
  minify: true,
  format: "iife",
  target: ["es2019"],
  legalComments: "none",
  charset: "utf8",
  logLevel: "warning",
});
