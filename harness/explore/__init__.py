"""Fault exploration (`posrig explore`): random compound fault schedules run on warm benches, shrunk to minimal
replayable scenario files when an invariant breaks. See docs/explore.md.

`schedule.py` (a schedule and its scenario file), `strategies.py` (hypothesis strategies that draw them),
`shrink.py` (delta debugging over faults, then over each fault's parameters), `explorer.py` (the budgeted loop
on a `ScenarioPool`), `report.py` (exploration.json and summary.txt).
"""
