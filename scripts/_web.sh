# Sourced by scripts/run and scripts/test (after _venv.sh): the pages' npm packages, pinned by
# web/package-lock.json, installed with `npm ci` and vendored into web/vendor/ (web/vendor.mjs).
# Without node and npm the pages still work with the 100ms simulator: only real 100ms needs web/vendor/.
web_install() {
  if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
    echo "note: node/npm not found, web/vendor/ not built (the pages need it only with real 100ms)"
    return 0
  fi
  local stamp=web/node_modules/.installed
  if [ ! -f "$stamp" ] || [ web/package-lock.json -nt "$stamp" ]; then
    (cd web && npm ci --no-audit --no-fund --loglevel=error) && touch "$stamp"
  fi
  local bundle=web/vendor/hms-video-store.js
  if [ ! -f "$bundle" ] || [ "$stamp" -nt "$bundle" ] || [ web/vendor.mjs -nt "$bundle" ]; then
    (cd web && node vendor.mjs)
  fi
}
web_install
