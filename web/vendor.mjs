// Vendors what the pages load from npm into web/vendor/ (run by scripts/_web.sh after `npm ci`).
//
// @100mslive/hms-video-store is published as an ES module that imports bare package names (immer,
// zustand, uuid, ...), which a browser cannot resolve without an import map (an inline script, refused by
// our CSP) or a bundler. esbuild (pinned) bundles it into one ES module; the pages import it only when
// the hub says real 100ms is configured.
import { build } from "esbuild";
import { fileURLToPath } from "node:url";
import { dirname, join } from "node:path";

const here = dirname(fileURLToPath(import.meta.url));

await build({
  stdin: { contents: 'export * from "@100mslive/hms-video-store";', resolveDir: here, loader: "js" },
  bundle: true,
  format: "esm",
  platform: "browser",
  target: "es2020",
  minify: true,
  legalComments: "eof",
  outfile: join(here, "vendor", "hms-video-store.js"),
  logLevel: "warning",
});
