#!/usr/bin/env bash
# Copies the front-end files we serve from npm packages into the static vendor folder,
# so no page loads anything from another host. Used by setup.sh and the Dockerfile.
set -euo pipefail
modules=$1
vendor=$2
rm -rf "$vendor" && mkdir -p "$vendor/leaflet" "$vendor/swagger-ui" "$vendor/uplot"
cp -r "$modules/leaflet/dist/leaflet.js" "$modules/leaflet/dist/leaflet.css" "$modules/leaflet/dist/images" \
      "$vendor/leaflet/"
cp "$modules/swagger-ui-dist/swagger-ui-bundle.js" "$modules/swagger-ui-dist/swagger-ui.css" \
   "$modules/swagger-ui-dist/favicon-32x32.png" "$vendor/swagger-ui/"
cp "$modules/uplot/dist/uPlot.iife.min.js" "$modules/uplot/dist/uPlot.min.css" "$vendor/uplot/"
