// Builds the web client into dist/: one JavaScript bundle and one
// stylesheet under dist/assets/ with content hashes in their names (so the
// server may let browsers cache them for good), and dist/index.html
// naming them. No inline script or style: the page's Content-Security-
// Policy allows only files from the server itself.
import { build } from "esbuild";
import { mkdir, readFile, rm, writeFile } from "node:fs/promises";
import { basename, dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const out = join(here, "dist");
await rm(out, { recursive: true, force: true });
await mkdir(join(out, "assets"), { recursive: true });

const result = await build({
  entryPoints: [join(here, "src/main.tsx"), join(here, "src/style.css")],
  bundle: true,
  minify: true,
  sourcemap: false,
  format: "esm",
  target: ["es2022"],
  jsx: "automatic",
  jsxImportSource: "preact",
  outdir: join(out, "assets"),
  entryNames: "[name]-[hash]",
  metafile: true,
  legalComments: "linked",
  logLevel: "warning",
});

const outputs = Object.keys(result.metafile.outputs).map((p) => basename(p));
const js = outputs.find((p) => p.startsWith("main-") && p.endsWith(".js"));
const css = outputs.find((p) => p.startsWith("style-") && p.endsWith(".css"));
if (!js || !css) throw new Error(`build: bundle or stylesheet missing from ${outputs.join(", ")}`);
const html = (await readFile(join(here, "index.html"), "utf8")).replace("{{js}}", js).replace("{{css}}", css);
await writeFile(join(out, "index.html"), html);
console.log(`web client built: dist/index.html, dist/assets/${js}, dist/assets/${css}`);
