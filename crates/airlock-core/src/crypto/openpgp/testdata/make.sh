#!/bin/sh
# Regenerates the OpenPGP fixtures of crypto/openpgp/tests.rs with Debian's gnupg. Times are
# faked so that tests can place "now" before and after an expiry.
set -eu
out=$(cd "$(dirname "$0")" && pwd)
GNUPGHOME=$(mktemp -d)
export GNUPGHOME
trap 'gpgconf --kill all; rm -rf "$GNUPGHOME"' EXIT
T2020='--faked-system-time 20200101T000000!'
T2020b='--faked-system-time 20200601T000000!'
g() { gpg --batch --quiet --pinentry-mode loopback --passphrase '' "$@"; }
fpr() { gpg --with-colons --list-keys "$1" | awk -F: '/^fpr/ {print $10; exit}'; }
subfpr() { gpg --with-colons --list-keys "$1" | awk -F: -v n="$2" '/^fpr/ {i++; if (i == n + 1) print $10}'; }
printf 'airlock openpgp test message\n' > "$out/msg.txt"

# RSA 3072, primary signing key, no expiry.
g $T2020 --quick-gen-key 'rsa <rsa@example.org>' rsa3072 sign never
R=$(fpr rsa@example.org)
g --export --armor "$R" > "$out/rsa.asc"
for h in SHA256 SHA512 SHA1; do
  g $T2020b --local-user "$R!" --digest-algo $h --detach-sign -o "$out/rsa-$h.sig" "$out/msg.txt"
done

# Ed25519 primary (sign) with a signing subkey and an authentication-only subkey.
g $T2020 --quick-gen-key 'ed <ed@example.org>' ed25519 sign never
E=$(fpr ed@example.org)
g $T2020 --quick-add-key "$E" ed25519 sign never
g $T2020 --quick-add-key "$E" ed25519 auth never
g --export --armor "$E" > "$out/ed.asc"
g $T2020b --local-user "$E!" --detach-sign -o "$out/ed-primary.sig" "$out/msg.txt"
S=$(subfpr ed@example.org 1)
g $T2020b --local-user "$S!" --detach-sign -o "$out/ed-subkey.sig" "$out/msg.txt"

# Ed25519 key valid for one year from 2020-01-01.
g $T2020 --quick-gen-key 'expiring <exp@example.org>' ed25519 sign 1y
X=$(fpr exp@example.org)
g --export --armor "$X" > "$out/expiring.asc"
g $T2020b --local-user "$X!" --detach-sign -o "$out/expiring.sig" "$out/msg.txt"

# Ed25519 key, then revoked with the revocation certificate gpg made for it.
g $T2020 --quick-gen-key 'revoked <rev@example.org>' ed25519 sign never
V=$(fpr rev@example.org)
g $T2020b --local-user "$V!" --detach-sign -o "$out/revoked.sig" "$out/msg.txt"
g --export --armor "$V" > "$out/revoked-before.asc"
sed 's/^:-----BEGIN/-----BEGIN/' "$GNUPGHOME/openpgp-revocs.d/$V.rev" > "$GNUPGHOME/rev.asc"
g $T2020b --import "$GNUPGHOME/rev.asc"
g --export --armor "$V" > "$out/revoked.asc"
