#!/usr/bin/env bash
# A short lifecycle on the embedded store in a throwaway directory: no root, no AWS, no SMTP
# server (profiles go to an outbox directory as .eml files).
set -euo pipefail
cd "$(dirname "$0")/.."
[ -f dist/bin/ov_init.js ] || npm run build >/dev/null

demo=$(mktemp -d -t ovpn-ledger-demo.XXXXXX)
export OVL_STATE_DIR="$demo/state" OVL_CONFIG_DIR="$demo/etc"
bin() { node "dist/bin/$1.js" "${@:2}"; }
step() { printf '\n\033[1m$ %s\033[0m\n' "$*"; }

step ov_init --public-host vpn.example.com --route 10.0.0.0/16
bin ov_init --public-host vpn.example.com --route 10.0.0.0/16

cat >"$OVL_CONFIG_DIR/email.conf" <<CONF
FROM_EMAIL=vpn@example.com
ENVIRONMENT_NAME="Demo gateway"
DELIVERY=outbox
OUTBOX_DIR=$demo/outbox
CONF

step ov_user_add --email ada@example.com --traffic all …
bin ov_user_add --first-name Ada --last-name Lovelace --email ada@example.com --traffic all \
  --expiration-date "$(date -u -d '+90 days' +%F)" --creation-reason "Demo: remote access"
step ov_user_add --email alan@example.com --traffic partial --auto-renew yes …
bin ov_user_add --first-name Alan --last-name Turing --email alan@example.com --traffic partial \
  --expiration-date "$(date -u -d '+30 days' +%F)" --creation-reason "Demo: private subnet" --auto-renew yes
step "ov_user_add (the same pair again: refused)"
bin ov_user_add --first-name Ada --last-name Lovelace --email ada@example.com --traffic all \
  --expiration-date "$(date -u -d '+90 days' +%F)" --creation-reason "again" || echo "(exit code $?)"
step ov_user_list
bin ov_user_list
step ov_user_auto_renew --email ada@example.com --traffic all --enable
bin ov_user_auto_renew --email ada@example.com --traffic all --enable
step ov_user_resend --email ada@example.com --traffic all
bin ov_user_resend --email ada@example.com --traffic all
step ov_user_delete --email alan@example.com --traffic partial
bin ov_user_delete --email alan@example.com --traffic partial
step openssl crl -in "$OVL_STATE_DIR/openvpn/crl.pem" -CAfile ca.crt -noout -text
openssl crl -in "$OVL_STATE_DIR/openvpn/crl.pem" -CAfile "$OVL_STATE_DIR/openvpn/ca.crt" -noout -text 2>&1 | grep -E 'verify|Serial|CRL Number|Next Update' || true
step OVL_NOW=+120 days ov_user_list_expired
OVL_NOW="$(date -u -d '+120 days' +%FT%TZ)" bin ov_user_list_expired
step ov_user_list --json
bin ov_user_list --json

printf '\nState directory: %s (outbox: %s)\n' "$demo" "$demo/outbox"
