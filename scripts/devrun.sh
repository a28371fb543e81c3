#!/bin/sh
# `make run`: a development instance of hermod under ./run/, served in the
# foreground on loopback. Creates the instance the first time (config, data
# dir, domain example.test, account demo@example.test with a generated
# password), and reuses it after that.
set -eu

cd "$(dirname "$0")/.."

HERMOD=${HERMOD:-./hermod}
RUN=run
CONF=$RUN/hermod.conf
PWFILE=$RUN/demo-password
DOMAIN=example.test
DEMO=demo@$DOMAIN

if [ ! -x "$HERMOD" ]; then
	echo "devrun: $HERMOD not found; run 'make hermod' first (or 'make run')" >&2
	exit 1
fi

mkdir -p "$RUN"

if [ ! -f "$CONF" ]; then
	cat >"$CONF" <<'EOF'
# hermod development instance, written by scripts/devrun.sh (`make run`).
# Every key is documented in docs/config.md.

[server]
hostname = mx.example.test
# A relative data_dir is resolved against this file's directory: run/data.
data_dir = data
# user unset: keep the starting user (hermod warns when that is root).

[listen]
smtp = 127.0.0.1:2525
# Not implemented yet; they land with later issues:
# imap = 127.0.0.1:1143
# pop3 = 127.0.0.1:1110

[limits]
# Defaults (see docs/config.md):
# max_message_size = 50M
# max_recipients = 100
# max_connections = 1000
# max_connections_per_ip = 20

[store]
# 250 only after the message is on disk.
fsync = yes
EOF
	echo "devrun: wrote $CONF" >&2
fi

"$HERMOD" check -c "$CONF" >/dev/null

# Domain, account and password: each step only when missing, so an instance
# whose first set-up was interrupted is completed rather than recreated.
if ! "$HERMOD" domain list -c "$CONF" | grep -q "^$DOMAIN\\([[:space:]]\\|\$\\)"; then
	"$HERMOD" domain add "$DOMAIN" -c "$CONF"
fi

save_password() {
	(umask 077 && printf '%s\n' "$1" >"$PWFILE")
}

new_password() {
	# 16 characters from /dev/urandom, base64 alphabet without + and /.
	head -c 48 /dev/urandom | base64 | tr -d '+/\n' | cut -c 1-16
}

if ! "$HERMOD" user list -c "$CONF" | grep -q "^$DEMO\\([[:space:]]\\|\$\\)"; then
	pw=$(new_password)
	printf '%s\n' "$pw" | "$HERMOD" user add "$DEMO" --password-stdin -c "$CONF"
	save_password "$pw"
elif [ ! -s "$PWFILE" ]; then
	# The account exists but its password was lost: set a new one.
	pw=$(new_password)
	printf '%s\n' "$pw" | "$HERMOD" user passwd "$DEMO" --password-stdin -c "$CONF"
	save_password "$pw"
fi
chmod 600 "$PWFILE"

cat <<EOF

  hermod development instance
  ---------------------------
  config:    $CONF   (data in $RUN/data)
  account:   $DEMO
  password:  $(cat "$PWFILE")   (saved in $PWFILE)
  SMTP:      127.0.0.1:2525

  send a test message:
    swaks --server 127.0.0.1:2525 --to $DEMO
  look at it:
    $HERMOD mailbox list $DEMO -c $CONF
    $HERMOD message list $DEMO -c $CONF
    $HERMOD message show $DEMO INBOX 1 -c $CONF

  Ctrl-C stops the server; 'make run' again reuses this instance
  (rm -rf $RUN for a fresh one).

EOF

exec "$HERMOD" serve -c "$CONF"
