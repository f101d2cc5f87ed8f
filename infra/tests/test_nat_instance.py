"""The NAT instance's boot script (components/nat_instance.sh), run for real against a scratch
root with stand-ins for the system commands (sysctl, ip, nft, iptables, dnf, systemctl,
logger, sleep) that record every call."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from components.egress import nat_user_data

CIDR = "10.20.1.0/24"
ROUTE = "default via 10.20.0.1 dev ens5 proto dhcp src 10.20.0.10 metric 512"
# Real tools the script needs besides bash builtins.
REAL_TOOLS = ("awk", "mkdir", "cp", "chmod", "readlink", "cat")

FAKE = r"""#!@BASH@
# Records "<name> <args>" (and stdin for nft -f -), then behaves as the test asked.
name=${0##*/}
echo "$name $*" >> "$FAKE_LOG"
case $name in
    ip)
        count=$(( $(cat "$FAKE_STATE/ip-calls" 2>/dev/null || echo 0) + 1 ))
        echo "$count" > "$FAKE_STATE/ip-calls"
        if [ "${FAKE_ROUTE_AFTER:-0}" -ge 0 ] && [ "$count" -gt "${FAKE_ROUTE_AFTER:-0}" ]; then
            echo "$FAKE_ROUTE"
        fi ;;
    nft)
        if [ "$1" = "-f" ]; then cat > "$FAKE_STATE/nft-rules"; fi
        exit "${FAKE_NFT_STATUS:-0}" ;;
    dnf)
        if [ "${FAKE_DNF:-fail}" = "install" ]; then cp "$0" "${0%/*}/nft"; exit 0; fi
        exit 1 ;;
    sysctl) exit "${FAKE_SYSCTL_STATUS:-0}" ;;
esac
exit 0
"""


@dataclass
class Run:
    status: int
    stderr: str
    calls: list[str]
    root: Path
    state: Path

    def called(self, prefix: str) -> list[str]:
        return [c for c in self.calls if c.startswith(prefix)]

    def index(self, prefix: str) -> int:
        return next(i for i, c in enumerate(self.calls) if c.startswith(prefix))


@pytest.fixture
def nat(tmp_path):
    """Runs the rendered boot script with the given stand-ins present and behaviours set."""
    script = tmp_path / "user-data"
    script.write_text(nat_user_data(CIDR))
    script.chmod(0o755)
    tools = tmp_path / "tools"
    tools.mkdir()
    for tool in REAL_TOOLS:
        (tools / tool).symlink_to(shutil.which(tool))

    def run(
        fakes=("sysctl", "ip", "nft", "dnf", "systemctl", "logger", "sleep"),
        path: Path = script,
        route_wait: int = 300,
        **behaviour: str,
    ) -> Run:
        fake_bin = tmp_path / "bin"
        shutil.rmtree(fake_bin, ignore_errors=True)
        fake_bin.mkdir()
        for fake in fakes:
            (fake_bin / fake).write_text(FAKE.replace("@BASH@", shutil.which("bash")))
            (fake_bin / fake).chmod(stat.S_IRWXU)
        state = tmp_path / "state"
        state.mkdir(exist_ok=True)
        (state / "ip-calls").unlink(missing_ok=True)
        log = tmp_path / "calls.log"
        log.write_text("")
        root = tmp_path / "root"
        root.mkdir(exist_ok=True)
        env = {
            "PATH": f"{fake_bin}:{tools}",
            "FAKE_LOG": str(log),
            "FAKE_STATE": str(state),
            "FAKE_ROUTE": ROUTE,
            "WIKIBOT_NAT_ROOT": str(root),
            "WIKIBOT_NAT_ROUTE_WAIT_SECONDS": str(route_wait),
            **{f"FAKE_{k.upper()}": v for k, v in behaviour.items()},
        }
        done = subprocess.run(
            [shutil.which("bash"), str(path)], env=env, capture_output=True, text=True, timeout=60
        )
        return Run(done.returncode, done.stderr, log.read_text().splitlines(), root, state)

    return run


def test_forwarding_then_masquerade_of_the_private_subnet_with_nft(nat):
    run = nat()
    assert run.status == 0, run.stderr
    assert run.calls[0] == "sysctl -q -w net.ipv4.ip_forward=1", "forwarding before anything else"
    assert (run.root / "etc/sysctl.d/90-wikibot-nat.conf").read_text() == "net.ipv4.ip_forward = 1\n"
    rules = (run.state / "nft-rules").read_text()
    assert f'ip saddr {CIDR} oifname "ens5" masquerade' in rules, "out of the default route's interface"
    assert "type nat hook postrouting" in rules
    assert run.index("nft delete table ip wikibot_nat") < run.index("nft -f -"), "idempotent"
    assert not run.called("dnf"), "no package when the image has nft"


def test_with_only_iptables_in_the_image_iptables_masquerades(nat):
    run = nat(fakes=("sysctl", "ip", "iptables", "dnf", "systemctl", "logger", "sleep"))
    assert run.status == 0, run.stderr
    assert f"iptables -t nat -A POSTROUTING -s {CIDR} -o ens5 -j MASQUERADE" in run.calls
    assert "iptables -P FORWARD ACCEPT" in run.calls
    assert not run.called("dnf")


def test_nftables_is_installed_only_when_the_image_has_neither_tool(nat):
    run = nat(fakes=("sysctl", "ip", "dnf", "systemctl", "logger", "sleep"), dnf="install")
    assert run.status == 0, run.stderr
    assert run.called("dnf") == ["dnf install -y -q nftables"]
    assert run.index("sysctl") < run.index("dnf"), "forwarding never waits for a package"
    assert f'ip saddr {CIDR} oifname "ens5" masquerade' in (run.state / "nft-rules").read_text()


def test_a_failed_install_is_retried_then_reported_and_forwarding_stays_on(nat):
    run = nat(fakes=("sysctl", "ip", "dnf", "systemctl", "logger", "sleep"), dnf="fail")
    assert run.status == 1
    assert run.called("dnf") == ["dnf install -y -q nftables"] * 3
    assert run.calls[0] == "sysctl -q -w net.ipv4.ip_forward=1"
    assert "FAILED: no nft or iptables" in run.stderr
    assert any("FAILED" in c for c in run.called("logger")), "into the system log too"
    assert not run.called("systemctl"), "nothing installed for later boots on failure"


def test_it_waits_for_the_default_route_before_reading_its_interface(nat):
    run = nat(route_after="3")
    assert run.status == 0, run.stderr
    assert len(run.called("ip route show default")) == 4
    assert run.called("sleep") == ["sleep 2"] * 3
    assert run.index("sleep") < run.index("nft -f -")
    assert 'oifname "ens5"' in (run.state / "nft-rules").read_text()


def test_no_default_route_at_all_is_a_reported_failure_not_a_rule_on_no_interface(nat):
    run = nat(route_after="-1", route_wait=6)
    assert run.status == 1
    assert "FAILED: no default route after 6 s" in run.stderr
    assert run.called("sleep") == ["sleep 2"] * 3
    assert not run.called("nft"), "no masquerade rule on an empty interface name"
    assert run.calls[0].startswith("sysctl")


def test_a_refused_rule_is_a_failure(nat):
    run = nat(nft_status="1")
    assert run.status == 1
    assert "FAILED: nft refused the masquerade rule" in run.stderr


def test_it_installs_itself_to_run_at_every_boot_and_runs_again_from_there(nat):
    first = nat()
    installed = first.root / "usr/local/sbin/wikibot-nat"
    unit = (first.root / "etc/systemd/system/wikibot-nat.service").read_text()
    assert installed.read_text() == nat_user_data(CIDR)
    assert os.access(installed, os.X_OK)
    assert "ExecStart=/usr/local/sbin/wikibot-nat" in unit and "WantedBy=multi-user.target" in unit
    assert first.called("systemctl") == ["systemctl enable wikibot-nat.service"]

    reboot = nat(path=installed)
    assert reboot.status == 0, reboot.stderr
    assert reboot.calls[0].startswith("sysctl")
    assert reboot.called("nft -f -"), "the rules again after a reboot"
    assert not reboot.called("systemctl"), "the installed copy does not reinstall itself"
