"""labgrid places as posrig rigs: a rig's `labgrid: {coordinator: HOST:PORT, place: NAME}` makes posrig acquire
that place for the run, reach its devices through the place's resources, cut the till's power through it, and
name the place, exporters and resources in acceptance.json. See docs/labgrid.md.

Modules: `place` (show/acquire/release, what killed runs left), `agent` (labgrid's Python client, run as a child),
`resources` (which resource serves which device), `bridge` (a NetworkSerialPort as a local pty), `power`
(labgrid-client power), `session` (one run: acquire, bridge, fill the rig in, release).
"""
