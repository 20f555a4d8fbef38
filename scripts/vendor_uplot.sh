#!/usr/bin/env bash
# Refresh the vendored uPlot (the dashboard's charting library) from the npm registry.
# The files are committed under plugins/fusionrec_ui/vendor/, so nothing is fetched at run time.
# Usage: scripts/vendor_uplot.sh [VERSION]   (the tarball's sha256 is checked for the pinned version)
set -euo pipefail
VERSION="${1:-1.6.32}"
PINNED_SHA256="4b8a8191e425658e3ea8c8c1314b0fc679c861ee3a1af2b20c7b16ba50b5133d"  # uplot-1.6.32.tgz
cd "$(dirname "$0")/.."
dest=plugins/fusionrec_ui/vendor
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
(cd "$work" && npm pack --silent "uplot@$VERSION" >/dev/null)
tarball="$work/uplot-$VERSION.tgz"
if [ "$VERSION" = 1.6.32 ]; then
  echo "$PINNED_SHA256  $tarball" | sha256sum --check --quiet
fi
tar -xzf "$tarball" -C "$work"
mkdir -p "$dest"
cp "$work/package/dist/uPlot.iife.min.js" "$work/package/dist/uPlot.min.css" "$dest/"
cp "$work/package/LICENSE" "$dest/uPlot.LICENSE"
echo "uplot $VERSION" > "$dest/VERSION"
echo "vendored uPlot $VERSION into $dest"
