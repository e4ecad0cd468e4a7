#!/usr/bin/env bash
# Builds the real components the tests and `modelapi-compile simulate` run (kube-apiserver,
# kube-controller-manager, kube-scheduler, etcd, kwok, kubeconform, promtool, flux-apply) from
# the Go module in this folder, into a cache folder outside the clone keyed by every input:
#   ${MODELAPI_COMPILE_CACHE:-${XDG_CACHE_HOME:-~/.cache}/modelapi-compile}/tools/<key>/bin
# A later run with the same go.mod, go.sum, sources and Go version reuses it. Prints the bin
# folder on stdout (progress goes to stderr).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
cd "$here"
export GOTOOLCHAIN=local GOFLAGS=-mod=mod CGO_ENABLED=0

kube_version=$(awk '$1 == "k8s.io/kubernetes" {print $2}' go.mod)
minor=${kube_version#v1.}; minor=${minor%%.*}
key=$( { cat go.mod go.sum; find cmd -type f -name '*.go' | LC_ALL=C sort | xargs cat; cat build.sh; go version; } \
       | sha256sum | cut -c1-16)
cache_root="${MODELAPI_COMPILE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/modelapi-compile}"
bin="$cache_root/tools/$key/bin"

tools=(kube-apiserver kube-controller-manager kube-scheduler etcd kwok kubeconform promtool flux-apply)
missing=()
for tool in "${tools[@]}"; do [ -x "$bin/$tool" ] || missing+=("$tool"); done
if [ ${#missing[@]} -eq 0 ]; then echo "$bin"; exit 0; fi

# The version the API server reports (/version, kubectl version) is set by ldflags, as
# Kubernetes' own build (hack/lib/version.sh) sets it.
ldflags="-s -w"
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  ldflags+=" -X $pkg.gitVersion=$kube_version -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor"
  ldflags+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z"
done

package_of() {
  case "$1" in
    kube-apiserver|kube-controller-manager|kube-scheduler) echo "k8s.io/kubernetes/cmd/$1" ;;
    kwok) echo "sigs.k8s.io/kwok/cmd/kwok" ;;
    kubeconform) echo "github.com/yannh/kubeconform/cmd/kubeconform" ;;
    promtool) echo "github.com/prometheus/prometheus/cmd/promtool" ;;
    *) echo "./cmd/$1" ;;
  esac
}

staging="$cache_root/tools/$key/staging.$$"
mkdir -p "$staging"
trap 'rm -rf "$staging"' EXIT
for tool in "${missing[@]}"; do
  echo "building $tool ($(package_of "$tool"))" >&2
  start=$SECONDS
  go build -trimpath -ldflags "$ldflags" -o "$staging/$tool" "$(package_of "$tool")"
  echo "  $tool: $((SECONDS - start)) s" >&2
done
mkdir -p "$bin"
for tool in "${missing[@]}"; do mv -f "$staging/$tool" "$bin/$tool"; done
echo "$bin"
