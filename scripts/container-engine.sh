#!/usr/bin/env bash
# Prints the container engine to build images with — podman, else docker —
# and exits 0, or exits 1 when neither works here. A docker client whose
# daemon is down counts as not working, so CI can skip the image build
# instead of failing on it.
set -uo pipefail
for engine in podman docker; do
  if command -v "$engine" >/dev/null 2>&1 && timeout 30 "$engine" info >/dev/null 2>&1; then
    echo "$engine"
    exit 0
  fi
done
exit 1
