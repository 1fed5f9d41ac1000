# shellcheck shell=bash
# Shared helpers for scripts/services/* (sourced, not executed).
#
# A service script does:
#   set -euo pipefail
#   . "$(dirname "${BASH_SOURCE[0]}")/lib.sh"     # sets SVC_REPO and cds there
# and then uses the svc_* functions below. Nothing here starts anything by itself.

SVC_LIB_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
SVC_REPO=$(cd "$SVC_LIB_DIR/../.." && pwd)
cd "$SVC_REPO" || exit 1

# shellcheck disable=SC2034  # SVC_CACHE and SVC_VAR are for the sourcing scripts
# Cache for downloads, shared by all checkouts (outside the repo).
SVC_CACHE=${FRAUDSTREAM_CACHE:-${HOME:-/root}/.cache/fraudstream}
# shellcheck disable=SC2034
# Data, logs, pid files and generated configs (gitignored: var/).
SVC_VAR=${FRAUDSTREAM_VAR:-$SVC_REPO/var/services}

SVC_NAME=${SVC_NAME:-$(basename "$0")}

svc_log() { printf '%s: %s\n' "$SVC_NAME" "$*" >&2; }
svc_die() { printf '%s: error: %s\n' "$SVC_NAME" "$*" >&2; exit 1; }

# svc_now_ms: wall clock in milliseconds (for timings).
svc_now_ms() { date +%s%3N; }

# svc_java_bin MIN_MAJOR: print the java executable to use, or die with a clear message.
# Order: $JAVA, $JAVA_HOME/bin/java, `java` on PATH.
svc_java_bin() {
  local min=$1 java version major
  if [ -n "${JAVA:-}" ]; then
    java=$JAVA
  elif [ -n "${JAVA_HOME:-}" ] && [ -x "$JAVA_HOME/bin/java" ]; then
    java=$JAVA_HOME/bin/java
  else
    java=$(command -v java || true)
  fi
  [ -n "$java" ] && [ -x "$(command -v "$java" || true)" ] \
    || svc_die "Java $min+ is required but no 'java' was found (set JAVA or JAVA_HOME, or: apt-get install openjdk-17-jre-headless)"
  # `java -version` prints e.g.: openjdk version "17.0.15" 2025-04-15  /  java version "1.8.0_392"
  version=$("$java" -version 2>&1 | sed -n 's/.* version "\([^"]*\)".*/\1/p' | head -1)
  [ -n "$version" ] || svc_die "could not read the version of $java ('$java -version' said: $("$java" -version 2>&1 | head -1))"
  major=${version%%[.+-]*}
  [ "$major" = 1 ] && { major=${version#1.}; major=${major%%.*}; }
  [[ $major =~ ^[0-9]+$ ]] || svc_die "could not parse the Java version '$version' of $java"
  [ "$major" -ge "$min" ] || svc_die "Java $min+ is required, but $java is Java $version (set JAVA or JAVA_HOME to a newer JDK)"
  printf '%s\n' "$java"
}

# svc_require_mvn: die unless Maven is on PATH (or $MVN).
svc_mvn_bin() {
  local mvn=${MVN:-mvn}
  command -v "$mvn" >/dev/null 2>&1 \
    || svc_die "Maven ('$mvn') is required to download jars but was not found (apt-get install maven, or set MVN)"
  printf '%s\n' "$mvn"
}

# svc_pid_alive PIDFILE [PATTERN]: true when PIDFILE names a live process whose command line
# contains PATTERN (guards against a recycled pid). Removes a stale pid file.
svc_pid_alive() {
  local pidfile=$1 pattern=${2:-} pid
  [ -f "$pidfile" ] || return 1
  pid=$(tr -dc '0-9' <"$pidfile" 2>/dev/null || true)
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
    if [ -z "$pattern" ] || tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF -- "$pattern"; then
      # A zombie still answers kill -0; treat it as dead.
      [ "$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null)" != Z ] && return 0
    fi
  fi
  rm -f "$pidfile"
  return 1
}

# svc_adopt PIDFILE PATTERN: when PIDFILE is missing or stale but a live process's command
# line contains PATTERN (say var/ was deleted under a running service), write its pid to
# PIDFILE and succeed, so that stop and status still find it.
svc_adopt() {
  local pidfile=$1 pattern=$2 regex pid
  regex=$(printf '%s' "$pattern" | sed 's/[][\.*^$+?(){}|]/\\&/g')
  pid=$(pgrep -f -- "$regex" 2>/dev/null | grep -vx "$$" | head -1 || true)
  [ -n "$pid" ] || return 1
  mkdir -p "$(dirname "$pidfile")"
  printf '%s\n' "$pid" >"$pidfile"
}

# svc_pid PIDFILE: print the pid in PIDFILE.
svc_pid() { tr -dc '0-9' <"$1"; }

# svc_signal_stop PIDFILE PATTERN: send SIGTERM if running (no waiting).
svc_signal_stop() {
  local pidfile=$1 pattern=$2
  svc_pid_alive "$pidfile" "$pattern" || return 0
  kill -TERM "$(svc_pid "$pidfile")" 2>/dev/null || true
}

# svc_wait_stopped PIDFILE PATTERN TIMEOUT_S LABEL: wait for exit, SIGKILL after TIMEOUT_S.
svc_wait_stopped() {
  local pidfile=$1 pattern=$2 timeout=$3 label=$4 pid
  svc_pid_alive "$pidfile" "$pattern" || { rm -f "$pidfile"; return 0; }
  pid=$(svc_pid "$pidfile")
  svc_wait_exit "$pid" "$timeout" "$label"
  rm -f "$pidfile"
}

# svc_port_open HOST PORT: true when something accepts TCP connections there.
svc_port_open() {
  (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null
}

# svc_tail_log FILE [N]: print the last N lines of FILE to stderr, indented.
svc_tail_log() {
  local file=$1 n=${2:-40}
  if [ -s "$file" ]; then
    printf '%s: --- last %s lines of %s ---\n' "$SVC_NAME" "$n" "$file" >&2
    tail -n "$n" "$file" | sed 's/^/    /' >&2
    printf '%s: ---\n' "$SVC_NAME" >&2
  else
    printf '%s: (%s is empty or missing)\n' "$SVC_NAME" "$file" >&2
  fi
}

# svc_launch PIDFILE OUTFILE CMD...: start CMD detached (own session, stdin from /dev/null,
# stdout+stderr appended to OUTFILE, so callers' pipes are never held open) and record its pid.
svc_launch() {
  local pidfile=$1 outfile=$2
  shift 2
  setsid "$@" </dev/null >>"$outfile" 2>&1 &
  # setsid execs in place here (a background child of a non-interactive shell is not a
  # process-group leader), so $! is the service's own pid.
  printf '%s\n' "$!" >"$pidfile"
  disown "$!" 2>/dev/null || true
}

# ---------------------------------------------------------------- JVM services run as a
# throwaway user from an unpacked distribution (Elasticsearch, OpenSearch)

# svc_java_major JAVA: print the major version of the java executable JAVA (e.g. 17, 25), or
# nothing when it cannot be run or parsed.
svc_java_major() {
  local version major
  version=$("$1" -version 2>&1 | sed -n 's/.* version "\([^"]*\)".*/\1/p' | head -1) || true
  major=${version%%[.+-]*}
  [ "$major" = 1 ] && { major=${version#1.}; major=${major%%.*}; }
  [[ $major =~ ^[0-9]+$ ]] && printf '%s\n' "$major"
  return 0
}

# svc_java_home MIN [VAR]: print the home directory of a Java MIN+ installation.
# VAR names an environment variable (e.g. ES_JAVA_HOME) that, when set, is the only choice
# (die if it is older than MIN). Otherwise the first of JAVA_HOME, the `java` on PATH and the
# JDKs under ${SVC_JVM_DIRS:-/usr/lib/jvm} (newest first) that is MIN or newer.
svc_java_home() {
  local min=$1 var=${2:-} home major cand best="" best_major=0 seen=""
  if [ -n "$var" ] && [ -n "${!var:-}" ]; then
    home=${!var}
    [ -x "$home/bin/java" ] || svc_die "$var=$home has no bin/java"
    major=$(svc_java_major "$home/bin/java")
    [ -n "$major" ] && [ "$major" -ge "$min" ] \
      || svc_die "$var=$home is Java ${major:-of unknown version}; Java $min+ is required"
    printf '%s\n' "$home"; return 0
  fi
  for cand in "${JAVA_HOME:-}" "$(readlink -f "$(command -v java 2>/dev/null || true)" 2>/dev/null | sed 's|/bin/java$||')"; do
    [ -n "$cand" ] && [ -x "$cand/bin/java" ] || continue
    major=$(svc_java_major "$cand/bin/java")
    if [ -n "$major" ] && [ "$major" -ge "$min" ]; then printf '%s\n' "$cand"; return 0; fi
    seen+=" $cand (Java ${major:-?})"
  done
  local dir
  for dir in ${SVC_JVM_DIRS:-/usr/lib/jvm}; do
    for cand in "$dir"/*; do
      [ -x "$cand/bin/java" ] && [ ! -L "$cand" ] || continue
      major=$(svc_java_major "$cand/bin/java")
      [ -n "$major" ] || continue
      [ "$major" -ge "$min" ] || { seen+=" $cand (Java $major)"; continue; }
      if [ "$major" -gt "$best_major" ]; then best=$cand; best_major=$major; fi
    done
  done
  [ -n "$best" ] && { printf '%s\n' "$best"; return 0; }
  svc_die "Java $min+ is required but none was found (looked at JAVA_HOME, java on PATH and ${SVC_JVM_DIRS:-/usr/lib/jvm}/*; found:${seen:- nothing})${var:+; set $var to a JDK $min+}"
}

# svc_maven_fetch ARTIFACT OUTDIR LOG: download one artifact (G:A:V[:TYPE[:CLASSIFIER]])
# with Maven into OUTDIR (Maven output to LOG; needs no pom). Dies with the log tail.
svc_maven_fetch() {
  local artifact=$1 outdir=$2 log=$3 mvn
  mvn=$(svc_mvn_bin)
  mkdir -p "$outdir"
  # shellcheck disable=SC2086  # SVC_MVN_ARGS is a list of words
  if ! "$mvn" -q -B org.apache.maven.plugins:maven-dependency-plugin:3.6.1:copy \
      "-Dartifact=$artifact" "-DoutputDirectory=$outdir" -Dmdep.overWriteReleases=true \
      ${SVC_MVN_ARGS:-} >"$log" 2>&1 </dev/null; then
    svc_tail_log "$log" 30
    svc_die "Maven could not fetch $artifact (output above and in $log; is the Maven repository reachable, and does it serve this version?)"
  fi
}

# svc_ensure_user NAME: create the system user NAME (with a home) unless it exists. Root only.
svc_ensure_user() {
  id "$1" >/dev/null 2>&1 && return 0
  [ "$(id -u)" = 0 ] || svc_die "user '$1' does not exist and only root can create it"
  useradd -r -m -s /usr/sbin/nologin "$1" >/dev/null 2>&1 || id "$1" >/dev/null 2>&1 \
    || svc_die "could not create user '$1' (useradd -r -m $1)"
  svc_log "created system user '$1' (used to run services that refuse to run as root)"
}

# svc_as USER CMD...: run CMD as USER (via runuser when we are root and USER differs from us),
# with a clean environment: pass variables as `env K=V ...` in CMD.
svc_as() {
  local user=$1
  shift
  if [ "$(id -u)" = 0 ] && [ "$user" != root ]; then
    runuser -u "$user" -- "$@"
  else
    "$@"
  fi
}

# svc_user_can USER TEST PATH: true when USER passes `test TEST PATH` (e.g. -w dir), i.e. can
# reach PATH through all its parent directories.
svc_user_can() { svc_as "$1" test "$2" "$3" 2>/dev/null; }

# svc_mirror_tree SRC DEST: make DEST a copy of the directory SRC made of hard links (no extra
# space; a real copy when SRC is on another filesystem). DEST is replaced atomically.
svc_mirror_tree() {
  local src=$1 dest=$2 tmp
  tmp=$dest.tmp.$$
  rm -rf "$tmp"
  mkdir -p "$(dirname "$dest")"
  cp -al "$src" "$tmp" 2>/dev/null || { rm -rf "$tmp"; cp -a "$src" "$tmp"; } \
    || { rm -rf "$tmp"; svc_die "could not copy $src to $dest"; }
  rm -rf "$dest"
  mv "$tmp" "$dest"
}

# svc_mark_offset FILE OFFSET_FILE: remember FILE's current size (0 if missing) in OFFSET_FILE.
svc_mark_offset() { stat -c %s "$1" >"$2" 2>/dev/null || echo 0 >"$2"; }

# svc_tail_since FILE OFFSET_FILE N LABEL: to stderr, the last N lines FILE got since the byte
# offset in OFFSET_FILE (see svc_mark_offset); nothing when it got none.
svc_tail_since() {
  local file=$1 off n=$3 label=$4
  off=$(cat "$2" 2>/dev/null || echo 0)
  [ -s "$file" ] || return 0
  [ "$(stat -c %s "$file")" -ge "$off" ] || off=0   # the file was truncated or replaced
  tail -c +"$((off + 1))" "$file" | grep -q '[^[:space:]]' || return 0
  svc_log "--- $label ($file), last $n lines:"
  tail -c +"$((off + 1))" "$file" | tail -n "$n" | cut -c1-600 | sed 's/^/    /' >&2
}

# svc_http_get URL MAX_SECONDS: print the body of a GET (any HTTP status); fail when there is
# no answer. Uses curl, else python3.
svc_http_get() {
  if command -v curl >/dev/null 2>&1; then
    curl -sS --max-time "$2" "$1" 2>/dev/null
  else
    python3 - "$1" "$2" <<'PY' 2>/dev/null
import sys, urllib.request, urllib.error
try:
    body = urllib.request.urlopen(sys.argv[1], timeout=float(sys.argv[2])).read()
except urllib.error.HTTPError as e:
    body = e.read()
sys.stdout.write(body.decode("utf-8", "replace"))
PY
  fi
}

# svc_stop_pid PID TIMEOUT_S LABEL: SIGTERM PID, wait for it to exit, SIGKILL after TIMEOUT_S.
svc_stop_pid() {
  kill -TERM "$1" 2>/dev/null || return 0
  svc_wait_exit "$1" "$2" "$3"
}

# svc_wait_exit PID TIMEOUT_S LABEL: wait for PID to exit (zombies count as gone), SIGKILL after TIMEOUT_S.
svc_wait_exit() {
  local pid=$1 timeout=$2 label=$3 deadline
  deadline=$(( $(date +%s) + timeout ))
  while kill -0 "$pid" 2>/dev/null && [ "$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null)" != Z ]; do
    if [ "$(date +%s)" -ge "$deadline" ]; then
      svc_log "$label (pid $pid) did not stop within ${timeout}s; sending SIGKILL"
      kill -KILL "$pid" 2>/dev/null || true
      sleep 0.5
      break
    fi
    sleep 0.2
  done
}

# svc_rss_kb PID: resident set size of PID in kB (empty when gone).
svc_rss_kb() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status" 2>/dev/null; }
