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

# Serve the built bento (not the working tree) on a free loopback port: with an
# empty project home it must come up ready and refuse to guess without champions.
export IDS_HOME="${home}/ids-home"
port="$("${repo}/.venv/bin/python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
cd "${home}"
"${bentoml}" serve "${tag}" --port "${port}" >"${home}/serve.log" 2>&1 &
server=$!
# bentoml serve stops its workers on SIGTERM.
trap 'kill "${server}" 2>/dev/null && wait "${server}" 2>/dev/null; rm -rf "${home}"' EXIT
for _ in $(seq 120); do
  curl -sf "http://127.0.0.1:${port}/readyz" >/dev/null && break
  sleep 1
done
if ! curl -sf "http://127.0.0.1:${port}/readyz" >/dev/null; then
  echo "bento ${tag} did not become ready on port ${port}; its log:" >&2
  tail -30 "${home}/serve.log" >&2
  exit 1
fi
status="$(curl -s -o "${home}/score.json" -w '%{http_code}' -X POST \
  "http://127.0.0.1:${port}/score" -H 'content-type: application/json' \
  -d '{"dataset": "network", "records": [{"proto": "tcp"}]}')"
if [[ "${status}" != "404" ]] || ! grep -q "no champion" "${home}/score.json"; then
  echo "bento ${tag}: /score without champions answered ${status}: $(cat "${home}/score.json")" >&2
  exit 1
fi
echo "bento ${tag} built with the service and the ids package, and serves from the bento"
