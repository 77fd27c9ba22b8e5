"""The options users give plugins, checked against what the plugins declare.

Users give options by plugin and option name: ``--plugin-option vta_sim.target=rtl`` on the
command line (values are strings), ``plugin_options={"vta_sim": {"target": "rtl"}}`` from
Python. ``byoc.compile`` and ``byoc.load`` (and so the command line) check them here before
any hook sees them:

- a plugin name no registered plugin has is a PluginError naming the closest one and
  listing the installed plugins;
- for a plugin that declares its options (the hook ``byoc_plugin_options``), an option name
  it does not declare is a PluginError naming the closest declared one and listing them,
  and each value is converted to its option's type (:meth:`PluginOption.parse`);
- a plugin that does not implement that hook keeps the behaviour from before the hook
  existed, so that plugins written then still work: any option name is taken, its runtime
  gets the values as the user gave them (strings from the command line) and its lowering
  gets none.

The hooks of each stage then get :func:`stage_options`: every declared option of that stage,
with the user's value or else its default. An option that can do nothing is a
:class:`~byoc.errors.PluginOptionWarning`: one given to a plugin that runs no partition of
the model (:func:`warn_unused`), or a compile-stage one given when loading an artifact
(:func:`warn_compile_stage`).
"""

from __future__ import annotations

import warnings
from typing import Any, Collection, Mapping

from byoc.errors import PluginError, PluginOptionWarning
from byoc.plugins.api import PluginOption
from byoc.plugins.manager import LoadedPlugin, PluginManager, did_you_mean

PluginOptions = Mapping[str, Mapping[str, Any]]
"""Options by plugin name, then by option name."""


def check_plugin_options(manager: PluginManager, given: PluginOptions) -> dict[str, dict[str, Any]]:
    """``given`` checked against the plugins of ``manager``, each value converted to its
    option's type; a PluginError naming the plugin or option and the closest known one."""
    checked = {}
    for plugin, values in given.items():
        try:
            loaded = manager.get(plugin)
        except PluginError as exc:
            raise PluginError(f"options given for plugin {plugin!r}: {exc}") from None
        checked[plugin] = _checked(loaded, values)
    return checked


def stage_options(plugin: LoadedPlugin, given: Mapping[str, Any], stage: str) -> dict[str, Any]:
    """What the plugin's hooks of ``stage`` ("compile" or "run") get from the user's options
    ``given`` to it: every declared option of that stage, the user's value or its default.
    A plugin that declares no options hook gets ``given`` as it is at run time, and nothing
    at compile time."""
    if plugin.options is None:
        return dict(given) if stage == "run" else {}
    values = _checked(plugin, given)
    return {option.name: values.get(option.name, option.default)
            for option in plugin.options if option.stage == stage}


def all_options(plugin: LoadedPlugin, given: Mapping[str, Any]) -> dict[str, Any]:
    """The options of both stages, as hooks that serve compiling and running alike get them
    (estimates): :func:`stage_options` of "compile" and of "run" together."""
    return {**stage_options(plugin, given, "compile"), **stage_options(plugin, given, "run")}


def default_patterns(manager: PluginManager, plugin: str) -> list:
    """The plugin's pattern table with its compile-stage options at their defaults (what
    ``byoc plugins`` lists and the conformance kit checks); empty if it claims nothing."""
    options = stage_options(manager.get(plugin), {}, "compile")
    return list(manager.call(plugin, "byoc_partition_patterns", options=options) or [])


def warn_unused(given: PluginOptions, used: Collection[str], stacklevel: int = 1) -> None:
    """A PluginOptionWarning for each plugin given options that runs no partition (is not in
    ``used``): its options do nothing. ``stacklevel`` as for the caller's warnings.warn."""
    for plugin, values in given.items():
        if values and plugin not in used:
            warnings.warn(
                f"the option(s) {_names(plugin, values)} do nothing: plugin {plugin!r} runs no "
                f"partition of this model (its partitions run on "
                f"{', '.join(sorted(used)) or 'no plugin'}); drop them, or select the plugin "
                f"when compiling the model",
                PluginOptionWarning, stacklevel=stacklevel + 1)


def warn_compile_stage(manager: PluginManager, given: PluginOptions, artifact: str,
                       stacklevel: int = 1) -> None:
    """A PluginOptionWarning for each compile-stage option in ``given``, given when loading
    ``artifact``: its code is compiled already, so they cannot change it."""
    for plugin, values in given.items():
        declared = manager.get(plugin).options or ()
        fixed = [o.name for o in declared if o.stage == "compile" and o.name in values]
        if fixed:
            warnings.warn(
                f"the compile-stage option(s) {_names(plugin, fixed)} cannot change the "
                f"compiled artifact {artifact}; compile the model again with them",
                PluginOptionWarning, stacklevel=stacklevel + 1)


def describe_option(option: PluginOption) -> str:
    """One line for ``byoc plugins``: ``target: sim|rtl|cosim, default sim, run stage; ...``."""
    default = "not set" if option.default is None else f"default {option.default}"
    return f"{option.name}: {option.type_text}, {default}, {option.stage} stage; {option.help}"


def _checked(plugin: LoadedPlugin, values: Mapping[str, Any]) -> dict[str, Any]:
    if not isinstance(values, Mapping):
        raise PluginError(f"the options given for plugin {plugin.name!r} must map option "
                          f"names to values, e.g. {{'threads': 2}}, not {values!r:.60}")
    if plugin.options is None:
        return dict(values)
    declared = {option.name: option for option in plugin.options}
    for name in values:
        if name not in declared:
            raise PluginError(_unknown_option(plugin, str(name)))
    return {name: declared[name].parse(value, plugin.name) for name, value in values.items()}


def _unknown_option(plugin: LoadedPlugin, name: str) -> str:
    if not plugin.options:
        return (f"plugin {plugin.name!r} takes no options, so {plugin.name}.{name} is not "
                f"one; drop it")
    known = [option.name for option in plugin.options]
    listed = ", ".join(f"{option.name} ({option.type_text})" for option in plugin.options)
    return (f"plugin {plugin.name!r} has no option {name!r}{did_you_mean(name, known)}; its "
            f"options are {listed} (byoc plugins describes them)")


def _names(plugin: str, names: Collection[str]) -> str:
    return ", ".join(f"{plugin}.{name}" for name in names)
