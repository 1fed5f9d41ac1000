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
  local pidfile=$1 pattern=$2 timeout=$3 label=$4 pid deadline
  svc_pid_alive "$pidfile" "$pattern" || { rm -f "$pidfile"; return 0; }
  pid=$(svc_pid "$pidfile")
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
