#!/bin/sh
# Install the Debian packages hermod needs.
#
#   scripts/deps.sh run    build tools and libraries (make run)
#   scripts/deps.sh test   all of run, plus test peers and tools (make test)
#
# Quiet and exit 0 when everything is present. When something is missing:
# as root, installs it with apt-get; otherwise prints the one command to run
# and exits 1.
set -eu

mode=${1:-run}

# libunbound-dev: the DNS resolver; dns-root-data: the DNSSEC root trust anchor
run_pkgs="gcc make pkg-config libevent-dev libssl-dev libsqlite3-dev libinih-dev libcrypt-dev zlib1g-dev libunbound-dev dns-root-data openssl"
# python3-pytest: integration tests (run with /usr/bin/python3)
# swaks, postfix (smtp-source/smtp-sink, a peer MTA, the benchmark), curl: peers
# clang, libclang-rt-14-dev: libFuzzer for `make fuzz`
# libnet-ssleay-perl: swaks --tls; apache2-utils: htpasswd (bcrypt hashes)
# fetchmail, mutt, neomutt: POP3 (and, for the mutts, submission and IMAP) clients in the tests
# isync (mbsync): IMAP synchronisation tests
# dovecot-imapd: the reference IMAP server some tests compare hermod's answers with
# (a private instance on a loopback port; no system instance is started, below)
# dnsmasq-base: DNS zones on a loopback port for the resolver's tests (the
# binary only; the dnsmasq package would add a system service)
# python3-dkim, python3-nacl: dkimpy verifies hermod's DKIM signatures in
# tests/unit/test_dkim.c (tests/unit/dkim_verify.py; nacl for Ed25519)
# nsd, ldnsutils, unbound: a DNSSEC-signed zone (ldns-keygen, ldns-signzone)
# served by a private nsd with a private validating unbound in front, on
# loopback ports (tests/integration/dnssecfix.py); the system services the
# packages bring are kept from starting and disabled, below
test_pkgs="python3-pytest swaks libnet-ssleay-perl postfix clang libclang-rt-14-dev curl apache2-utils fetchmail mutt neomutt isync dovecot-core dovecot-imapd dnsmasq-base python3-dkim python3-nacl nsd ldnsutils unbound"
# Node.js + npm for the npm clients in tests/npm (nodemailer, the SCRAM-PLUS
# client): Debian's packages, unless node and npm are already installed
# (e.g. a Node.js that came with the machine).
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
	test_pkgs="$test_pkgs nodejs npm"
fi

case $mode in
run) pkgs=$run_pkgs ;;
test) pkgs="$run_pkgs $test_pkgs" ;;
*)
	echo "usage: $0 run|test" >&2
	exit 2
	;;
esac

missing=
for p in $pkgs; do
	status=$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null || true)
	if [ "$status" != installed ]; then
		missing="$missing $p"
	fi
done
missing=${missing# }

[ -z "$missing" ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
	echo "hermod: missing Debian packages: $missing" >&2
	echo "run this, then try again:" >&2
	echo "  sudo apt-get install -y --no-install-recommends $missing" >&2
	exit 1
fi

echo "hermod: installing Debian packages: $missing" >&2

export DEBIAN_FRONTEND=noninteractive

# Postfix: preseed debconf so the package installs without configuring or
# starting a system instance (hermod's tests and benchmark run private ones).
case " $missing " in
*" postfix "*)
	printf '%s\n' \
		'postfix postfix/main_mailer_type select No configuration' \
		'postfix postfix/mailname string localhost' |
		debconf-set-selections
	;;
esac

# Dovecot's packages start a system instance (ports 143/993 on every address),
# and so do nsd's (port 53 on every address, no zones) and unbound's (a
# recursive resolver on 127.0.0.1:53, which, with resolvconf installed, becomes
# the machine's resolver; the two also fight over 127.0.0.1:53): a
# policy-rc.d that refuses service starts keeps them from doing so while we
# install, and is removed afterwards (only if we made it).
made_policy=
case " $missing " in
*" dovecot-"* | *" nsd "* | *" unbound "*)
	if [ ! -e /usr/sbin/policy-rc.d ]; then
		printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
		chmod 755 /usr/sbin/policy-rc.d
		made_policy=1
	fi
	;;
esac
drop_policy() {
	[ -z "$made_policy" ] || rm -f /usr/sbin/policy-rc.d
}
trap drop_policy EXIT

apt_install() {
	# shellcheck disable=SC2086
	apt-get install -y -q --no-install-recommends $missing
}

lists_empty() {
	[ -z "$(find /var/lib/apt/lists -maxdepth 1 -name '*_Packages*' 2>/dev/null | head -n 1)" ]
}

if lists_empty; then
	apt-get update -q
	apt_install
elif ! apt_install; then
	echo "hermod: install failed; refreshing package lists and retrying" >&2
	apt-get update -q
	apt_install
fi

# nsd and unbound: the tests run private instances only; do not start the
# system ones at the next boot either.
for svc in nsd unbound; do
	case " $missing " in
	*" $svc "*)
		if command -v systemctl >/dev/null 2>&1; then
			systemctl disable "$svc.service" >/dev/null 2>&1 || true
		fi
		;;
	esac
done

# Check again: apt-get can succeed without installing everything we asked for
# only in odd cases, but say so clearly if it happens.
still=
for p in $missing; do
	status=$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null || true)
	[ "$status" = installed ] || still="$still $p"
done
if [ -n "$still" ]; then
	echo "hermod: still missing after apt-get:$still" >&2
	exit 1
fi
