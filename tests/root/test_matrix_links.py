"""End-to-end matrix, part 2: plugins that build on a link of the node --
macvlan, ipvlan and vlan on a parent device made for the test, host-device
moving a device into the pod and back.  Debian's plugins, through the
library and through cnitool (see tests/matrix.py)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import kernel
import pytest
from matrix import VIAS, Matrix, sh
from support import unique

pytestmark = pytest.mark.root


@pytest.fixture(params=VIAS)
def mx(request: pytest.FixtureRequest, make_netns: object, tmp_path: Path) -> object:
    matrix = Matrix(request.param, make_netns("mx"), tmp_path)  # type: ignore[operator]
    yield matrix
    matrix.cleanup()


def kernel_supports(parent: str, *kind: str) -> bool:
    """Whether the kernel can make a link of this kind on ``parent`` (tried
    and removed again)."""
    probe = unique("mxq")
    made = subprocess.run(["ip", "link", "add", probe, "link", parent, "type", *kind], capture_output=True, check=False)
    if made.returncode == 0:
        sh("ip", "link", "del", probe)
        return True
    return False


def test_macvlan(mx: Matrix) -> None:
    parent = mx.parent_link()
    att = mx.attach([{"type": "macvlan", "master": parent, "mode": "bridge", "ipam": mx.host_local(mx.v4())}])
    res = att.add()
    address = mx.v4(2)
    assert res["interfaces"] == [{"name": "eth0", "mac": res["interfaces"][0]["mac"], "sandbox": mx.netns}]
    assert res["ips"] == [{"interface": 0, "address": address, "gateway": mx.subnet.gateway}]
    pod = kernel.links(mx.pod)
    assert set(pod) == {"lo", "eth0"} and pod["eth0"]["kind"] == "macvlan" and pod["eth0"]["up"]
    assert pod["eth0"]["mac"] == res["interfaces"][0]["mac"]
    assert ("eth0", address) in kernel.addresses(mx.pod)
    assert (mx.v4(), None, "eth0") in kernel.routes(mx.pod)
    assert set(kernel.links()) - mx.node_links_before == {parent}  # nothing new on the node but the parent
    assert kernel.reservations(mx.data_dir, att.network) == [address.split("/")[0]]
    assert att.check() is None

    sh("ip", "-n", mx.pod, "addr", "flush", "dev", "eth0")
    assert att.check() == f'plugin type="macvlan" failed (check): Failed to match addr {address} on interface eth0'
    att.delete()
    att.assert_gone()
    assert parent in kernel.links()


def test_debian_macvlan_del_fails_once_the_parent_is_gone(make_netns: object, tmp_path: Path) -> None:
    """Pins Debian's macvlan (1.1.1): DEL looks the master link up before
    anything else, so once the parent device is gone (its macvlan went with
    it), every DEL fails and the attachment can never be removed by DEL --
    its cache record and host-local reservation stay."""
    mx = Matrix("lib", make_netns("mx"), tmp_path)  # type: ignore[operator]
    parent = mx.parent_link()
    att = mx.attach([{"type": "macvlan", "master": parent, "ipam": mx.host_local(mx.v4())}])
    att.add()
    sh("ip", "link", "del", parent)
    assert set(kernel.links(mx.pod)) == {"lo"}  # the kernel removed the macvlan with its parent
    _, error = att._outcome("del")
    assert error == 'plugin type="macvlan" failed (del): Link not found'
    assert att.cache_file.exists()
    assert kernel.reservations(mx.data_dir, att.network) == [att.ips[0]]


@pytest.mark.parametrize(
    ("plugin", "kind"),
    [
        ({"type": "ipvlan", "mode": "l2"}, ("ipvlan", "mode", "l2")),
        ({"type": "vlan", "vlanId": 42}, ("vlan", "id", "42")),
    ],
    ids=["ipvlan", "vlan"],
)
def test_ipvlan_and_vlan(plugin: dict[str, object], kind: tuple[str, ...], mx: Matrix) -> None:
    """ipvlan and vlan need the kernel's ipvlan and 8021q drivers.  Where the
    kernel has them the full case runs; where it does not (CI's kernel has
    neither), the plugin's ADD fails with the kernel's answer, and the DEL
    that follows leaves nothing behind -- asserted, not skipped."""
    parent = mx.parent_link()
    att = mx.attach([{**plugin, "master": parent, "ipam": mx.host_local(mx.v4())}])
    if not kernel_supports(parent, *kind):
        assert (
            att.add_error()
            == f'plugin type="{plugin["type"]}" failed (add): failed to create {kind[0]}: operation not supported'
        )
        att.delete()
        att.assert_gone()
        return
    res = att.add()
    address = mx.v4(2)
    assert [ip["address"] for ip in res["ips"]] == [address]
    pod = kernel.links(mx.pod)
    assert set(pod) == {"lo", "eth0"} and pod["eth0"]["kind"] == kind[0]
    assert ("eth0", address) in kernel.addresses(mx.pod)
    assert att.check() is None
    sh("ip", "-n", mx.pod, "addr", "flush", "dev", "eth0")
    error = att.check()
    assert (
        error is not None and error.startswith(f'plugin type="{plugin["type"]}" failed (check): ') and address in error
    )
    att.delete()
    att.assert_gone()


def test_host_device(mx: Matrix) -> None:
    device = mx.parent_link("mxhd")
    mac = kernel.links()[device]["mac"]
    att = mx.attach([{"type": "host-device", "device": device, "ipam": mx.host_local(mx.v4())}])
    res = att.add()
    address = mx.v4(2)
    # the node's device moved into the pod, renamed to the interface name
    assert device not in kernel.links()
    assert res["interfaces"] == [{"name": "eth0", "mac": mac, "sandbox": mx.netns}]
    pod = kernel.links(mx.pod)
    assert set(pod) == {"lo", "eth0"} and pod["eth0"]["mac"] == mac
    assert ("eth0", address) in kernel.addresses(mx.pod)
    assert att.check() is None

    sh("ip", "-n", mx.pod, "addr", "flush", "dev", "eth0")
    assert att.check() == f'plugin type="host-device" failed (check): Failed to match addr {address} on interface eth0'
    att.delete()
    # back in the node under its own name
    assert kernel.links()[device]["mac"] == mac
    att.assert_gone()
