# Shared by the out-of-cluster add-ons (keda, prometheus-adapter): sourced, with S (state dir) and NS set.
# shellcheck shell=bash
k() { "${KUBECTL:-kubectl}" "$@"; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
alive() { [ -f "$S/pids/$1" ] && kill -0 "$(cat "$S/pids/$1")" 2>/dev/null; }

serving_certs() { # ORG SERVICE...: $S/certs/{ca,tls}.{crt,key}, tls valid for each SERVICE.$NS.svc, localhost and HOST_ADDRESS
  local org=$1 d="$S/certs" sans="DNS:localhost,IP:127.0.0.1,IP:$HOST_ADDRESS" svc; shift
  for svc in "$@"; do sans="DNS:$svc.$NS.svc,$sans"; done
  mkdir -p "$d"
  openssl req -x509 -newkey rsa:2048 -nodes -keyout "$d/ca.key" -out "$d/ca.crt" -days 30 \
    -subj "/O=$org/CN=form-data-$NS-ca" 2>/dev/null
  openssl genrsa -out "$d/tls.key" 2048 2>/dev/null
  openssl req -new -key "$d/tls.key" -subj "/O=$org/CN=$NS" -out "$d/tls.csr" 2>/dev/null
  printf '%s\n' "basicConstraints=CA:FALSE" "keyUsage=critical,digitalSignature,keyEncipherment" \
    "extendedKeyUsage=serverAuth,clientAuth" "subjectAltName=$sans" > "$d/tls.ext"
  openssl x509 -req -in "$d/tls.csr" -CA "$d/ca.crt" -CAkey "$d/ca.key" -CAcreateserial -days 30 \
    -extfile "$d/tls.ext" -out "$d/tls.crt" 2>/dev/null
}

register_apiservice() { # APISERVICE GROUP VERSION SERVICE PORT: the API server reaches HOST_ADDRESS:PORT as SERVICE.$NS
  local name=$1 group=$2 version=$3 svc=$4 port=$5
  k apply -f - >/dev/null <<YAML
apiVersion: v1
kind: Service
metadata: { name: $svc, namespace: $NS }
spec:
  ports: [{ name: https, port: 443, targetPort: $port }]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: $svc-host
  namespace: $NS
  labels: { kubernetes.io/service-name: $svc }
addressType: IPv4
endpoints: [{ addresses: ["$HOST_ADDRESS"], conditions: { ready: true } }]
ports: [{ name: https, port: $port, protocol: TCP }]
---
apiVersion: apiregistration.k8s.io/v1
kind: APIService
metadata: { name: $name }
spec:
  group: $group
  version: $version
  groupPriorityMinimum: 100
  versionPriority: 100
  service: { name: $svc, namespace: $NS, port: 443 }
  caBundle: $(base64 -w0 < "$S/certs/ca.crt")
YAML
}

wait_available() { # APISERVICE SECONDS PROCESS...: until the APIService is Available; dies when a PROCESS exits
  local name=$1 deadline=$(( $(date +%s) + $2 )) p; shift 2
  until k wait --for=condition=Available "apiservice/$name" --timeout=5s >/dev/null 2>&1; do
    for p in "$@"; do alive "$p" || die "$p exited; see $S/logs/$p.log: $(tail -5 "$S/logs/$p.log")"; done
    [ "$(date +%s)" -lt "$deadline" ] ||
      die "APIService $name not Available: $(k get apiservice "$name" -o jsonpath='{.status.conditions[0].message}')"
  done
  sleep 2
  for p in "$@"; do alive "$p" || die "$p exited; see $S/logs/$p.log: $(tail -5 "$S/logs/$p.log")"; done
}

stop_processes() { # NAME...: SIGTERM, then SIGKILL after 10 s, each process this add-on started
  local name pid
  for name in "$@"; do
    [ -f "$S/pids/$name" ] || continue
    pid=$(cat "$S/pids/$name")
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 1 20); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
    kill -9 "$pid" 2>/dev/null || true
  done
}

apiservice_owner() { # APISERVICE: the namespace/name of the Service behind it, or nothing
  k get apiservice "$1" -o jsonpath='{.spec.service.namespace}/{.spec.service.name}' 2>/dev/null || true
}
