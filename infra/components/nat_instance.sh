#!/bin/bash
# wikibot NAT instance (components/egress.py): forwards and masquerades what the private subnet
# (@PRIVATE_CIDR@) sends to the internet. Runs as EC2 user data at the first boot and installs
# itself as a systemd unit that runs it again at every later boot.
#
# No `set -e`: every step that matters is checked and reported. Forwarding comes first and needs
# nothing but the kernel; the default route is waited for before its interface is read; a
# package is installed only if the image has neither nft nor iptables, and only for the
# masquerade rule. Progress and failures go to stderr (the console log: `aws ec2
# get-console-output`) and the system log (tag wikibot-nat); the exit status is non-zero if
# the instance is not forwarding and masquerading.
#
# WIKIBOT_NAT_ROOT and WIKIBOT_NAT_ROUTE_WAIT_SECONDS exist for the tests
# (infra/tests/test_nat_instance.py), which run this script against a scratch directory.
set -uo pipefail
PRIVATE_CIDR=@PRIVATE_CIDR@
ROOT=${WIKIBOT_NAT_ROOT:-}
ROUTE_WAIT_SECONDS=${WIKIBOT_NAT_ROUTE_WAIT_SECONDS:-300}
INSTALLED=/usr/local/sbin/wikibot-nat
UNIT=wikibot-nat.service

say() {
    echo "wikibot-nat: $*" >&2
    logger -t wikibot-nat -- "$*" 2>/dev/null || true
}
fail() {
    say "FAILED: $*"
    exit 1
}

# 1. Forwarding: the kernel alone, before anything that could fail.
sysctl -q -w net.ipv4.ip_forward=1 || fail "could not turn on IPv4 forwarding"
if ! { mkdir -p "$ROOT/etc/sysctl.d" && echo 'net.ipv4.ip_forward = 1' > "$ROOT/etc/sysctl.d/90-wikibot-nat.conf"; }; then
    say "could not write /etc/sysctl.d/90-wikibot-nat.conf (forwarding is on; this script turns it on at every boot)"
fi
say "IPv4 forwarding on"

# 2. The interface the default route leaves by. Early in the boot there may be no route yet.
default_interface() {
    ip route show default 2>/dev/null |
        awk '$1 == "default" { for (i = 2; i < NF; i++) if ($i == "dev") { print $(i + 1); exit } }'
}
waited=0
iface=$(default_interface)
while [ -z "$iface" ]; do
    [ "$waited" -ge "$ROUTE_WAIT_SECONDS" ] && fail "no default route after ${ROUTE_WAIT_SECONDS} s: nothing to masquerade out of"
    sleep 2
    waited=$((waited + 2))
    iface=$(default_interface)
done
say "default route via $iface"

# 3. Masquerade the private subnet out of that interface, with whichever tool the image has.
masquerade_with_nft() {
    nft delete table ip wikibot_nat 2>/dev/null
    nft -f - <<EOF
table ip wikibot_nat {
    chain postrouting {
        type nat hook postrouting priority 100; policy accept;
        ip saddr $PRIVATE_CIDR oifname "$iface" masquerade
    }
}
EOF
}
masquerade_with_iptables() {
    iptables -t nat -D POSTROUTING -s "$PRIVATE_CIDR" -o "$iface" -j MASQUERADE 2>/dev/null
    iptables -t nat -A POSTROUTING -s "$PRIVATE_CIDR" -o "$iface" -j MASQUERADE && iptables -P FORWARD ACCEPT
}
if ! command -v nft >/dev/null 2>&1 && ! command -v iptables >/dev/null 2>&1; then
    say "neither nft nor iptables in the image: installing nftables"
    for attempt in 1 2 3; do
        dnf install -y -q nftables >&2 && break
        say "dnf install nftables failed (attempt $attempt of 3)"
        [ "$attempt" -lt 3 ] && sleep 10
    done
fi
if command -v nft >/dev/null 2>&1; then
    masquerade_with_nft || fail "nft refused the masquerade rule"
elif command -v iptables >/dev/null 2>&1; then
    masquerade_with_iptables || fail "iptables refused the masquerade rule"
else
    fail "no nft or iptables, and nftables could not be installed: the private subnet has no way out"
fi
say "masquerading $PRIVATE_CIDR out of $iface"

# 4. Every later boot: user data runs only once, this unit runs the installed copy.
if [ "$(readlink -f "$0")" != "$(readlink -f "$ROOT$INSTALLED" 2>/dev/null)" ]; then
    if mkdir -p "$ROOT/usr/local/sbin" "$ROOT/etc/systemd/system" &&
        cp "$0" "$ROOT$INSTALLED" && chmod 0755 "$ROOT$INSTALLED" &&
        cat > "$ROOT/etc/systemd/system/$UNIT" <<EOF; then
[Unit]
Description=wikibot NAT: forwarding and masquerade for the private subnet
Wants=network-online.target
After=network-online.target

[Service]
Type=oneshot
ExecStart=$INSTALLED
RemainAfterExit=yes

[Install]
WantedBy=multi-user.target
EOF
        systemctl enable "$UNIT" >&2 || say "could not enable $UNIT: NAT works until the next reboot"
    else
        say "could not install $INSTALLED: NAT works until the next reboot"
    fi
fi
exit 0
