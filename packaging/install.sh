#!/bin/sh
# Installs the Palisade agent from the policy server @PALISADE_SERVER@, which served this script
# (GET /agent/install.sh) with its CA and the SHA-256 of the agent it packaged:
#
#   curl -fsS --cacert ca.crt https://@PALISADE_SERVER@/agent/install.sh | sudo sh -s -- --activation-code CODE
#
# It downloads the agent (one file), checks its SHA-256, installs it in a directory of its own
# (/usr/local/lib/palisade-agent, linked from /usr/local/bin), pairs this host with the
# activation code and starts the agent: as a hardened systemd unit, or with --no-systemd as a
# plain background process (containers, network namespaces). See docs/install.md.
set -eu

server='@PALISADE_SERVER@'
version='@PALISADE_VERSION@'
sha256_x64=''
sha256_arm64=''
@PALISADE_AGENT_SHA256@

code=''
state_dir=/var/lib/palisade
default_install_dir=/usr/local/lib/palisade-agent
install_dir=$default_install_dir
use_systemd=yes
host_name=''
backend=''
print_unit=no
print_start_guard=no

say() { echo "palisade install: $*"; }
die() {
  echo "palisade install: $*" >&2
  exit 1
}
usage() {
  cat <<EOF
usage: sh install.sh --activation-code CODE [--state-dir DIR] [--no-systemd]
                     [--install-dir DIR] [--hostname NAME] [--backend BACKEND] [--print-unit]
                     [--print-start-guard]

  --activation-code CODE  from a pairing profile (the console's Pairing page); not needed to
                          reinstall on a host that is already paired
  --state-dir DIR         the agent's state (default /var/lib/palisade)
  --no-systemd            start the agent as a background process, without a systemd unit
  --install-dir DIR       the agent's own directory: its executable, and the builds it swaps
                          there when it upgrades itself, which the unit lets it write (default
                          /usr/local/lib/palisade-agent, linked from /usr/local/bin)
  --hostname NAME         the workload's name (default: this machine's hostname)
  --backend BACKEND       auto (default), nftables, iptables-nft or iptables-legacy
  --print-unit            print the systemd unit this would install, and do nothing else
  --print-start-guard     print the start guard the unit runs before the agent (it rolls back
                          an upgrade whose new build does not start), and do nothing else
EOF
}
value() {
  [ $# -ge 2 ] && [ -n "$2" ] || die "$1 needs a value (see --help)"
}
path_ok() {
  case $2 in
    /*) ;;
    *) die "$1 must be an absolute path, not '$2'" ;;
  esac
  case $2 in
    *[!A-Za-z0-9._/-]*) die "$1 may hold only letters, digits and . _ / - ('$2')" ;;
  esac
}

while [ $# -gt 0 ]; do
  case $1 in
    --activation-code) value "$@"; code=$2; shift 2 ;;
    --state-dir) value "$@"; state_dir=$2; shift 2 ;;
    --install-dir) value "$@"; install_dir=$2; shift 2 ;;
    --hostname) value "$@"; host_name=$2; shift 2 ;;
    --backend) value "$@"; backend=$2; shift 2 ;;
    --no-systemd) use_systemd=no; shift ;;
    --print-unit) print_unit=yes; shift ;;
    --print-start-guard) print_start_guard=yes; shift ;;
    -h | --help) usage; exit 0 ;;
    *) die "unknown option '$1' (see --help)" ;;
  esac
done
path_ok --state-dir "$state_dir"
path_ok --install-dir "$install_dir"
bin=$install_dir/palisade-agent
guard=$install_dir/palisade-agent.start-guard
# Users run the agent by this name; only the default directory is linked from it.
link=/usr/local/bin/palisade-agent

# The unit makes the install dir writable to the agent (it upgrades itself there), so under the
# unit it must be a directory of the agent's own, never one others' programs are run from.
if [ $use_systemd = yes ]; then
  case ${install_dir%/} in
    '' | /bin | /sbin | /usr | /usr/bin | /usr/sbin | /usr/local | /usr/local/bin | /usr/local/sbin | /usr/lib | /usr/local/lib | /etc | /var | /var/lib | /opt)
      die "--install-dir $install_dir is shared with other programs, and the unit lets the agent write it: give the agent a directory of its own (default $default_install_dir)" ;;
  esac
  [ ! -d "$install_dir" ] || for f in "$install_dir"/* "$install_dir"/.*; do
    case ${f##*/} in
      . | .. | '*' | '.*' | palisade-agent | palisade-agent.*) ;;
      *) die "$install_dir holds ${f##*/}, and the unit lets the agent write it: give the agent a directory of its own (--install-dir; default $default_install_dir)" ;;
    esac
  done
fi

unit_template() {
  cat <<'PALISADE_UNIT'
@PALISADE_AGENT_UNIT@
PALISADE_UNIT
}

# The unit as installed: the default paths replaced by the chosen ones. A state dir of its own
# is made writable by path (systemd's StateDirectory= lives under /var/lib only).
unit() {
  unit_template | sed -e "s|^ExecStart=$default_install_dir/palisade-agent run --state-dir /var/lib/palisade\$|ExecStart=$bin run --state-dir $state_dir|" \
    -e "s|^ExecStartPre=/bin/sh $default_install_dir/palisade-agent.start-guard $default_install_dir/palisade-agent /var/lib/palisade\$|ExecStartPre=/bin/sh $guard $bin $state_dir|" \
    -e "s|^ReadWritePaths=$default_install_dir\$|ReadWritePaths=$install_dir|" |
    if [ "$state_dir" = /var/lib/palisade ]; then
      cat
    else
      sed -e "s|^StateDirectory=palisade\$|ReadWritePaths=$state_dir|" -e '/^StateDirectoryMode=/d'
    fi
}

# The unit runs this before each start of the agent (ExecStartPre), from a file no upgrade
# replaces. A build that crashes before its own code runs (a corrupt or truncated file, one
# that exits at once) cannot roll itself back; systemd starts it again and again, and the
# guard, at the fourth start of a build still on trial (`upgrade.json`), renames the previous
# build back (three starts fit in systemd's start limit, five in 10 s, with RestartSec=2). The
# agent it starts then finds the trial ended by another build, its own, and reports the
# rollback with the count the guard kept (`upgrade-starts`).
start_guard() {
  cat <<'PALISADE_START_GUARD'
#!/bin/sh
# The Palisade agent's start guard (written by its install script): see docs/install.md.
# usage: palisade-agent.start-guard EXECUTABLE STATE_DIR
set -eu
exe=$1
trial=$2/upgrade.json
starts=$2/upgrade-starts
max=3
if ! grep -q '"state": "trial"' "$trial" 2>/dev/null; then
  rm -f "$starts"
  exit 0
fi
n=$(cat "$starts" 2>/dev/null || true)
case $n in '' | *[!0-9]*) n=0 ;; esac
if [ "$n" -lt $max ]; then
  echo $((n + 1)) >"$starts.tmp"
  mv -f "$starts.tmp" "$starts"
  exit 0
fi
if [ ! -f "$exe.previous" ]; then
  echo "palisade start guard: the new build $exe was started $n times without reporting, and there is no $exe.previous to put back" >&2
  exit 0
fi
mv -f "$exe.previous" "$exe"
echo "palisade start guard: the new build $exe was started $n times without reporting: the previous build is back in place" >&2
PALISADE_START_GUARD
}

if [ "$print_unit" = yes ]; then
  unit
  exit 0
fi
if [ "$print_start_guard" = yes ]; then
  start_guard
  exit 0
fi

[ "$(id -u)" -eq 0 ] || die "run me as root (... | sudo sh -s -- ...): I install a program and program the firewall"
[ "$(uname -s)" = Linux ] || die "the agent runs on Linux only"
case $(uname -m) in
  x86_64 | amd64) arch=x64 expected=$sha256_x64 ;;
  aarch64 | arm64) arch=arm64 expected=$sha256_arm64 ;;
  *) die "no agent is built for $(uname -m)" ;;
esac
[ -n "$expected" ] || die "the server $server has no agent for linux-$arch: on the server, run \`npm run package\` on a linux-$arch machine"
command -v nft >/dev/null 2>&1 || command -v iptables >/dev/null 2>&1 ||
  die "neither nft nor iptables is installed: install nftables (or iptables) first"
for tool in ip conntrack tcpdump; do
  command -v $tool >/dev/null 2>&1 || say "warning: $tool is not installed; the agent needs it (iproute2, conntrack, tcpdump)"
done

paired=no
[ -f "$state_dir/credentials.json" ] && paired=yes
if [ $paired = yes ] && [ -n "$code" ]; then
  die "this host is already paired ($state_dir): unpair it first (palisade-agent unpair --state-dir $state_dir --firewall-restore default), or run me without --activation-code to reinstall"
fi
[ $paired = yes ] || [ -n "$code" ] || die "--activation-code CODE is needed (from the console's Pairing page)"
if [ $use_systemd = yes ] && [ ! -d /run/systemd/system ]; then
  die "systemd is not running here: add --no-systemd to start the agent as a plain process"
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
ca=$work/ca.crt
cat >"$ca" <<'PALISADE_CA'
@PALISADE_CA_PEM@
PALISADE_CA

url=https://$server/agent/palisade-agent-linux-$arch
say "downloading $url"
if command -v curl >/dev/null 2>&1; then
  curl -fsS --cacert "$ca" -o "$work/agent" "$url" || die "could not download $url"
elif command -v wget >/dev/null 2>&1; then
  wget -q --ca-certificate="$ca" -O "$work/agent" "$url" || die "could not download $url"
else
  die "curl or wget is needed to download the agent"
fi
if command -v sha256sum >/dev/null 2>&1; then
  got=$(sha256sum "$work/agent" | cut -d ' ' -f 1)
else
  got=$(openssl dgst -sha256 -r "$work/agent" | cut -d ' ' -f 1)
fi
[ "$got" = "$expected" ] || die "the downloaded agent's SHA-256 is $got, not $expected as the server pinned: nothing installed"
chmod 0755 "$work/agent"
ran=$("$work/agent" --version) || die "the downloaded agent does not run here"
[ "$ran" = "$version" ] || die "the downloaded agent says it is version $ran, not $version: nothing installed"

[ -d "$install_dir" ] || mkdir -p -m 0755 "$install_dir"
cp "$work/agent" "$bin.new"
mv -f "$bin.new" "$bin"
start_guard >"$guard.new"
mv -f "$guard.new" "$guard"
say "installed $bin (version $version, sha256 $got)"
if [ "$install_dir" = $default_install_dir ]; then
  mkdir -p "${link%/*}"
  rm -f "$link.new"
  ln -s "$bin" "$link.new"
  mv -f "$link.new" "$link"
  say "linked $link to it"
fi

if [ -n "$code" ]; then
  set -- activate --management-server "$server" --activation-code "$code" --ca-cert "$ca" --state-dir "$state_dir"
  [ -z "$host_name" ] || set -- "$@" --hostname "$host_name"
  [ -z "$backend" ] || set -- "$@" --backend "$backend"
  "$bin" "$@" || die "activation failed (see above); the agent is installed but not paired"
fi

if [ $use_systemd = yes ]; then
  unit >/etc/systemd/system/palisade-agent.service.new
  mv -f /etc/systemd/system/palisade-agent.service.new /etc/systemd/system/palisade-agent.service
  systemctl daemon-reload
  systemctl enable palisade-agent.service
  systemctl restart palisade-agent.service
  say "started palisade-agent.service (journalctl -u palisade-agent for its log)"
else
  pid=$(cat "$state_dir/agent.pid" 2>/dev/null || true)
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
    kill "$pid"
    while kill -0 "$pid" 2>/dev/null; do sleep 1; done
  fi
  # The same capabilities as the unit, where setpriv (util-linux) is there to drop the rest.
  set -- "$bin" run --state-dir "$state_dir"
  if command -v setpriv >/dev/null 2>&1; then
    caps=$(unit_template | sed -n 's/^CapabilityBoundingSet=//p' | tr 'A-Z' 'a-z' | sed -e 's/cap_/+/g' -e 's/ /,/g')
    set -- setpriv --bounding-set "-all,$caps" --inh-caps -all --no-new-privs -- "$@"
  fi
  command -v setsid >/dev/null 2>&1 && set -- setsid "$@"
  nohup "$@" >>"$state_dir/agent.log" 2>&1 </dev/null &
  say "started the agent (pid $!; its log is $state_dir/agent.log)"
fi

say "waiting for the agent to apply its policy"
i=0
while :; do
  # Applied and verified, by the agent now running (a reinstall finds the last one's status).
  s=$("$bin" status --state-dir "$state_dir" --json 2>/dev/null) || true
  case $s in *'"running": true'*) case $s in *'"applied": {'*) break ;; esac ;; esac
  i=$((i + 1))
  [ $i -le 60 ] || die "the agent has not applied a policy within 60 s; see \`$bin status --state-dir $state_dir\`"
  sleep 1
done
"$bin" status --state-dir "$state_dir"
