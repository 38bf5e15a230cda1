#!/usr/bin/env bash
# install-chromium.sh installs Chromium for the browser tests (the device
# sign-in page of the control plane is driven in headless Chromium by
# internal/browser and chromedp).
#
# It is idempotent: when Chromium is already at /usr/bin/chromium (or at
# $SPATE_CHROMIUM, when set) nothing is installed. Otherwise it runs
# `apt-get update && apt-get install -y --no-install-recommends chromium`,
# through sudo when not root. It prints Chromium's version at the end and
# exits non-zero, with a message on stderr, when it cannot install it.
#
#   SPATE_CHROMIUM   a Chromium binary to use instead (nothing is installed)
set -euo pipefail

die() {
	echo "install-chromium: $*" >&2
	exit 1
}

CHROMIUM=${SPATE_CHROMIUM:-/usr/bin/chromium}

if [[ ! -x "$CHROMIUM" ]]; then
	[[ -z "${SPATE_CHROMIUM:-}" ]] || die "SPATE_CHROMIUM=$SPATE_CHROMIUM is not an executable file; unset it to install Chromium with apt-get"
	command -v apt-get >/dev/null || die "apt-get not found: install Chromium with your package manager and set SPATE_CHROMIUM to its path"
	SUDO=()
	if [[ $(id -u) -ne 0 ]]; then
		command -v sudo >/dev/null || die "not root and sudo not found: run this script as root, or install the 'chromium' package yourself"
		SUDO=(sudo)
	fi
	echo "install-chromium: installing chromium with apt-get" >&2
	export DEBIAN_FRONTEND=noninteractive
	"${SUDO[@]}" apt-get update >&2 || die "apt-get update failed: check the network and the apt sources"
	"${SUDO[@]}" apt-get install -y --no-install-recommends chromium >&2 ||
		die "apt-get install chromium failed (on Ubuntu the package may be a snap: install Chromium another way and set SPATE_CHROMIUM)"
	[[ -x "$CHROMIUM" ]] || die "the chromium package installed no $CHROMIUM; set SPATE_CHROMIUM to the Chromium binary"
fi

version=$("$CHROMIUM" --version 2>/dev/null) || die "$CHROMIUM --version failed: the installation looks broken"
echo "$version"
