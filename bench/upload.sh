#!/usr/bin/env bash
# The source side's benchmarks (issue 4): OnionDrop beside OnionShare's receive mode, the disk's
# dd conv=fdatasync speed and the sealer's libsodium secretstream speed, all in one run, as ratios.
# Release build; needs onionshare-cli and wrk (scripts/setup-deps). Uses ~4 GiB of disk under --dir.
#   bench/upload.sh [--repeats 3] [--ingest-mib 1024] [--large-mib 2048] [--concurrent 64] [--dir /var/tmp]
set -euo pipefail
cd "$(dirname "$0")/.."
dotnet build -c Release bench/OnionDrop.Bench -v q -nologo >/dev/null
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg) (figures are only comparable on a quiet machine)"
exec dotnet bench/OnionDrop.Bench/bin/Release/net10.0/linux-x64/oniondrop-bench.dll upload "$@"
