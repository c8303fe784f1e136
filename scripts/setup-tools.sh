#!/usr/bin/env bash
# Idempotent: the command-line tools the test suite drives besides the project's own servers —
# Graphviz (`scan dag --dot` is rendered with `dot`) and util-linux's `script` (a pseudo-terminal for
# the progress-bar test). Does nothing when they are installed.
set -euo pipefail
need=()
command -v dot >/dev/null || need+=(graphviz)
command -v script >/dev/null || need+=(bsdutils)
[[ ${#need[@]} -eq 0 ]] && exit 0
SUDO=""
if [[ $(id -u) -ne 0 ]]; then SUDO=sudo; fi
echo "setup: installing ${need[*]} (Debian packages)" >&2
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need[@]}" >/dev/null
