"""The netns tier: emulated topologies, link engines, iptables NFQUEUE rules (root, or `unshare -Urn`)."""

import pytest


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/netns/" in item.nodeid and item.get_closest_marker("needs_netns") is None:
            item.add_marker(pytest.mark.needs_netns)
