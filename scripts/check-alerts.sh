#!/usr/bin/env bash
# Checks the Prometheus alert rules: syntax and queries (promtool check rules), then each rule's
# tests (promtool test rules). promtool comes with Debian's `prometheus` package.
set -euo pipefail
cd "$(dirname "$0")/../contrib/prometheus"

if ! command -v promtool >/dev/null 2>&1; then
  echo "promtool is not installed: apt-get install prometheus (Debian/Ubuntu) or put promtool on PATH" >&2
  exit 1
fi
promtool check rules alerts.yml
promtool test rules alerts_test.yml
