#!/bin/sh
# Installs agentjail on a host without the Debian package: the binary, the
# systemd units, sysusers.d and tmpfiles.d entries, the default config and
# policy (never over existing ones), then reloads systemd.
#
#   sudo packaging/install.sh                     # build, install under /usr/local
#   sudo packaging/install.sh --binary ./agentjail --prefix /usr
#   DESTDIR=/tmp/root packaging/install.sh --binary ./agentjail   # staged, no root
#
# Run `packaging/install.sh --help` for every option.
set -eu

usage() {
    cat <<'EOF'
Usage: packaging/install.sh [--prefix DIR] [--destdir DIR] [--binary FILE]

  --prefix DIR    install under DIR (default /usr/local): DIR/bin/agentjail,
                  units in DIR/lib/systemd/system, DIR/lib/sysusers.d,
                  DIR/lib/tmpfiles.d. For a prefix other than /usr or
                  /usr/local, those three go to /etc/systemd/system,
                  /etc/sysusers.d and /etc/tmpfiles.d, where systemd looks.
  --destdir DIR   stage every file under DIR (also: DESTDIR=DIR); nothing
                  is run on the host (no sysusers, tmpfiles, daemon-reload)
  --binary FILE   install FILE instead of building with
                  `cargo build --release --locked`
  -h, --help      this text

The configuration always goes to /etc/agentjail (where the daemon looks):
agentjail.toml and policies/default.toml are installed only when absent;
reference copies go to PREFIX/share/agentjail.
EOF
}

die() {
    echo "install.sh: $*" >&2
    exit 1
}

prefix=/usr/local
destdir=${DESTDIR:-}
binary=

while [ $# -gt 0 ]; do
    case $1 in
        --prefix) [ $# -ge 2 ] || die "--prefix needs a directory"; prefix=$2; shift 2 ;;
        --prefix=*) prefix=${1#--prefix=}; shift ;;
        --destdir) [ $# -ge 2 ] || die "--destdir needs a directory"; destdir=$2; shift 2 ;;
        --destdir=*) destdir=${1#--destdir=}; shift ;;
        --binary) [ $# -ge 2 ] || die "--binary needs a file"; binary=$2; shift 2 ;;
        --binary=*) binary=${1#--binary=}; shift ;;
        -h | --help) usage; exit 0 ;;
        *) usage >&2; die "unknown argument: $1" ;;
    esac
done

# The prefix is written into the unit (ExecStart=): keep it plain.
case $prefix in
    /*) ;;
    *) die "--prefix must be an absolute path, not '$prefix'" ;;
esac
case $prefix in
    *[!A-Za-z0-9/._+-]*) die "--prefix may hold only letters, digits and / . _ + -: '$prefix'" ;;
esac
prefix=${prefix%/}
[ -n "$prefix" ] || die "--prefix / is not supported; use --prefix /usr"
case $destdir in
    '' | /*) ;;
    *) destdir=$(pwd)/$destdir ;;
esac
destdir=${destdir%/}

here=$(cd "$(dirname "$0")" && pwd)
repo=$(dirname "$here")

if [ -z "$destdir" ] && [ "$(id -u)" -ne 0 ]; then
    die "run as root (sudo $0 ...), or stage the files with DESTDIR=DIR"
fi

case $prefix in
    /usr | /usr/local)
        unitdir=$prefix/lib/systemd/system
        sysusersdir=$prefix/lib/sysusers.d
        tmpfilesdir=$prefix/lib/tmpfiles.d
        ;;
    *)
        unitdir=/etc/systemd/system
        sysusersdir=/etc/sysusers.d
        tmpfilesdir=/etc/tmpfiles.d
        ;;
esac
bindir=$prefix/bin
sharedir=$prefix/share/agentjail
docdir=$prefix/share/doc/agentjail
confdir=/etc/agentjail

# 1. The binary.
if [ -z "$binary" ]; then
    command -v cargo >/dev/null 2>&1 || die "cargo not found: install Rust (https://rustup.rs) or pass --binary FILE"
    echo "== building (cargo build --release --locked)"
    (cd "$repo" && cargo build --release --locked --bin agentjail)
    binary=${CARGO_TARGET_DIR:-$repo/target}/release/agentjail
    case $binary in
        /*) ;;
        *) binary=$repo/$binary ;;
    esac
fi
if [ ! -f "$binary" ] || [ ! -x "$binary" ]; then
    die "no executable binary at $binary"
fi

echo "== installing into ${destdir:-/} (prefix $prefix)"
install -d -m 0755 "$destdir$bindir" "$destdir$unitdir" "$destdir$sysusersdir" \
    "$destdir$tmpfilesdir" "$destdir$sharedir/policies" "$destdir$docdir"
install -m 0755 "$binary" "$destdir$bindir/agentjail"
echo "   $bindir/agentjail"

# 2. Units, pointed at this prefix.
for unit in agentjail.service agentjail.socket; do
    sed -e "s|/usr/bin/agentjail|$bindir/agentjail|g" \
        -e "s|/usr/share/doc/agentjail|$docdir|g" \
        "$here/systemd/$unit" >"$destdir$unitdir/$unit.tmp"
    chmod 0644 "$destdir$unitdir/$unit.tmp"
    mv -f "$destdir$unitdir/$unit.tmp" "$destdir$unitdir/$unit"
    echo "   $unitdir/$unit"
done
install -m 0644 "$here/sysusers.d/agentjail.conf" "$destdir$sysusersdir/agentjail.conf"
echo "   $sysusersdir/agentjail.conf"
install -m 0644 "$here/tmpfiles.d/agentjail.conf" "$destdir$tmpfilesdir/agentjail.conf"
echo "   $tmpfilesdir/agentjail.conf"

# 3. Reference copies (always current) and documentation.
install -m 0644 "$here/agentjail.toml" "$destdir$sharedir/agentjail.toml"
install -m 0644 "$repo/policies/default.toml" "$destdir$sharedir/policies/default.toml"
install -m 0644 "$repo/README.md" "$destdir$docdir/README.md"
install -m 0644 "$here/README.md" "$destdir$docdir/packaging.md"
echo "   $sharedir/ (reference config and policy), $docdir/"

# 4. Configuration: never overwrite what is there.
install -d -m 0755 "$destdir$confdir" "$destdir$confdir/policies"
if [ -e "$destdir$confdir/agentjail.toml" ]; then
    echo "   $confdir/agentjail.toml exists: kept (the new default is $sharedir/agentjail.toml)"
else
    install -m 0644 "$here/agentjail.toml" "$destdir$confdir/agentjail.toml"
    echo "   $confdir/agentjail.toml"
fi
has_policy=no
for f in "$destdir$confdir/policies"/*.toml; do
    if [ -e "$f" ]; then
        has_policy=yes
        break
    fi
done
if [ "$has_policy" = yes ]; then
    echo "   $confdir/policies/ has policies: kept (the shipped default is $sharedir/policies/default.toml)"
else
    install -m 0644 "$repo/policies/default.toml" "$destdir$confdir/policies/default.toml"
    echo "   $confdir/policies/default.toml"
fi

# 5. Users, directories, systemd: only on the live system.
if [ -n "$destdir" ]; then
    echo "== staged into $destdir: not creating users or directories, not reloading systemd"
    exit 0
fi

echo "== users and directories"
if command -v systemd-sysusers >/dev/null 2>&1; then
    systemd-sysusers "$sysusersdir/agentjail.conf"
else
    getent group agentjail >/dev/null 2>&1 || groupadd --system agentjail
    getent passwd agentjail-sandbox >/dev/null 2>&1 ||
        useradd --system --user-group --no-create-home --home-dir /nonexistent \
            --shell /usr/sbin/nologin --comment "agentjail sandboxed commands" agentjail-sandbox
fi
if command -v systemd-tmpfiles >/dev/null 2>&1; then
    systemd-tmpfiles --create "$tmpfilesdir/agentjail.conf"
else
    install -d -m 0755 /var/lib/agentjail
    install -d -m 0750 /var/lib/agentjail/workspaces /var/log/agentjail
fi

systemd=no
if [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; then
    systemd=yes
    systemctl daemon-reload
    echo "   systemctl daemon-reload: done"
fi

echo
echo "agentjail is installed. Next:"
if [ "$systemd" = yes ]; then
    cat <<EOF
  1. Review the config and the policy:
       $confdir/agentjail.toml
       $confdir/policies/default.toml
     and check the policy:  $bindir/agentjail policy check $confdir/policies
  2. Start the daemon (at boot, too):
       systemctl enable --now agentjail.socket agentjail.service
  3. Check it:
       systemctl status agentjail
       $bindir/agentjail doctor
       $bindir/agentjail call whoami
  4. Let an agent worker connect: usermod -aG agentjail <user>, and map the
     user's uid to an agent in the policy.
  5. After editing a policy:
       $bindir/agentjail policy check $confdir/policies && systemctl reload agentjail
       journalctl -u agentjail -n 20     # the reload, or why it was refused
EOF
else
    cat <<EOF
  systemd is not running here: start the daemon yourself, as root:
       $bindir/agentjail serve
  check the policy with $bindir/agentjail policy check $confdir/policies,
  and reload it with kill -HUP <pid>.
EOF
fi
