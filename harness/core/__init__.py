"""The core every device and test builds on: one definition of each shared concept.

    rig.py        rig files: which devices are real or emulated, where, which links are faultable
    registry.py   drivers by (kind, name), declared as `posrig.drivers` entry points
    device.py     the Device base, DeviceContext and bindings (a driver names the kinds it binds to)
    bench.py      one scenario's devices: built with their bindings, started in order, closed in time
    evidence.py   the per-scenario evidence folder, masked transcripts
    masking.py    card-number masking, the only place that does it
    cards.py      the test-card table (terminal, host, matrix and the oracle's I4 scan read it)
    process.py    child processes: spawn, supervise (Child), one readiness line (announce_ready), stop
    service.py    TcpService: the one TCP accept loop of every emulated device
    events.py     Event and its timestamp `t`, timelines, wait_until
    address.py    HOST:PORT parsing
    doctor.py     what a rig needs from this machine: `posrig doctor` and the preflight of `posrig run`
    escpos_cache.py  python-escpos's capabilities pickle in one per-user folder (no temp folder per process)
"""
