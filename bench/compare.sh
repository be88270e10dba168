#!/usr/bin/env bash
# Side-by-side benchmarks of minidock and podman on the same machine, the
# same images and the same local registry, in one run:
#
#   1. cold pull + unpack of a ~190 MB image (three layers of real files
#      from this machine, layered by umoci), fresh store each run;
#   2. `run --rm IMAGE true` on the busybox fixture, with hyperfine and
#      in turns (bench/interleave.ts);
#   3. peak memory of each pull, and of minidock pulling a 1 MB and a
#      190 MB image (memory should not grow with layer size).
#
# Run as root after .ci/setup: bash bench/compare.sh. Needs hyperfine and
# GNU time (apt-get install hyperfine time). Prints markdown tables; the
# results of a run are kept in docs/benchmarks.md. Everything stays on
# 127.0.0.1.
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${RUNS:-5}
run_runs=${RUN_RUNS:-20}

source bench/common.sh
needs hyperfine /usr/bin/time umoci skopeo podman

# The test image: three layers of real files, built by umoci (a peer, so
# the layers are not shaped by minidock's own writer).
umoci init --layout "$w/layout" >/dev/null
umoci new --image "$w/layout:big" >/dev/null
for dir in /usr/lib/python3.11 /usr/share/perl /usr/share/doc; do
  umoci insert --image "$w/layout:big" "$dir" "$dir" >/dev/null
done

start_registry
skopeo copy -q --dest-tls-verify=false "oci:$w/layout:big" "docker://$host/bench/big:latest"
big="$host/bench/big:latest"
small="$host/library/busybox:latest"

# This machine's sandbox refuses podman's default rlimits; these are lower.
pm_run_flags="--network none --ulimit nofile=1024:1024 --ulimit nproc=1024:1024"

echo "## Cold pull + unpack of $big"
echo
hyperfine --runs "$runs" --style basic --export-markdown "$w/pull.md" \
  --prepare "$(aside "$w/md")" -n "minidock pull" "$md pull -q $big" \
  --prepare "$(aside "$w/pm")" -n "podman pull" "$pm pull -q --tls-verify=false $big" >&2
cat "$w/pull.md"
echo

echo "## run --rm IMAGE true ($small)"
echo
# Node 20 reads NODE_EXTRA_CA_CERTS at start-up unless minidock's launcher
# hands it over (docs/decisions.md), so say whether it is set.
echo "NODE_EXTRA_CA_CERTS is $([ -n "${NODE_EXTRA_CA_CERTS:-}" ] && echo set || echo unset) in this run."
echo
$md pull -q "$small" >/dev/null
$pm pull -q --tls-verify=false "$small" >/dev/null
hyperfine --warmup 3 --runs "$run_runs" --style basic --export-markdown "$w/run.md" \
  -n "minidock run" "$md run --rm $small true" \
  -n "podman run" "$pm run --rm $pm_run_flags $small true" >&2
cat "$w/run.md"
echo
# The same, in turns (minidock, podman, minidock, …), so that a change in
# the machine's load during the run weighs on both alike.
echo "In turns, $run_runs rounds:"
echo
node dist/bench/interleave.js "$run_runs" \
  "minidock run=$md run --rm $small true" \
  "podman run=$pm run --rm $pm_run_flags $small true"
echo

echo "## Peak resident memory (kB) of one cold pull"
echo
echo "| command | busybox (1 MB) | big (190 MB) |"
echo "|:---|---:|---:|"
eval "$(aside "$w/md")"; m_small=$(peak $md pull -q "$small")
eval "$(aside "$w/md")"; m_big=$(peak $md pull -q "$big")
eval "$(aside "$w/pm")"; p_small=$(peak $pm pull -q --tls-verify=false "$small")
eval "$(aside "$w/pm")"; p_big=$(peak $pm pull -q --tls-verify=false "$big")
echo "| minidock pull | $m_small | $m_big |"
echo "| podman pull | $p_small | $p_big |"
