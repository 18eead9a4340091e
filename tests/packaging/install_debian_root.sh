#!/usr/bin/env bash
# packaging/install: installs the .deb files with apt into a fresh Debian 12
# root (debootstrap, cached; copied for each run), then from the installed
# files only: `kvcached --version`; `import kvcached` in python3; with
# kvcached-mooncake-compat, Mooncake's names (the mooncake_master link,
# `import mooncake.store` in every python3) and their removal; the master
# and a store started the way their units start them (ExecStart=,
# /etc/default/kvcached, the packaged config, as the kvcached user) with
# readiness (READY=1) and stopping (STOPPING=1) seen on a stand-in
# notification socket; SIGHUP; `kvcached bench` against them;
# `systemd-analyze verify` of the installed units. Then the root is booted
# with systemd-nspawn and the units run under systemd itself (see
# systemd_phase). Last, remove and purge: nothing Debian policy says must go
# is left behind.
#
# The cached root lives in $KVCACHED_TEST_CACHE (default
# /var/cache/kvcached-test, or BUILD_DIR/packaging/cache where that is not
# writable); delete it to start over.
source "$(dirname "$0")/common.sh"
require_package_tree
[[ $(id -u) == 0 ]] || skip "needs root (chroot, mounts); run ctest as root"
require_tools debootstrap unshare chroot python3 systemd-analyze systemd-nspawn nsenter
find_packages
HERE=$(readlink -f "$(dirname "$0")")

# Mounts (proc, sys, the apt caches) live in a private mount namespace.
in_cached_root_namespace "$@"
cache=$CACHE
cached_root=$CACHED_ROOT
work=$(mktemp -d /var/tmp/kvcached-install-test.XXXXXX)
root=$work/root
pids=()
mounts=()
cleanup() {
  local p i
  for p in "${pids[@]}"; do kill -KILL "$p" 2>/dev/null || true; done
  for ((i = ${#mounts[@]} - 1; i >= 0; i--)); do umount "${mounts[i]}" 2>/dev/null || true; done
  # Never delete through a mount that is still there (the apt caches).
  if grep -qF " $work/" /proc/self/mounts; then
    echo "left $work in place: something is still mounted under it" >&2
  else
    rm -rf --one-file-system "$work"
  fi
}
trap cleanup EXIT
note "copying the cached root $cached_root"
cp -a "$cached_root" "$root"
# The root has its own /dev nodes (debootstrap made them): the host's /dev
# is not bound in. proc and sysfs are fresh instances.
mnt() {  # mount arguments..., target last
  mount "$@" || fail "mount $* failed"
  mounts+=("${!#}")
}
mnt -t proc proc "$root/proc"
mnt -t sysfs -o ro sysfs "$root/sys"
mkdir -p "$cache/apt-archives/partial" "$cache/apt-lists/partial"
mnt --bind "$cache/apt-archives" "$root/var/cache/apt/archives"
mnt --bind "$cache/apt-lists" "$root/var/lib/apt/lists"
cp -L /etc/resolv.conf "$root/etc/resolv.conf"
in_root() { chroot "$root" env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LC_ALL=C.UTF-8 "$@"; }
errors=0
bad() {
  echo "FAILED: $*" >&2
  errors=$((errors + 1))
}

note "apt-get update in the root"
if ! in_root apt-get update -q >"$work/apt-update.log" 2>&1; then
  cat "$work/apt-update.log"
  skip "apt-get update in the Debian root failed: Debian's registry is not reachable"
fi
cp "${ALL_DEBS[@]}" "$root/tmp/"
in_root_debs=()
for d in "${ALL_DEBS[@]}"; do in_root_debs+=("/tmp/$(basename "$d")"); done
note "apt-get install ${in_root_debs[*]} (dependencies from Debian's registry)"
if ! in_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
    "${in_root_debs[@]}" >"$work/install.log" 2>&1; then
  cat "$work/install.log"
  fail "apt-get install of the .deb failed"
fi
grep -E '^(Setting up|Unpacking) ' "$work/install.log" || true

# --- installed ---
note "kvcached --version"
in_root kvcached --version || bad "kvcached --version failed"
in_root getent passwd kvcached || bad "no kvcached user after install"
in_root getent group kvcached >/dev/null || bad "no kvcached group after install"
while read -r f; do
  [[ -e $root$f ]] || bad "$f is not installed"
done < <(promised_files)
conffiles=$(in_root dpkg-query -W -f='${Conffiles}\n' kvcached)
for f in ${CONFFILES//;/ }; do
  grep -q " $f " <<<"$conffiles" || bad "dpkg does not know $f as a conffile"
done
for u in ${UNITS//;/ }; do
  [[ -f $root$UNITDIR/$u ]] || bad "$u is not installed"
  [[ -e $root/etc/systemd/system/multi-user.target.wants/$u ]] && bad "$u was enabled on install"
done

if [[ $HAS_DEV == 1 ]]; then
  while read -r f; do [[ -e $root$f ]] || bad "$f (kvcached-dev) is not installed"; done < <(promised_dev_files)
fi
if [[ $HAS_PYTHON == 1 ]]; then
  while read -r f; do [[ -e $root$f ]] || bad "$f (python3-kvcached) is not installed"; done < <(promised_python_files)
  # Debian's python3 finds the module, and it finds libkvcached.so.0.
  note "python3 -c 'import kvcached' (as the kvcached user)"
  chroot "$root" setpriv --reuid=kvcached --regid=kvcached --init-groups -- env -i \
    PATH=/usr/bin:/bin python3 -c 'import kvcached, kvcached._lib as l; print(kvcached.__file__, l.path, l.version())' ||
    bad "python3 cannot import the installed kvcached module and load its library"
fi
if [[ $HAS_COMPAT == 1 ]]; then
  while read -r f; do
    [[ -e $root$f ]] || bad "$f (kvcached-mooncake-compat) is not installed"
  done < <(promised_compat_files)
  link=$(readlink "$root$BINDIR/mooncake_master" || true)
  [[ $link == kvcached ]] || bad "$BINDIR/mooncake_master points at '$link', not kvcached"
  # The .pth applies to every python3 process, without PYTHONPATH.
  note "python3 -c 'import mooncake.store, mooncake.http_metadata_server' (as the kvcached user)"
  out=$(chroot "$root" setpriv --reuid=kvcached --regid=kvcached --init-groups -- env -i \
    PATH=/usr/bin:/bin python3 -c \
    'import mooncake.store, mooncake.http_metadata_server; print(mooncake.store.__file__)') ||
    bad "python3 cannot import mooncake.store and mooncake.http_metadata_server"
  echo "$out"
  [[ $out == "$PYTHONDIR/kvcached/_shim/"* ]] ||
    bad "mooncake.store is '$out', not kvcached's shim under $PYTHONDIR/kvcached/_shim"
  note "python3 -m kvcached.shim status"
  out=$(in_root python3 -m kvcached.shim status) || bad "kvcached.shim status failed"
  echo "$out"
  grep -qF "$PYTHONDIR/kvcached-mooncake-shim.pth: present (the kvcached-mooncake-compat package's" <<<"$out" ||
    bad "kvcached.shim status does not name the package's .pth"
  note "python3 -m kvcached.shim uninstall --site $PYTHONDIR (must refuse)"
  in_root python3 -m kvcached.shim uninstall --site "$PYTHONDIR" &&
    bad "kvcached.shim uninstall did not refuse to remove the package's .pth"
  [[ -f $root$PYTHONDIR/kvcached-mooncake-shim.pth ]] || bad "kvcached.shim uninstall removed the package's .pth"

  note "apt-get remove kvcached-mooncake-compat"
  if ! in_root env DEBIAN_FRONTEND=noninteractive apt-get remove -y -q kvcached-mooncake-compat \
      >"$work/remove-compat.log" 2>&1; then
    cat "$work/remove-compat.log"
    bad "apt-get remove kvcached-mooncake-compat failed"
  fi
  [[ -e $root$BINDIR/mooncake_master || -L $root$BINDIR/mooncake_master ]] &&
    bad "$BINDIR/mooncake_master is still there after removing kvcached-mooncake-compat"
  [[ -e $root$PYTHONDIR/kvcached-mooncake-shim.pth ]] &&
    bad "the .pth is still there after removing kvcached-mooncake-compat"
  for p in kvcached python3-kvcached; do
    [[ $(in_root dpkg-query -W -f='${Status}' "$p") == "install ok installed" ]] ||
      bad "removing kvcached-mooncake-compat removed $p"
  done
  in_root python3 -c 'import mooncake.store' 2>/dev/null &&
    bad "mooncake.store still imports after removing kvcached-mooncake-compat"
  in_root kvcached --version >/dev/null || bad "kvcached does not run after removing kvcached-mooncake-compat"
  note "kvcached-mooncake-compat removed: no link, no .pth; kvcached stays. Installed again for the rest"
  in_root dpkg -i "/tmp/$(basename "$COMPAT_DEB")" >"$work/reinstall-compat.log" 2>&1 ||
    { cat "$work/reinstall-compat.log"; fail "dpkg -i of kvcached-mooncake-compat failed"; }
fi

note "systemd-analyze verify of the installed units"
for u in ${UNITS//;/ }; do
  [[ $u == *@.service ]] && u=${u/@./@default.}
  out=$(MANPATH=$root/usr/share/man systemd-analyze --root="$root" verify "$u" 2>&1) || true
  [[ -z $out ]] || bad "systemd-analyze verify $u (installed) printed: $out"
done

# --- run the master and a store as their units do ---
# ExecStart= with %i and $VAR expanded as systemd does, after
# EnvironmentFile=/etc/default/kvcached.
exec_start() {  # unit, instance
  sed -n 's/^ExecStart=//p' "$root$UNITDIR/$1" | sed "s/%i/$2/g"
}
start_service() {  # name, unit, instance, extra args variable, its value
  local name=$1 cmd
  cmd=$(exec_start "$2" "$3")
  python3 "$HERE/notify_listener.py" "$root/run/notify-$name" "$work/notify-$name.log" &
  pids+=($!)
  disown $!
  for _ in $(seq 1 100); do [[ -S $root/run/notify-$name ]] && break; sleep 0.05; done
  chroot "$root" env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin NOTIFY_SOCKET="/run/notify-$name" \
    setpriv --reuid=kvcached --regid=kvcached --init-groups -- \
    bash -c "set -a; . /etc/default/kvcached; $4=\"$5\"; set +a; exec $cmd" \
    >"$work/$name.out" 2>"$work/$name.log" &
  pids+=($!)
  eval "${name}_pid=\$!"
  note "$name: $cmd (with $4=\"$5\")"
}
wait_notify() {  # name, text
  for _ in $(seq 1 200); do
    grep -q "$2" "$work/notify-$1.log" 2>/dev/null && return 0
    sleep 0.05
  done
  cat "$work/$1.log" >&2
  return 1
}

start_service master kvcached-master.service "" KVCACHED_MASTER_ARGS \
  "--port 0 --admin-port 0 --meta-port 0"
wait_notify master READY=1 || fail "the master sent no READY=1"
rpc=$(sed -n 's/.*RPC on \([0-9.:]*\),.*/\1/p' "$work/master.log" | head -n1)
note "master ready on $rpc: $(head -n1 "$work/notify-master.log")"
[[ -n $rpc ]] || fail "the master did not log its RPC address"
start_service store kvcached-store@.service default KVCACHED_STORE_ARGS \
  "--master $rpc --segment-size 256MiB"
wait_notify store READY=1 || fail "the store sent no READY=1"
note "store ready: $(head -n1 "$work/notify-store.log")"
uid=$(in_root id -u kvcached)
for p in "$master_pid" "$store_pid"; do
  [[ $(awk '/^Uid:/ { print $2 }' "/proc/$p/status") == "$uid" ]] ||
    bad "process $p does not run as the kvcached user (uid $uid)"
done
note "both run as kvcached (uid $uid in the root)"

kill -HUP "$master_pid"
for _ in $(seq 1 100); do grep -q 'SIGHUP: reloaded' "$work/master.log" && break; sleep 0.05; done
grep 'SIGHUP' "$work/master.log" || bad "the master did not log the SIGHUP reload"

# A key space and objects small enough for the 256 MiB segment.
bench_args=(--master "$rpc" --workload put,get --object-size 64KiB --keys 256 --duration 1s)
note "kvcached bench ${bench_args[*]} (as the kvcached user)"
if ! chroot "$root" setpriv --reuid=kvcached --regid=kvcached --init-groups -- \
    env -i PATH=/usr/bin:/bin kvcached bench "${bench_args[@]}" \
    >"$work/bench.out" 2>"$work/bench.log"; then
  cat "$work/bench.out" "$work/bench.log"
  bad "kvcached bench against the installed master and store failed"
else
  cat "$work/bench.out"
fi

kill -TERM "$store_pid"
wait "$store_pid" || bad "the store exited $? on SIGTERM"
kill -TERM "$master_pid"
wait "$master_pid" || bad "the master exited $? on SIGTERM"
wait_notify master STOPPING=1 || bad "the master sent no STOPPING=1"
wait_notify store STOPPING=1 || bad "the store sent no STOPPING=1"
note "master and store stopped with status 0 after STOPPING=1"

# As an administrator would: the master enabled (started at boot below;
# purge must remove the link).
systemctl --root="$root" enable kvcached-master.service >/dev/null 2>&1 ||
  bad "systemctl --root enable failed"
[[ -L $root/etc/systemd/system/multi-user.target.wants/kvcached-master.service ]] ||
  bad "systemctl --root enable made no link"

# --- under systemd: the root booted with systemd-nspawn ---
# The units as systemd runs them, with their sandbox: start (Type=notify:
# start returns only after READY=1), the status text, reload (SIGHUP), an
# upgrade (dpkg -i again: postinst restarts what runs), a configuration
# error (exit 78, not restarted), stop, and remove stopping what runs. Its
# own network namespace: the packaged default ports cannot collide with
# anything on this machine.
systemd_phase() {
  local nspawn_pid init="" state out pid_before pid_after
  if [[ ${KVCACHED_BARE_CHROOT:-} == 1 ]]; then
    # A bare chroot (a fresh root made by hand, with no mount at / and no
    # cgroup hierarchy) cannot boot systemd in a container: systemd-nspawn
    # starts, but systemctl never reaches it. Said loudly; every other check
    # of this test ran. On a machine booted with systemd it runs.
    note "NOT RUN here: the units under systemd (this runs in a bare chroot; systemd-nspawn needs a booted host)"
    return
  fi
  umount "$root/sys" "$root/proc" && mounts=("${mounts[@]:2}")
  cp "$DEB" "$root/root/"
  systemd-nspawn -q --register=no --keep-unit --private-network -D "$root" -b \
    --console=passive >"$work/boot.log" 2>&1 &
  nspawn_pid=$!
  pids+=("$nspawn_pid")
  for _ in $(seq 1 100); do
    init=$(pgrep -P "$nspawn_pid" | head -n1 || true)
    [[ -n $init ]] && [[ $(cat "/proc/$init/comm" 2>/dev/null) == systemd ]] && break
    init=""
    sleep 0.1
  done
  if [[ -z $init ]]; then
    cat "$work/boot.log"
    bad "systemd did not start in the container"
    end_systemd_phase "$nspawn_pid"
    return
  fi
  ns() { nsenter -t "$init" -a env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LC_ALL=C.UTF-8 "$@"; }
  for _ in $(seq 1 150); do
    state=$(ns systemctl is-system-running 2>/dev/null || true)
    [[ $state == running || $state == degraded ]] && break
    sleep 0.2
  done
  note "systemd in the booted root: $state"
  [[ $(ns systemctl is-active kvcached-master.service) == active ]] ||
    bad "the enabled master did not start at boot"

  ns systemctl start kvcached-master.service kvcached-store@default.service ||
    bad "systemctl start of the master and store@default failed"
  for u in kvcached-master.service kvcached-store@default.service; do
    out=$(ns systemctl show -p ActiveState -p StatusText -p MainPID "$u")
    note "$u: $(tr '\n' ' ' <<<"$out")"
    grep -qx 'ActiveState=active' <<<"$out" || bad "$u is not active under systemd"
    grep -q '^StatusText=..' <<<"$out" || bad "$u sent no STATUS= with READY=1"
  done
  ns systemctl reload kvcached-master.service || bad "systemctl reload kvcached-master failed"
  for _ in $(seq 1 50); do
    ns journalctl -q -u kvcached-master.service | grep -q 'SIGHUP: reloaded' && break
    sleep 0.1
  done
  ns journalctl -q -u kvcached-master.service | grep 'SIGHUP' ||
    bad "systemctl reload: no SIGHUP line in the master's journal"

  pid_before=$(ns systemctl show -p MainPID --value kvcached-master.service)
  ns dpkg -i "/root/$(basename "$DEB")" >"$work/upgrade.log" 2>&1 ||
    { cat "$work/upgrade.log"; bad "dpkg -i over the installed package failed"; }
  pid_after=$(ns systemctl show -p MainPID --value kvcached-master.service)
  [[ $pid_after != 0 && $pid_after != "$pid_before" ]] ||
    bad "the upgrade did not restart the running master (MainPID $pid_before -> $pid_after)"
  note "upgrade (dpkg -i): the running master restarted, MainPID $pid_before -> $pid_after"

  ns systemctl stop kvcached-store@default.service kvcached-master.service
  for u in kvcached-master.service kvcached-store@default.service; do
    out=$(ns systemctl show -p Result -p ExecMainStatus "$u" | tr '\n' ' ')
    [[ $out == *Result=success* && $out == *ExecMainStatus=0* ]] || bad "$u did not stop cleanly: $out"
  done
  note "stopped: Result=success, exit 0"

  cp "$root/etc/kvcached/meta.json" "$work/meta.json"
  printf '{ "no_such_option": 1 }\n' >"$root/etc/kvcached/meta.json"
  ns systemctl start kvcached-meta.service 2>/dev/null && bad "kvcached-meta started with a bad config file"
  sleep 3  # longer than RestartSec=
  out=$(ns systemctl show -p ExecMainStatus -p NRestarts -p ActiveState kvcached-meta.service | tr '\n' ' ')
  note "bad config file: $out"
  [[ $out == *ExecMainStatus=78* ]] || bad "a bad config file did not exit 78: $out"
  [[ $out == *NRestarts=0* ]] || bad "exit 78 was restarted (RestartPreventExitStatus): $out"
  cp "$work/meta.json" "$root/etc/kvcached/meta.json"
  ns systemctl reset-failed kvcached-meta.service || true

  ns systemctl start kvcached-master.service || bad "restart of the master failed"
  ns env DEBIAN_FRONTEND=noninteractive apt-get remove -y -q kvcached >"$work/remove.log" 2>&1 ||
    { cat "$work/remove.log"; bad "apt-get remove (under systemd) failed"; }
  ns pgrep -x kvcached >/dev/null && bad "a kvcached process outlived the removal (prerm stops the units)"
  note "apt-get remove under systemd: the running master was stopped"

  ns systemctl poweroff >/dev/null 2>&1 || kill -TERM "$nspawn_pid"
  end_systemd_phase "$nspawn_pid"
}
# Stops the container (if it still runs) and puts the root back as the
# purge checks expect it, whichever way the phase ended.
end_systemd_phase() {
  local nspawn_pid=$1
  kill -TERM "$nspawn_pid" 2>/dev/null || true
  for _ in $(seq 1 100); do kill -0 "$nspawn_pid" 2>/dev/null || break; sleep 0.2; done
  kill -KILL "$nspawn_pid" 2>/dev/null || true
  wait "$nspawn_pid" 2>/dev/null || true
  rm -f "$root/root/$(basename "$DEB")"
  mnt -t proc proc "$root/proc"
  mnt -t sysfs -o ro sysfs "$root/sys"
}
systemd_phase

# --- remove, then purge ---
# Removing kvcached removes the packages that depend on it as well (done
# already when the systemd phase ran).
if in_root dpkg-query -W -f='${Status}' kvcached 2>/dev/null | grep -q 'ok installed'; then
  note "apt-get remove kvcached"
  in_root env DEBIAN_FRONTEND=noninteractive apt-get remove -y -q kvcached >"$work/remove.log" 2>&1 ||
    { cat "$work/remove.log"; fail "apt-get remove failed"; }
fi
[[ -e $root$BINDIR/kvcached ]] && bad "the binary is still there after remove"
for f in ${CONFFILES//;/ }; do
  [[ -f $root$f ]] || bad "remove deleted the conffile $f (only purge may)"
done
in_root getent passwd kvcached >/dev/null || bad "remove deleted the kvcached user"

pkgs=$(for d in "${ALL_DEBS[@]}"; do dpkg-deb -f "$d" Package; done)
note "dpkg --purge" $pkgs
# shellcheck disable=SC2086
in_root dpkg --purge $pkgs >"$work/purge.log" 2>&1 || { cat "$work/purge.log"; fail "purge failed"; }
cat "$work/purge.log"
for p in $pkgs; do
  in_root dpkg-query -W "$p" >/dev/null 2>&1 && bad "dpkg still knows $p after purge"
done
left=$(cd "$root" && find . -xdev \( -path ./proc -o -path ./sys -o -path ./dev -o -path ./tmp \
  -o -path ./var/cache/apt -o -path ./var/lib/apt/lists \) -prune -o \
  \( -name '*kvcached*' -o -name '*mooncake*' \) -print)
[[ -z $left ]] ||
  bad "left after purge (conffiles, units, enablement links, /etc/kvcached, mooncake_master):"$'\n'"$left"
in_root getent passwd kvcached >/dev/null ||
  bad "purge deleted the kvcached user (kept on purge; see docs/packaging.md)"
note "after purge: no kvcached files or links; the kvcached user and group are kept"

# Once more, with a file of the administrator's own in /etc/kvcached: purge
# must leave it (and so the directory) alone.
note "dpkg -i, a file of the administrator's own, dpkg --purge"
in_root dpkg -i "/tmp/$(basename "$DEB")" >"$work/reinstall.log" 2>&1 ||
  { cat "$work/reinstall.log"; fail "reinstalling with dpkg -i failed"; }
echo '{}' >"$root/etc/kvcached/store-extra.json"
in_root dpkg --purge kvcached >"$work/purge2.log" 2>&1 || { cat "$work/purge2.log"; fail "purge failed"; }
[[ -f $root/etc/kvcached/store-extra.json ]] || bad "purge deleted a file the administrator made"
left=$(cd "$root/etc/kvcached" && ls -A)
[[ $left == store-extra.json ]] || bad "purge left more than the administrator's file in /etc/kvcached: $left"

[[ $errors == 0 ]] || fail "$errors problem(s) installing, running or removing the .deb"
echo "the .deb installs, runs, and removes cleanly in a fresh Debian 12 root"
