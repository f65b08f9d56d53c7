"""Adapter methods as plug-ins: each registers its recipe settings and its implementation by name.

`settings_class(name)` validates a recipe's `adapter:` section (cheap: no torch import);
`method_for(name)` gives the implementation that builds, loads, routes, checkpoints and
exports it. Built in: lora, poly, mhr, cpoly, full (see `registry.py`).
"""
