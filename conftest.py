"""Root conftest: thin on purpose. posrig's fixtures come from its pytest11 plugin (fixtures/plugin.py)."""

pytest_plugins = ("pytester",)
