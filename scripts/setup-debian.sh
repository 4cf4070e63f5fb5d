#!/usr/bin/env bash
# Installs what weir's tests, demo and packaging need on a fresh Debian
# machine: the one set-up step behind `make test`, `make demo`,
# `make package` and .ci/run (README.md, "Quick start"). As root it
# installs the missing packages with apt-get; otherwise it says which are
# missing and carries on (the tests that need them skip or fail, saying so).
set -euo pipefail
export PATH="$PATH:/usr/local/go/bin:/usr/sbin:/sbin"

# command:package — a package is installed when one of its commands is missing.
tools=(
	ip:iproute2 iptables:iptables iptables-legacy:iptables iptables-restore:iptables ip6tables:iptables ip6tables-restore:iptables
	git:git conntrack:conntrack gpg:gnupg gpg-agent:gnupg pgrep:procps
	make:make dpkg-deb:dpkg gzip:gzip
)
need=()
for t in "${tools[@]}"; do
	cmd=${t%%:*} pkg=${t#*:}
	if ! command -v "$cmd" >/dev/null 2>&1 && [[ " ${need[*]-} " != *" $pkg "* ]]; then
		need+=("$pkg")
	fi
done
if ! command -v go >/dev/null 2>&1; then
	echo "setup-debian: no go command: install Go 1.26 (https://go.dev/doc/install) and put it on PATH" >&2
	exit 1
fi
[ ${#need[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
	echo "setup-debian: missing Debian packages: ${need[*]}" >&2
	echo "setup-debian: install them as root (apt-get install ${need[*]}); until then the tests that need them skip or fail" >&2
	exit 0
fi
echo "setup-debian: installing ${need[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
