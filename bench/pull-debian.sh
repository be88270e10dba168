#!/usr/bin/env bash
# A larger real image pulled three ways from the same local registry, side
# by side in one run: `minidock pull` (download, verify and unpack into
# overlay layers), `skopeo copy` to an oci: directory (download and verify
# only) and `podman pull` (download, verify and unpack into its overlay
# storage). Wall time (hyperfine, fresh store or directory each run) and
# peak resident memory (GNU time) of each.
#
#   bash bench/pull-debian.sh [LAYOUT:TAG]
#
# The image is the Debian fixture (a debootstrap'd bookworm userland,
# fixtures/debian.sh), built from Debian's mirror and pushed to the bench's
# registry; with LAYOUT:TAG, an OCI layout of it kept from an earlier build
# is pushed instead. Run as root after `npm run build` and .ci/setup; needs
# hyperfine, GNU time, skopeo, podman, and for a fresh build debootstrap
# and umoci. Prints markdown; the results of a run are kept in
# docs/benchmarks.md.
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${RUNS:-5}

source bench/common.sh
needs hyperfine /usr/bin/time skopeo podman

start_registry
image="$host/library/debian:bookworm"
if [ $# -ge 1 ]; then
  skopeo copy -q --dest-tls-verify=false "oci:$1" "docker://$image"
else
  bash fixtures/debian.sh "$host" bookworm >/dev/null
fi
# The build deleted its work tree; on this machine's disk (mounted with
# discard) file creation is slow until that settles, which would charge
# whichever tool ran first.
sync
sleep 10
size=$(skopeo inspect --tls-verify=false --raw "docker://$image" \
  | node -e 'let s = ""; process.stdin.on("data", (d) => (s += d)).on("end", () => {
      const m = JSON.parse(s); const n = m.layers.reduce((t, l) => t + l.size, 0);
      console.log(`${m.layers.length} layer(s), ${(n / 1e6).toFixed(1)} MB compressed`); })')

sk="skopeo copy -q --src-tls-verify=false docker://$image oci:$w/sk:bookworm"

echo "## Pull of $image ($size)"
echo
hyperfine --warmup 1 --runs "$runs" --style basic --export-markdown "$w/pull.md" \
  --prepare "$(aside "$w/md")" -n "minidock pull" "$md pull -q $image" \
  --prepare "$(aside "$w/sk")" -n "skopeo copy (oci:)" "$sk" \
  --prepare "$(aside "$w/pm")" -n "podman pull" "$pm pull -q --tls-verify=false $image" >&2
cat "$w/pull.md"
echo

echo "Peak resident memory (kB), three cold runs each:"
echo
echo "| command | run 1 | run 2 | run 3 |"
echo "|:---|---:|---:|---:|"
row() {
  local name=$1 dir=$2
  shift 2
  local out="| $name |"
  for _ in 1 2 3; do
    eval "$(aside "$dir")"
    out="$out $(peak "$@") |"
  done
  echo "$out"
}
row "minidock pull" "$w/md" $md pull -q "$image"
row "skopeo copy (oci:)" "$w/sk" $sk
row "podman pull" "$w/pm" $pm pull -q --tls-verify=false "$image"
