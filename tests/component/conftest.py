"""The component tier: devices as real child processes (CLIs, the reference till, `posrig host serve`, ...) on
loopback, no network namespaces."""
