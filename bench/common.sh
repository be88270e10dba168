# Shared by the side-by-side benchmarks (sourced, not run): a work
# directory cleaned up on exit, a local registry, fresh stores, peak memory.
# Everything stays on 127.0.0.1.

# needs TOOL... : exits naming the first missing tool.
needs() {
  for tool in "$@"; do
    command -v "$tool" >/dev/null || { echo "bench: $tool is missing (apt-get install hyperfine time umoci skopeo podman)" >&2; exit 1; }
  done
}

w=$(mktemp -d /var/tmp/minidock-bench.XXXXXX)
registry=
cleanup() {
  [ -n "$registry" ] && kill "$registry" 2>/dev/null && wait "$registry" 2>/dev/null
  # podman's storage keeps a private mount of its own overlay directory.
  awk -v w="$w/" 'index($2, w) == 1 { print $2 }' /proc/mounts | sort -r | xargs -r -n1 umount -l
  rm -rf "$w"
}
trap cleanup EXIT

# Starts the fixture registry (busybox and the other fixtures pushed) and
# sets host to its "127.0.0.1:PORT".
start_registry() {
  node dist/fixtures/registry.js serve >"$w/host" 2>"$w/registry.log" &
  registry=$!
  for _ in $(seq 1 200); do [ -s "$w/host" ] && break; sleep 0.1; done
  host=$(head -n 1 "$w/host")
  [ -n "$host" ] || { cat "$w/registry.log" >&2; exit 1; }
}

md="./bin/minidock.js --root $w/md"
pm="podman --root $w/pm/root --runroot $w/pm/run --storage-driver overlay"

# Each run starts from an empty store. The old one is moved aside, not
# deleted: on this machine's disk, deleting a tree slows file creation for
# a while after, which would charge one tool for the other's clean-up.
mkdir -p "$w/trash"
aside() { echo "mkdir -p $1 && mv $1 $w/trash/\$(date +%s%N)"; }

# peak COMMAND... : the command's peak resident memory in kB (GNU time).
peak() { /usr/bin/time -f %M "$@" 2>&1 >/dev/null | tail -n 1; }
