#!/bin/sh
# `make run`: a development instance of hermod under ./run/, served in the
# foreground on loopback. Creates the instance the first time (config, data
# dir, domain example.test, account demo@example.test with a generated
# password, a self-signed TLS certificate in run/tls/), and reuses it after
# that.
set -eu

cd "$(dirname "$0")/.."

HERMOD=${HERMOD:-./hermod}
RUN=run
CONF=$RUN/hermod.conf
PWFILE=$RUN/demo-password
DOMAIN=example.test
DEMO=demo@$DOMAIN
TLS_DIR=$RUN/tls

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

# A self-signed ECDSA P-256 certificate for the development instance.
if [ ! -s "$TLS_DIR/cert.pem" ] || [ ! -s "$TLS_DIR/key.pem" ]; then
	mkdir -p "$TLS_DIR"
	(umask 077 && openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
		-days 825 -subj /CN=mx.example.test \
		-addext "subjectAltName=DNS:mx.example.test,DNS:localhost,IP:127.0.0.1" \
		-keyout "$TLS_DIR/key.pem" -out "$TLS_DIR/cert.pem" 2>/dev/null)
	chmod 644 "$TLS_DIR/cert.pem"
	echo "devrun: wrote a self-signed certificate to $TLS_DIR/cert.pem" >&2
fi

# TLS, submission and the loopback exception; also added to an instance made
# before they existed (sections may repeat in the config file).
if ! grep -q '^[[:space:]]*\[tls\]' "$CONF"; then
	cat >>"$CONF" <<EOF

[tls]
# Self-signed, made by scripts/devrun.sh. For a real certificate see README.md.
cert = $PWD/$TLS_DIR/cert.pem
key = $PWD/$TLS_DIR/key.pem
EOF
fi
if ! grep -q '^[[:space:]]*submission[[:space:]]*[=:]' "$CONF"; then
	cat >>"$CONF" <<'EOF'

[listen]
# Mail submission: 587 role (STARTTLS) and 465 role (implicit TLS).
submission = 127.0.0.1:2587
submissions = 127.0.0.1:2465
EOF
fi
if ! grep -q '^[[:space:]]*pop3[[:space:]]*[=:]' "$CONF"; then
	cat >>"$CONF" <<'EOF'

[listen]
# POP3: 110 role (STLS) and 995 role (implicit TLS).
pop3 = 127.0.0.1:1110
pop3s = 127.0.0.1:1995
EOF
fi
if ! grep -q '^[[:space:]]*imap[[:space:]]*[=:]' "$CONF"; then
	cat >>"$CONF" <<'EOF'

[listen]
# IMAP: 143 role (STARTTLS) and 993 role (implicit TLS).
imap = 127.0.0.1:1143
imaps = 127.0.0.1:1993
EOF
fi
if ! grep -q '^[[:space:]]*allow_plaintext_on_loopback' "$CONF"; then
	cat >>"$CONF" <<'EOF'

[auth]
# Development only: AUTH PLAIN/LOGIN without TLS from 127.0.0.1.
allow_plaintext_on_loopback = yes
EOF
fi

if ! grep -q '^[[:space:]]*srs_secret' "$CONF"; then
	secret=$(head -c 48 /dev/urandom | base64 | tr -d '+/\n' | cut -c 1-32)
	cat >>"$CONF" <<EOF

[delivery]
# Key of the SRS addresses of forwarded mail (docs/delivery.md), generated.
srs_secret = $secret
EOF
fi

"$HERMOD" check -c "$CONF" >/dev/null

# Domain, account and password: each step only when missing, so an instance
# whose first set-up was interrupted is completed rather than recreated.
if ! "$HERMOD" domain list -c "$CONF" | grep -q "^$DOMAIN\\([[:space:]]\\|\$\\)"; then
	"$HERMOD" domain add "$DOMAIN" -c "$CONF"
fi

# DKIM keys for the development domain (an RSA and an Ed25519 key).
if ! "$HERMOD" dkim list -c "$CONF" | grep -q "^$DOMAIN "; then
	"$HERMOD" dkim keygen "$DOMAIN" -c "$CONF" >/dev/null
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
  config:      $CONF   (data in $RUN/data)
  account:     $DEMO
  password:    $(cat "$PWFILE")   (saved in $PWFILE)
  SMTP:        127.0.0.1:2525   (STARTTLS offered)
  submission:  127.0.0.1:2587   (STARTTLS, then AUTH; plaintext AUTH allowed on loopback)
  submissions: 127.0.0.1:2465   (implicit TLS)
  POP3:        127.0.0.1:1110   (STLS; plaintext login allowed on loopback), pop3s 127.0.0.1:1995
  IMAP:        127.0.0.1:1143   (STARTTLS; plaintext login allowed on loopback), imaps 127.0.0.1:1993
  TLS:         self-signed $TLS_DIR/cert.pem (mx.example.test, localhost, 127.0.0.1)
  DKIM:        keys for $DOMAIN: $HERMOD dkim list -c $CONF
  outbound:    mail to other domains is queued and delivered through DNS;
               see it with $HERMOD queue list -c $CONF

  send a test message:
    swaks --server 127.0.0.1:2525 --to $DEMO
  submit one as the demo user:
    swaks --server 127.0.0.1:2587 --tls --auth PLAIN --auth-user $DEMO \\
      --auth-password "\$(cat $PWFILE)" --from $DEMO --to $DEMO
  read it over POP3:
    curl -s pop3://127.0.0.1:1110/1 --user "$DEMO:\$(cat $PWFILE)"
  list the mailboxes over IMAP:
    curl -s imap://127.0.0.1:1143/ --user "$DEMO:\$(cat $PWFILE)"
  look at it:
    $HERMOD mailbox list $DEMO -c $CONF
    $HERMOD message list $DEMO -c $CONF
    $HERMOD message show $DEMO INBOX 1 -c $CONF

  any IMAP client: server 127.0.0.1, port 1143 (STARTTLS) or 1993 (TLS),
  user $DEMO, the password above (the certificate is self-signed).

  Ctrl-C stops the server; 'make run' again reuses this instance
  (rm -rf $RUN for a fresh one).

EOF

exec "$HERMOD" serve -c "$CONF"
