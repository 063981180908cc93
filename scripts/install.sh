#!/usr/bin/env bash
# Installs OnionDrop as a hardened systemd service on Debian. Idempotent: run it again after `git pull`
# to upgrade; it never overwrites an existing config or touches data, and says what it did.
#
#   sudo scripts/install.sh [--recipient PUBKEY]...      a real install (creates the `oniondrop` user)
#   scripts/install.sh --root DIR [--no-deps] ...          into a throwaway root, e.g. for tests
#   --tor system [--tor-group GROUP]                       serve through Debian's tor@default (docs/tor.md)
#   sudo scripts/install.sh --uninstall                    remove the program, unit and sshd drop-in; keep data,
#                                                          config, journalists' keys and the account (says how)
#   --nuget-packages DIR                                   build from this NuGet package folder (readable by the
#                                                          build account), downloading nothing: an offline copy
#
# What it does: installs Debian's tor (and ICU, OpenSSL, CA certificates for .NET); builds the daemon (Release)
# as the unprivileged system user oniondrop-build, installs it to /opt/oniondrop and links
# /usr/local/bin/oniondrop; creates the system user `oniondrop`; creates /var/lib/oniondrop (0700) and
# /etc/oniondrop/oniondrop.json (commented, holding the recipients' public keys: from --recipient, else a
# placeholder the daemon refuses until you replace it); installs /etc/systemd/system/oniondrop.service;
# creates /etc/oniondrop/authorized_keys (journalists' SSH keys, root's) and points sshd at it for the
# account oniondrop only (/etc/ssh/sshd_config.d/oniondrop.conf).
# With --tor system: the config (when first written) says so, the unit gets the drop-in
# scripts/oniondrop-system-tor.conf (web socket in /run/oniondrop, group debian-tor), and tor's AppArmor
# profile may connect to that socket (/etc/apparmor.d/local/system_tor).
set -euo pipefail
repo=$(cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/.." && pwd)

root=/ deps=1 recipients=() tor=launch torgroup=debian-tor uninstall=0 nugetpackages=
usage() { sed -n '2,22s/^# \{0,1\}//p' "$0"; }
while (($#)); do
  case "$1" in
    --root) root=${2:?--root needs a directory}; shift 2 ;;
    --recipient) recipients+=("${2:?--recipient needs a public key}"); shift 2 ;;
    --no-deps) deps=0; shift ;;
    --tor) tor=${2:?--tor needs launch or system}; shift 2 ;;
    --tor-group) torgroup=${2:?--tor-group needs a group}; shift 2 ;;
    --uninstall) uninstall=1; shift ;;
    --nuget-packages) nugetpackages=$(readlink -m "${2:?--nuget-packages needs a directory}"); shift 2 ;;
    -h|--help) usage; exit 0 ;;
    *) echo "install.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done
case "$tor" in launch|system) ;; *) echo "install.sh: --tor must be launch or system (got '$tor')" >&2; exit 2 ;; esac
[[ $torgroup =~ ^[a-z_][a-z0-9_-]*$ ]] || { echo "install.sh: '$torgroup' is not a group name" >&2; exit 2; }
root=$(readlink -m "$root")
real=0; [ "$root" = / ] && real=1
if ((real)) && [ "$(id -u)" -ne 0 ]; then echo "install.sh: run as root (sudo), or use --root DIR" >&2; exit 1; fi
declare -A given=()
for r in "${recipients[@]}"; do
  [[ $r =~ ^odpk1[a-z0-9]+$ ]] || { echo "install.sh: '$r' does not look like a public key (odpk1...)" >&2; exit 2; }
  # the daemon refuses a key listed twice: say so now, before anything is installed
  [ -z "${given[$r]:-}" ] || { echo "install.sh: --recipient $r given twice: list each journalist's key once" >&2; exit 2; }
  given[$r]=1
done

p() { echo "${root%/}$1"; }                   # a path inside the install root
say() { echo "install.sh: $*"; }
user=oniondrop
opt=$(p /opt/oniondrop) etc=$(p /etc/oniondrop) data=$(p /var/lib/oniondrop)
config="$etc/oniondrop.json" unit=$(p /etc/systemd/system/oniondrop.service) link=$(p /usr/local/bin/oniondrop)
dropin=$(p /etc/systemd/system/oniondrop.service.d/system-tor.conf) apparmor=$(p /etc/apparmor.d/local/system_tor)
websocketdir=/run/oniondrop
systemd_running() { ((real)) && [ -d /run/systemd/system ]; }

# --uninstall: what install.sh put in place goes; what holds submissions, keys or the operator's choices stays.
if ((uninstall)); then
  if systemd_running && systemctl list-unit-files oniondrop.service >/dev/null 2>&1; then
    systemctl disable --now oniondrop 2>/dev/null && say "oniondrop.service: stopped and disabled" || true
  fi
  sshdconf=$(p /etc/ssh/sshd_config.d/oniondrop.conf)
  for f in "$unit" "$dropin" "$link" "$sshdconf"; do
    if [ -e "$f" ] || [ -L "$f" ]; then rm -f "$f"; say "$f: removed"; fi
  done
  rmdir "$(dirname "$dropin")" 2>/dev/null || true
  [ -d "$opt" ] && { rm -rf "$opt"; say "$opt: removed"; }
  if ((real)); then
    systemd_running && systemctl daemon-reload
    if [ -d /etc/ssh/sshd_config.d ] && systemd_running && systemctl is-active --quiet ssh; then systemctl reload ssh; say "sshd: reloaded"; fi
    if getent passwd oniondrop-build >/dev/null; then userdel oniondrop-build; say "user oniondrop-build: removed"; fi
  fi
  buildhome=$(p /var/cache/oniondrop-build)
  [ -d "$buildhome" ] && { rm -rf "$buildhome"; say "$buildhome: removed (the build's NuGet cache)"; }
  [ -e "$apparmor" ] && grep -q oniondrop "$apparmor" && say "kept: $apparmor (its oniondrop lines let tor reach /run/oniondrop/web.sock; remove them by hand)"
  say "kept: $data (submissions not yet fetched, and the onion service's key: the address), $etc (config, journalists' SSH keys)$( ((real)) && getent passwd "$user" >/dev/null && echo ", and the user $user (their owner)")"
  say "to remove those too, once nothing there is needed: rm -rf $data $etc$( ((real)) && echo "; userdel $user")"
  exit 0
fi

# 1. Debian packages the service needs at run time: tor, and what .NET loads (ICU, OpenSSL) and its NuGet restore
#    trusts (CA certificates). Microsoft's dotnet package brings the last three; a .NET unpacked from its tarball does not.
if ((deps)); then
  packages=(tor libicu72 libssl3 ca-certificates) missing=()
  for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  if ((${#missing[@]} == 0)); then say "${packages[*]}: already installed"
  else
    say "installing Debian's ${missing[*]}"
    DEBIAN_FRONTEND=noninteractive apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
  command -v dotnet >/dev/null || { echo "install.sh: the .NET 10 SDK (dotnet) is needed to build; see README" >&2; exit 1; }
fi
if ((real)) && [ "$tor" = system ] && ! getent group "$torgroup" >/dev/null; then
  echo "install.sh: --tor system: no group '$torgroup' (Debian's tor package creates debian-tor; name the system tor's group with --tor-group)" >&2; exit 1
fi

# 2. The system user (a real install only: a throwaway root has no user database of its own).
if ((real)); then
  # A real shell, because sshd runs the journalists' forced command (authorized_keys `restrict,command=`,
  # scripts/authorized_keys.example) through it; nologin would refuse every pull. The password stays
  # locked, so the only way in is a key whose line forces `oniondrop pull --stdio`.
  # Its home is the program's folder, root's: at each pull sshd and PAM read files from the home
  # (~/.ssh/rc, ~/.pam_environment), so a home the daemon can write (its data directory) would let a
  # compromised daemon run code outside its sandbox at the next pull.
  home=/opt/oniondrop
  if getent passwd "$user" >/dev/null; then
    if [ "$(getent passwd "$user" | cut -d: -f7)" != /bin/sh ]; then
      usermod --shell /bin/sh "$user"; say "user $user: shell set to /bin/sh (for the forced pull command)"
    else say "user $user: exists"
    fi
    if [ "$(getent passwd "$user" | cut -d: -f6)" != "$home" ]; then
      # usermod refuses while the account runs a process (the daemon): say so, and finish the rest of the upgrade.
      if usermod --home "$home" "$user" 2>/dev/null; then say "user $user: home set to $home (root's, so nothing the daemon writes is read at login)"
      else say "WARNING: user $user: could not set its home to $home while it runs a process (the daemon?): systemctl stop oniondrop, run install.sh again, then start it"; fi
    fi
  else
    useradd --system --user-group --home-dir "$home" --no-create-home --shell /bin/sh "$user"
    say "user $user: created (password locked; SSH only with forced-command keys)"
  fi
  owner=(-o "$user" -g "$user")
else
  say "user $user: not created (--root $root); files stay owned by $(id -un)"
  owner=()
fi

# 3. The program: built unprivileged, then installed by root. MSBuild targets and NuGet packages run code during a
#    build, so it runs as an account that can change nothing outside its own folders: on a real install the system
#    user $builder (no login, no sudo; its home $buildhome keeps its NuGet cache), never root and never the
#    invoking sudo user (who can become root). It builds a copy of the sources (the checkout gets no obj/ or bin/
#    of anyone else's), with no new privileges (no setuid), in a PID namespace of its own, so no process of it
#    outlives the build; root then copies only what changed, so a rerun changes nothing.
stage=$(mktemp -d); trap 'rm -rf "$stage"' EXIT
chmod 0711 "$stage"   # the builder may pass through to its own folder, not list root's
builder=$(id -un) buildhome=${HOME:-}
compiler=(--disable-build-servers -p:UseSharedCompilation=false)   # no server outliving the build
if [ "$(id -u)" -eq 0 ]; then
  if ((real)); then
    builder=oniondrop-build buildhome=/var/cache/oniondrop-build
    if getent passwd "$builder" >/dev/null; then say "user $builder: exists (builds the program)"
    else
      useradd --system --user-group --home-dir "$buildhome" --no-create-home --shell /usr/sbin/nologin "$builder"
      say "user $builder: created (builds the program unprivileged; no login)"
    fi
  else
    # A throwaway root has no user database of its own: build as nobody, with a home inside that root.
    builder=nobody buildhome=$(p /var/cache/oniondrop-build)
  fi
  group=$(id -gn "$builder")
  [ -d "$buildhome" ] || { install -d -m 0700 -o "$builder" -g "$group" "$buildhome"; say "$buildhome: created (the build's home and NuGet cache)"; }
  install -d -m 0700 -o "$builder" -g "$group" "$stage/build"
  dotnet=$(command -v dotnet) || { echo "install.sh: the .NET 10 SDK (dotnet) is needed to build; see README" >&2; exit 1; }
  asbuilder=(setpriv --reuid="$builder" --regid="$group" --clear-groups --no-new-privs --reset-env)
  "${asbuilder[@]}" test -x "$(readlink -f "$dotnet")" \
    || { echo "install.sh: $builder cannot run $dotnet (an SDK in root's home?): install the .NET SDK system-wide (e.g. /usr/share/dotnet)" >&2; exit 1; }
  if ! "${asbuilder[@]}" test -w "$buildhome"; then
    # A throwaway root inside a folder the builder cannot enter (root's 0700 ones): a home of its own for this run.
    buildhome=$stage/home; install -d -m 0700 -o "$builder" -g "$group" "$buildhome"
    say "$builder cannot reach $(p /var/cache/oniondrop-build): building with a temporary home (NuGet downloads again)"
  fi
  # Every process of the build ends with it (a namespace's init takes the others along); where namespaces are not
  # allowed (some containers), the build still runs unprivileged.
  # Inside it the compiler server may run too (about a third off the build): it ends with the namespace.
  if unshare --pid --fork --mount-proc true 2>/dev/null; then pidns=(unshare --pid --fork --kill-child --mount-proc) compiler=(-p:UseSharedCompilation=true)
  else pidns=(); say "WARNING: no PID namespace here (unshare --pid); the build runs without one"; fi
else
  dotnet=dotnet asbuilder=() pidns=()
  install -d -m 0700 "$stage/build"
fi
tar -C "$repo" --exclude=./.git --exclude=bin --exclude=obj --exclude=./artifacts --exclude=./TestResults --exclude=./.trial \
  -cf - . | "${asbuilder[@]}" tar -C "$stage/build" -xf - || { echo "install.sh: could not copy the sources for $builder" >&2; exit 1; }
say "publishing the daemon (dotnet publish -c Release) as $builder ..."
# PathMap: the build's folder is new each time; mapped, the same sources give the same bytes.
# --nuget-packages: a package folder the builder can read, used instead of downloading (an offline machine's copy;
# the tests' copy of their own, so that they reach no network).
packages=()
[ -z "$nugetpackages" ] || packages=(NUGET_PACKAGES="$nugetpackages")
if ! "${pidns[@]}" "${asbuilder[@]}" env HOME="$buildhome" PATH=/usr/local/bin:/usr/bin:/bin TMPDIR="$stage/build" "${packages[@]}" \
     DOTNET_NOLOGO=1 DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_SKIP_FIRST_TIME_EXPERIENCE=1 DOTNET_SKIP_WORKLOAD_INTEGRITY_CHECK=1 \
     MSBUILDDISABLENODEREUSE=1 DOTNET_CLI_USE_MSBUILD_SERVER=0 \
     "$dotnet" publish "$stage/build/src/OnionDrop.Cli/OnionDrop.Cli.csproj" -c Release -o "$stage/build/app" \
       "${compiler[@]}" -p:PathMap="$stage/build/=/_/" \
       -nologo -v quiet -clp:"ErrorsOnly;NoSummary" </dev/null >&2; then
  echo "install.sh: the build failed (as $builder)" >&2; exit 1
fi
# Root takes the result from here: regular files only (find does not follow links), after every build process ended.
mv "$stage/build/app" "$stage/app"; chown -R 0:0 "$stage/app" 2>/dev/null || true
cp "$repo/README.md" "$stage/app/" 2>/dev/null || true
changed=0 same=0
while IFS= read -r -d '' f; do
  rel=${f#"$stage/app/"}
  if cmp -s "$f" "$opt/$rel"; then same=$((same + 1))
  else
    mode=0644; [ -x "$f" ] && mode=0755
    install -D -m "$mode" "$f" "$opt/$rel"; changed=$((changed + 1))
  fi
done < <(find "$stage/app" -type f -print0)
stale=0
while IFS= read -r -d '' f; do
  [ -e "$stage/app/${f#"$opt/"}" ] || { rm -f "$f"; stale=$((stale + 1)); }
done < <(find "$opt" -type f -print0)
say "$opt: $changed files installed, $same unchanged, $stale removed"
mkdir -p "$(dirname "$link")"
if [ "$(readlink "$link" 2>/dev/null)" = /opt/oniondrop/oniondrop ]; then say "$link: exists"
else ln -sfn /opt/oniondrop/oniondrop "$link"; say "$link -> /opt/oniondrop/oniondrop"; fi

# 4. The data directory: created once, 0700, the daemon's; never touched again.
if [ -d "$data" ]; then
  say "$data: exists, left as it is"
  m=$(stat -c %a "$data"); [ "$m" = 700 ] || say "WARNING: $data has mode $m; it should be 0700"
  o=$(stat -c %U "$data"); ((real)) && [ "$o" != "$user" ] && say "WARNING: $data belongs to $o; the daemon runs as $user and needs it to be its own (chown -R $user: $data)"
else
  install -d -m 0700 "${owner[@]}" "$data"; say "$data: created (0700)"
fi

# 5. The config: written once from config/oniondrop.json, then the operator's.
if [ -d "$etc" ]; then say "$etc: exists"; else install -d -m 0750 ${owner:+-g "$user"} "$etc"; say "$etc: created (0750)"; fi
if [ -e "$config" ]; then
  say "$config: exists, not changed"
  ((${#recipients[@]} == 0)) || say "to add the given recipients, edit $config by hand: ${recipients[*]}"
else
  if ((${#recipients[@]})); then list=$(printf '"%s", ' "${recipients[@]}"); list=${list%, }
  else list='"REPLACE_WITH_A_JOURNALIST_PUBLIC_KEY"'; fi
  tmp="$config.tmp.$$"
  sed "s|^\( *\"Recipients\": \)\[.*\],|\1[ $list ],|" "$repo/config/oniondrop.json" > "$tmp"
  grep -q "\"Recipients\": \[ $list \]" "$tmp" || { rm -f "$tmp"; echo "install.sh: could not fill in the recipients" >&2; exit 1; }
  if [ "$tor" = system ]; then
    sed -i -e 's|^\( *"Tor": \)"launch",|\1"system",|' -e "s|^\( *\"WebSocketDirectory\": \)null,|\1\"$websocketdir\",|" \
      -e "s|^\( *\"WebSocketGroup\": \)null,|\1\"$torgroup\",|" "$tmp"
    [ "$(grep -cE "^ *(\"Tor\": \"system\"|\"WebSocketDirectory\": \"$websocketdir\"|\"WebSocketGroup\": \"$torgroup\"),\$" "$tmp")" = 3 ] \
      || { rm -f "$tmp"; echo "install.sh: could not set the system tor settings" >&2; exit 1; }
  fi
  chmod 0640 "$tmp"; ((real)) && chown "root:$user" "$tmp"
  mv "$tmp" "$config"
  say "$config: written (0640) with ${#recipients[@]} recipient(s)$([ "$tor" = system ] && echo ", Tor: system, web socket in $websocketdir (group $torgroup)")"
fi
if [ "$tor" = system ] && ! grep -qE '^ *"Tor": "system"' "$config"; then
  say "to use the system tor, set in $config: \"Tor\": \"system\", \"WebSocketDirectory\": \"$websocketdir\", \"WebSocketGroup\": \"$torgroup\""
fi

# 6. The unit: ours, so it is replaced when it changed (the config above is the operator's part).
unit_changed=0
if cmp -s "$repo/scripts/oniondrop.service" "$unit"; then say "$unit: unchanged"
else
  install -D -m 0644 "$repo/scripts/oniondrop.service" "$unit"; unit_changed=1
  say "$unit: installed (it is replaced whenever it changes: your own settings belong in systemctl edit oniondrop)"
  if ((real)) && [ -d /run/systemd/system ]; then systemctl daemon-reload; say "systemd: reloaded"; fi
fi

# 7. System tor: the unit's drop-in (web socket directory, tor's group, no network) and tor's AppArmor profile.
if [ "$tor" = system ]; then
  want=$(sed -e "s/^SupplementaryGroups=debian-tor$/SupplementaryGroups=$torgroup/" -e "s/ -g debian-tor / -g $torgroup /" \
    "$repo/scripts/oniondrop-system-tor.conf")
  if [ -e "$dropin" ] && [ "$(cat "$dropin")" = "$want" ]; then say "$dropin: unchanged"
  else
    install -d -m 0755 "$(dirname "$dropin")"; printf '%s\n' "$want" > "$dropin"; chmod 0644 "$dropin"; unit_changed=1; say "$dropin: installed"
    if ((real)) && [ -d /run/systemd/system ]; then systemctl daemon-reload; say "systemd: reloaded"; fi
  fi
  # Debian's tor runs under the AppArmor profile system_tor, which lets it connect to its own sockets only.
  rule="/{,var/}run/oniondrop/web.sock rw,"
  if [ -e "$apparmor" ] && grep -qxF "  $rule" "$apparmor"; then say "$apparmor: allows $websocketdir/web.sock already"
  else
    install -d -m 0755 "$(dirname "$apparmor")"
    printf '# OnionDrop (scripts/install.sh --tor system): tor forwards the onion service to the drop box.\n  %s\n' "$rule" >> "$apparmor"
    say "$apparmor: tor may connect to $websocketdir/web.sock"
    if ((real)) && [ "$(cat /sys/module/apparmor/parameters/enabled 2>/dev/null)" = Y ] && command -v apparmor_parser >/dev/null \
       && [ -e /etc/apparmor.d/system_tor ]; then
      if apparmor_parser -r /etc/apparmor.d/system_tor; then say "AppArmor: system_tor reloaded"
      else say "WARNING: apparmor_parser -r /etc/apparmor.d/system_tor failed: tor cannot reach the web socket until it loads"; fi
    else say "AppArmor: not active here; the rule applies whenever system_tor is loaded"; fi
  fi
elif [ -e "$dropin" ]; then
  say "$dropin: present from an earlier --tor system, left as it is (remove it to run the daemon's own tor)"
fi

# 8. SSH for journalists: their keys in a root-owned file the daemon (running as $user) cannot write, and sshd
#    pointed at it for that account only. The drop-in is ours (replaced when it changed); the keys file is the
#    operator's (written once, with the example's lines commented out).
keys="$etc/authorized_keys" sshdconf=$(p /etc/ssh/sshd_config.d/oniondrop.conf)
# Readable by root and the account only (sshd reads it as the account): other local users need not learn
# the journalists' names and key comments.
if [ -e "$keys" ]; then
  if ((real)) && [ "$(stat -c %a:%U:%G "$keys")" != "640:root:$user" ]; then
    chown "root:$user" "$keys"; chmod 0640 "$keys"; say "$keys: exists, now 0640 root:$user"
  else say "$keys: exists, not changed"; fi
else
  sed -e 's/^\([^#]\)/# \1/' "$repo/scripts/authorized_keys.example" > "$keys.tmp.$$"; chmod 0640 "$keys.tmp.$$"
  ((real)) && chown "root:$user" "$keys.tmp.$$"
  mv "$keys.tmp.$$" "$keys"; say "$keys: written (0640, root's, readable by $user): add one line per journalist's SSH key, as its examples show"
fi
if ((real)) && [ ! -d /etc/ssh/sshd_config.d ]; then
  say "sshd: not installed here; journalists fetch over SSH: apt-get install openssh-server, then run install.sh again"
elif cmp -s "$repo/scripts/oniondrop-sshd.conf" "$sshdconf"; then say "$sshdconf: unchanged"
else
  install -D -m 0644 "$repo/scripts/oniondrop-sshd.conf" "$sshdconf"
  if ((real)); then
    # Never leave sshd unable to start: a drop-in it refuses goes again at once.
    if ! sshd -t 2>"$stage/sshd-t"; then
      rm -f "$sshdconf"; say "WARNING: sshd refused $sshdconf ($(head -1 "$stage/sshd-t")); removed it: journalists' keys stay unusable until fixed"
    else
      say "$sshdconf: installed (account $user: keys from $keys, public key only, no terminal or forwarding)"
      if systemctl is-active --quiet ssh 2>/dev/null; then systemctl reload ssh; say "sshd: reloaded"; fi
    fi
  else say "$sshdconf: installed"; fi
fi
# sshd's whole answer first: `sshd -T | grep -q` would stop reading at the match, and sshd's SIGPIPE would fail the pipe.
if ((real)) && [ -e "$sshdconf" ] && ! grep -qxF "authorizedkeysfile /etc/oniondrop/authorized_keys" \
     <<<"$(sshd -T -C "user=$user,host=localhost,addr=127.0.0.1" 2>/dev/null || true)"; then
  say "WARNING: sshd does not apply $sshdconf (its /etc/ssh/sshd_config lacks 'Include /etc/ssh/sshd_config.d/*.conf' at the top)"
fi
old_keys="$data/.ssh/authorized_keys"
[ -e "$old_keys" ] && say "WARNING: $old_keys is no longer read by sshd: move its lines to $keys"

# 9. The clock. tor needs it right, and responses carry its date (the day only, turning at a secret moment:
#    docs/threat-model.md), so a clock that drifts could still, over time, link the onion service to this host.
if ((real)) && [ -d /run/systemd/system ] && command -v timedatectl >/dev/null; then
  if [ "$(timedatectl show -p NTPSynchronized --value 2>/dev/null)" = yes ]; then say "clock: NTP-synchronised"
  else say "WARNING: the clock is not NTP-synchronised; tor needs it right, and a drift could single this host out: apt-get install -y systemd-timesyncd && timedatectl set-ntp true"; fi
fi

# 10. What is left to do, in order.
say "---"
if grep -q REPLACE_WITH_A_JOURNALIST_PUBLIC_KEY "$config"; then
  say "next: put the journalists' public keys (odpk1..., from oniondrop keygen on their machines) in $config (\"Recipients\"); the daemon refuses to start until then"
fi
if ! grep -qE '^[^#[:space:]]' "$keys"; then
  say "next: for each journalist who fetches, add their SSH key to $keys as one line:"
  say "  restrict,command=\"/usr/local/bin/oniondrop pull --stdio --config /etc/oniondrop/oniondrop.json --as NAME\" ssh-ed25519 AAAA... NAME"
fi
[ "$tor" = system ] && say "the system tor: systemctl enable --now tor (Debian's tor@default, control socket /run/tor/control)"
# The installed program checks the config as the service's start would, as the service's user: one it refuses (an
# upgrade may require more of it) would leave the drop box down after the restart, so it is said now.
config_ok=1
if ((real)) && ! grep -q REPLACE_WITH_A_JOURNALIST_PUBLIC_KEY "$config"; then
  if verdict=$(setpriv --reuid="$user" --regid="$user" --init-groups --no-new-privs -- "$link" serve --check --config "$config" 2>&1 </dev/null); then
    say "config: accepted by the installed program"
  else
    config_ok=0; say "WARNING: the installed program refuses $config, and the daemon would not start with it: ${verdict##*$'\n'}"
  fi
fi
if systemd_running && systemctl is-active --quiet oniondrop; then
  if ((!config_ok)); then say "the daemon still runs the previous program: fix $config first, then systemctl restart oniondrop"
  elif ((changed + stale)) || ((unit_changed)); then say "the daemon still runs the previous program or unit: systemctl restart oniondrop"
  else say "the daemon runs (unchanged)"; fi
else
  say "start: systemctl enable --now oniondrop"
fi
hostname_file="$data/tor/onion-service/hostname"
if [ -r "$hostname_file" ]; then say "onion address (for sources): $(cat "$hostname_file")"
else say "onion address: shown by 'oniondrop status' once tor has started (first start: under a minute with a network)"; fi
say "check: oniondrop status; journalctl -u oniondrop"
