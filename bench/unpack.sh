#!/usr/bin/env bash
# Unpacking one large image three ways, side by side: minidock's unpacker
# (dist/bench/unpack-layout.js: digests checked, every layer applied in
# overlay format), `umoci unpack` (Debian's umoci: digests checked, layers
# applied to one rootfs, plus its mtree manifest) and `tar -xzf` of each
# layer blob into one directory (GNU tar: no checks, no whiteouts). Wall
# time, CPU time and peak memory (GNU time) of each.
#
#   bash bench/unpack.sh [LAYOUT:TAG]
#   bash bench/unpack.sh --layout-only DIR
#
# With LAYOUT:TAG, that image is used: the Debian fixture, say, kept by
# `DEBIAN_LAYOUT=DIR bash fixtures/debian.sh ...`. Without, the script
# builds a stand-in of real files from this machine's Debian userland
# (dpkg's database, Python's and Perl's libraries, /usr/share/doc,
# /usr/sbin; about 250 MB, 13,000 entries) with umoci. --layout-only DIR
# builds that stand-in at DIR (tag "real") and stops, for the slow
# comparison (README, "Slow checks").
#
# Run as root after `npm run build`; needs umoci and GNU time (apt-get
# install umoci time). RUNS=N sets the rounds (default 5). Prints markdown; the results of
# a run are kept in docs/benchmarks.md. Nothing leaves the machine.
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${RUNS:-5}

for tool in /usr/bin/time umoci tar; do
  command -v "$tool" >/dev/null || { echo "bench: $tool is missing (apt-get install umoci time)" >&2; exit 1; }
done
[ -f dist/bench/unpack-layout.js ] || { echo "bench: run npm run build first" >&2; exit 1; }

real_dirs=(/var/lib/dpkg /usr/lib/python3.11 /usr/share/perl /usr/share/doc /usr/sbin)

# Builds the stand-in image at $1 (tag "real"): one layer of real files,
# copied to the staging directory $2 first.
build_real() {
  local layout=$1 stage=$2
  mkdir -p "$stage"
  chmod 0755 "$stage"
  for dir in "${real_dirs[@]}"; do
    mkdir -p "$stage$(dirname "$dir")"
    cp -a "$dir" "$stage$dir"
  done
  umoci init --layout "$layout" >/dev/null
  umoci new --image "$layout:real" >/dev/null
  umoci insert --image "$layout:real" "$stage" / >/dev/null
}

if [ "${1:-}" = --layout-only ]; then
  out=${2:?usage: bash bench/unpack.sh --layout-only DIR}
  [ -e "$out" ] && { echo "bench: $out exists" >&2; exit 1; }
  stage=$(mktemp -d /var/tmp/minidock-stage.XXXXXX)
  trap 'rm -rf "$stage"' EXIT
  build_real "$out" "$stage"
  echo "$out:real"
  exit 0
fi

w=$(mktemp -d /var/tmp/minidock-unpack-bench.XXXXXX)
trap 'rm -rf "$w"' EXIT
# Each run starts from nothing. The last output is moved aside, not
# deleted: on a slow disk, deleting a tree slows file creation for a while
# after, which would charge one tool for another's clean-up.
mkdir -p "$w/trash"
aside="if [ -e $w/out ]; then mv $w/out $w/trash/\$(date +%s%N); fi"

if [ -n "${1:-}" ]; then
  image=$1
else
  build_real "$w/layout" "$w/trash/stage"
  image=$w/layout:real
fi
layout=${image%:*}
tag=${image##*:}

# The layer blobs in order, for tar.
blobs=$(node -e '
  const fs = require("fs");
  const [layout, tag] = process.argv.slice(1);
  const blob = (d) => `${layout}/blobs/sha256/${d.slice(7)}`;
  const index = JSON.parse(fs.readFileSync(`${layout}/index.json`, "utf8"));
  const entry = index.manifests.find((m) => (m.annotations || {})["org.opencontainers.image.ref.name"] === tag);
  const manifest = JSON.parse(fs.readFileSync(blob(entry.digest), "utf8"));
  console.log(manifest.layers.map((l) => blob(l.digest)).join(" "));
' "$layout" "$tag")
size=$(du -cb $blobs | tail -n 1 | cut -f 1)
entries=$(for b in $blobs; do tar -tzf "$b" 2>/dev/null; done | wc -l)

md="node dist/bench/unpack-layout.js $image $w/out"
um="umoci unpack --image $image $w/out"
tx="mkdir $w/out && for b in $blobs; do tar -xzf \$b -C $w/out; done"

echo "## Unpacking $(basename "$layout"):$tag ($((size / 1000000)) MB compressed, $entries entries, $(echo $blobs | wc -w) layers)"
echo
# Rounds of one run per tool, so that a change in the disk's state (other
# load, writeback) falls on every tool alike; before each run the last
# output is moved aside and written out (sync), outside the timing.
names=("minidock (unpack-layout)" "umoci unpack" "tar -xzf")
cmds=("$md" "$um" "$tx")
for round in $(seq 0 "$runs"); do
  for i in 0 1 2; do
    eval "$aside"
    sync
    /usr/bin/time -f "%e %U %S %M" -o "$w/time" sh -c "${cmds[$i]}" >/dev/null 2>"$w/stderr" \
      || { cat "$w/stderr" >&2; exit 1; }
    # Round 0 warms the page cache and is not counted.
    [ "$round" -gt 0 ] && tail -n 1 "$w/time" >>"$w/times-$i"
  done
  echo "round $round of $runs done" >&2
done

echo "| command | wall median [s] | wall min–max [s] | user CPU [s] | system CPU [s] | peak RSS [MB] |"
echo "|:---|---:|---:|---:|---:|---:|"
for i in 0 1 2; do
  node -e '
    const rows = require("fs").readFileSync(process.argv[1], "utf8").trim().split("\n").map((l) => l.split(" ").map(Number));
    const col = (k) => rows.map((r) => r[k]).sort((a, b) => a - b);
    const median = (xs) => (xs.length % 2 ? xs[(xs.length - 1) / 2] : (xs[xs.length / 2 - 1] + xs[xs.length / 2]) / 2);
    const wall = col(0);
    console.log(`| ${process.argv[2]} | ${median(wall).toFixed(2)} | ${wall[0].toFixed(2)}–${wall[wall.length - 1].toFixed(2)} | ` +
      `${median(col(1)).toFixed(2)} | ${median(col(2)).toFixed(2)} | ${Math.round(Math.max(...col(3)) / 1024)} |`);
  ' "$w/times-$i" "${names[$i]}"
done
echo
echo "$runs rounds; medians of each; peak RSS is the largest of the runs (for tar, of tar or gzip)."
