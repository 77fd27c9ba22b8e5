"""The conformance kit: checks that a plugin's patterns keep their promises.

Run it from any plugin package with ``pytest --byoc-plugin NAME`` (the option repeats; byoc
registers :mod:`byoc.conformance.pytest_plugin` with pytest). For every pattern of the
plugin the kit builds small ONNX models across shapes, dtypes and attributes (see
:mod:`byoc.conformance.families`), compiles each with the plugin alone (no default plugins:
what the plugin leaves runs on the reference host) and checks that

- a case inside the pattern's declared limits is taken by that pattern, compiles without a
  fallback to the host, and gives the reference interpreter's outputs (integers exactly,
  floats within the tolerance);
- a case outside the limits is declined, and the plan says why.

A plugin declares its limits with the optional hook ``byoc_conformance_limits`` (see
:mod:`byoc.plugins.hookspecs` and :class:`byoc.plugins.api.PatternLimits`); without it the
kit derives cases from each pattern's op types (:mod:`byoc.conformance.cases`).
"""

from __future__ import annotations

from byoc.conformance.cases import Case, pattern_cases
from byoc.conformance.check import ConformanceFailure, NotApplicable, run_case
from byoc.errors import PluginError
from byoc.plugins.api import PatternLimits
from byoc.plugins.manager import PluginManager, default_manager
from byoc.plugins.options import default_patterns


def plugin_cases(plugin: str, manager: PluginManager | None = None
                 ) -> tuple[list[Case], dict[str, str]]:
    """Every case of ``plugin``'s patterns, and the patterns its limits skip with the reason.

    Raises PluginError when the plugin is not installed or its limits are malformed (not a
    list of PatternLimits, a pattern named twice or not at all in its pattern table, a
    parameter no builder takes)."""
    manager = manager or default_manager()
    patterns = default_patterns(manager, plugin)
    limits = _limits_by_pattern(plugin, manager, {p.name for p in patterns})
    cases, skipped = [], {}
    for pattern in patterns:
        declared = limits.get(pattern.name)
        if declared is not None and declared.skip:
            skipped[pattern.name] = declared.skip
        cases += pattern_cases(plugin, pattern, declared)
    return cases, skipped


def _limits_by_pattern(plugin: str, manager: PluginManager,
                       names: set[str]) -> dict[str, PatternLimits]:
    declared = manager.call(plugin, "byoc_conformance_limits") or []
    if not isinstance(declared, (list, tuple)) or \
            not all(isinstance(d, PatternLimits) for d in declared):
        raise PluginError(f"plugin {plugin!r}: byoc_conformance_limits returned "
                          f"{declared!r:.80}, expected a list of byoc.plugins.api.PatternLimits")
    by_name: dict[str, PatternLimits] = {}
    for limits in declared:
        if limits.pattern not in names:
            raise PluginError(f"plugin {plugin!r} declares limits for {limits.pattern!r}, which "
                              f"is not one of its patterns ({', '.join(sorted(names))})")
        if limits.pattern in by_name:
            raise PluginError(f"plugin {plugin!r} declares limits for {limits.pattern!r} twice")
        by_name[limits.pattern] = limits
    return by_name


__all__ = ["Case", "ConformanceFailure", "NotApplicable", "PatternLimits", "plugin_cases",
           "run_case"]
