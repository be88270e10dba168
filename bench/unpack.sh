#!/usr/bin/env bash
# Unpacking one large image three ways, side by side: minidock's unpacker
# (dist/bench/unpack-layout.js: digests checked, every layer applied in
# overlay format), `umoci unpack` (Debian's umoci: digests checked, layers
# applied to one rootfs, plus its mtree manifest) and `tar -xzf` of each
# layer blob into one directory (GNU tar: no checks, no whiteouts). Wall
# time (hyperfine), CPU time and peak memory (GNU time) of each.
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
# Run as root after `npm run build`; needs umoci, hyperfine and GNU time
# (apt-get install umoci hyperfine time). Prints markdown; the results of
# a run are kept in docs/benchmarks.md. Nothing leaves the machine.
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${RUNS:-5}

for tool in hyperfine /usr/bin/time umoci tar; do
  command -v "$tool" >/dev/null || { echo "bench: $tool is missing (apt-get install umoci hyperfine time)" >&2; exit 1; }
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
entries=$(for b in $blobs; do tar -tzf "$b"; done | wc -l)

md="node dist/bench/unpack-layout.js $image $w/out"
um="umoci unpack --image $image $w/out"
tx="mkdir $w/out && for b in $blobs; do tar -xzf \$b -C $w/out; done"

echo "## Unpacking $(basename "$layout"):$tag ($((size / 1000000)) MB compressed, $entries entries, $(echo $blobs | wc -w) layers)"
echo
hyperfine --warmup 1 --runs "$runs" --style basic --export-markdown "$w/unpack.md" --export-json "$w/unpack.json" \
  --prepare "$aside" -n "minidock (unpack-layout)" "$md" \
  --prepare "$aside" -n "umoci unpack" "$um" \
  --prepare "$aside" -n "tar -xzf" "$tx" >&2
cat "$w/unpack.md"
echo

echo "| command | user CPU [s] | system CPU [s] | peak RSS [MB] |"
echo "|:---|---:|---:|---:|"
peak() {
  eval "$aside"
  /usr/bin/time -f %M sh -c "$1" 2>&1 >/dev/null | tail -n 1
}
node -e '
  const r = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8")).results;
  for (const x of r) console.log(`${x.command}\t${x.user.toFixed(2)}\t${x.system.toFixed(2)}`);
' "$w/unpack.json" >"$w/cpu.tsv"
i=0
for cmd in "$md" "$um" "$tx"; do
  i=$((i + 1))
  IFS=$'\t' read -r name user system < <(sed -n "${i}p" "$w/cpu.tsv")
  kb=$(peak "$cmd")
  echo "| $name | $user | $system | $((kb / 1024)) |"
done
