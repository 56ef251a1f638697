#!/usr/bin/env bash
# Build the serving bento in a throw-away BentoML home and check what it holds.
# Not a test: `bentoml build` resolves the Python packages from the registry.
# Usage: scripts/check_bento_build.sh   (from anywhere; exits non-zero on failure)
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bentoml="${repo}/.venv/bin/bentoml"
home="$(mktemp -d -t ids-bento-build-XXXXXX)"
trap 'rm -rf "${home}"' EXIT
export BENTOML_HOME="${home}" BENTOML_DO_NOT_TRACK=True DO_NOT_TRACK=1

cd "${repo}"
"${bentoml}" build -f bentos/bentofile.yaml --output tag . | tee "${home}/build.out"
tag="$(grep -Eo 'ids:[a-z0-9]+' "${home}/build.out" | tail -1)"
if [[ -z "${tag}" ]]; then
  echo "bentoml build printed no tag 'ids:<version>'" >&2
  exit 1
fi
bento_dir="${home}/bentos/ids/${tag#ids:}"
for required in src/bentos/service.py src/ids/serving.py src/ids/inference_log.py \
  src/ids/detector.py bento.yaml; do
  if [[ ! -f "${bento_dir}/${required}" ]]; then
    echo "bento ${tag} lacks ${required} (looked in ${bento_dir})" >&2
    exit 1
  fi
done
"${bentoml}" list
echo "bento ${tag} built with the service and the ids package"
