"""Finding, validating and calling plugins.

:class:`PluginManager` wraps ``pluggy.PluginManager("byoc")`` with the hooks of
:mod:`byoc.plugins.hookspecs`. Plugins come from the entry point group ``byoc.plugins``
(:meth:`PluginManager.load_entry_points`) or, in tests and embedding code, from
:meth:`PluginManager.register`. Either way a plugin is validated when it registers, and every
problem is a :class:`byoc.errors.PluginError` naming the plugin, the hook and the expected
signature. Hooks are called for one plugin at a time with :meth:`PluginManager.call`.

Registering a plugin also makes the ops it declares with ``byoc_import_custom_ops`` known to
the importer and the reference interpreter (:func:`byoc.core.interpreter.base.declare_plugin_op`)
until it is unregistered.
"""

from __future__ import annotations

import difflib
import functools
import inspect
from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import Any, Callable, Iterable

import pluggy

from byoc.core.interpreter.base import declare_plugin_op, declared_ops, withdraw_plugin_op
from byoc.errors import ByocError, PluginError
from byoc.plugins import hookspecs
from byoc.plugins.api import CustomOp, DeclaredOp, PluginInfo, PluginOption

ENTRY_POINT_GROUP = "byoc.plugins"

HOOK_NAMES: tuple[str, ...] = tuple(
    name for name, value in vars(hookspecs).items()
    if name.startswith("byoc_") and inspect.isfunction(value))


def hook_signature(hook_name: str) -> str:
    """The hook's spec as text, e.g. ``byoc_partition_cost(pattern_name: str, ...) -> ...``."""
    spec = getattr(hookspecs, hook_name)
    sig = inspect.signature(spec)  # annotations stay strings (postponed evaluation)
    params = ", ".join(
        f"{p.name}: {p.annotation}" if p.annotation is not inspect.Parameter.empty else p.name
        for p in sig.parameters.values())
    returns = "" if sig.return_annotation is inspect.Signature.empty \
        else f" -> {sig.return_annotation}"
    return f"{hook_name}({params}){returns}"


def declarations(result: Any, item_type: type, hook_name: str, plugin: str,
                 origin: str) -> list:
    """A hook's list of ``item_type`` declarations (None counts as none), or a PluginError
    naming the plugin, what it returned and the hook's signature."""
    if result is None:
        return []
    if not isinstance(result, (list, tuple)) or \
            not all(isinstance(item, item_type) for item in result):
        raise PluginError(
            f"plugin {plugin!r} (from {origin}): {hook_name} returned {result!r:.80}, expected "
            f"a list of byoc.plugins.api.{item_type.__name__}; expected signature: "
            f"{hook_signature(hook_name)}")
    return list(result)


def repeated(names: list[str]) -> list[str]:
    """The names that occur more than once, sorted."""
    return sorted({name for name in names if names.count(name) > 1})


def did_you_mean(name: str, known: Iterable[str]) -> str:
    """`` (did you mean 'vta_sim'?)`` for the name of ``known`` closest to ``name``, or ""
    when none is close."""
    close = difflib.get_close_matches(name, list(known), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _closest_hook(name: str) -> str:
    matches = difflib.get_close_matches(name, HOOK_NAMES, n=1, cutoff=0.0)
    return matches[0] if matches else HOOK_NAMES[0]


@dataclass(frozen=True)
class LoadedPlugin:
    """A registered plugin: the name it is registered under, what it says about itself, where
    it came from (``"<distribution> <version>"`` for an installed package), the plugin
    object (module or instance) whose hooks are called, the ops it declares and the options
    it declares (None when it does not implement ``byoc_plugin_options``: it takes any)."""

    name: str
    info: PluginInfo
    origin: str
    object: Any
    custom_ops: tuple[CustomOp, ...] = ()
    options: tuple[PluginOption, ...] | None = None


class PluginManager:
    """The plugins byoc knows about, and the way to call their hooks."""

    def __init__(self) -> None:
        self._pm = pluggy.PluginManager(hookspecs.PROJECT)
        self._pm.add_hookspecs(hookspecs)
        self._plugins: dict[str, LoadedPlugin] = {}

    # -- discovery and registration --------------------------------------------------------

    def load_entry_points(self, errors: list[PluginError] | None = None) -> list[LoadedPlugin]:
        """Load and register every plugin in the entry point group ``byoc.plugins``.

        The registration name is the entry point's name and the origin is the distribution
        that declares it (name and version). Entry points already loaded from the same
        origin are skipped, so calling this twice is harmless. Returns the plugins it newly
        registered. Raises PluginError if a plugin cannot be imported or fails validation;
        when ``errors`` is a list, that PluginError is appended to it instead and the other
        plugins are still loaded (the command line does this so that one broken plugin does
        not take away the others' commands).
        """
        loaded: list[LoadedPlugin] = []
        for ep in entry_points(group=ENTRY_POINT_GROUP):
            origin = _origin_of(ep)
            existing = self._plugins.get(ep.name)
            if existing is not None and existing.origin == origin:
                continue
            try:
                loaded.append(self._load_entry_point(ep, origin))
            except PluginError as exc:
                if errors is None:
                    raise
                errors.append(exc)
        return loaded

    def _load_entry_point(self, ep: Any, origin: str) -> LoadedPlugin:
        try:
            plugin = ep.load()
        except Exception as exc:
            raise PluginError(
                f"plugin {ep.name!r} from {origin} could not be loaded (entry point "
                f"{ep.name} = {ep.value}): {type(exc).__name__}: {exc}. Reinstall or "
                f"uninstall that package.") from exc
        return self.register(plugin, name=ep.name, origin=origin)

    def register(self, plugin: Any, name: str | None = None,
                 origin: str = "registered in-process") -> LoadedPlugin:
        """Validate and register a plugin object (a module or an instance; a class is
        instantiated with no arguments) and return it as a :class:`LoadedPlugin`.

        ``name`` defaults to the name in the plugin's ``byoc_plugin_info``. Raises
        PluginError if the plugin defines an unknown hook, an implementation whose
        arguments the spec does not have, lacks ``byoc_plugin_info``, if the name is taken,
        if ``byoc_plugin_options`` returns something else than options with unique names, or
        if an op it declares with ``byoc_import_custom_ops`` is malformed or declared
        already (by another plugin or by byoc).
        """
        if inspect.isclass(plugin):
            try:
                plugin = plugin()
            except Exception as exc:
                raise PluginError(f"plugin class {plugin.__qualname__} from {origin} could not "
                                  f"be instantiated: {type(exc).__name__}: {exc}") from exc
        label = name or getattr(plugin, "__name__", None) or type(plugin).__name__
        for loaded in self._plugins.values():
            if loaded.object is plugin:
                raise PluginError(f"plugin {label!r} is already registered as {loaded.name!r} "
                                  f"(from {loaded.origin})")
        self.validate(plugin, label)

        provisional = name or f"{label}@{id(plugin):x}"
        self._pluggy_register(plugin, provisional, label)
        try:
            info = self._call_object(plugin, label, "byoc_plugin_info", {})
            if not isinstance(info, PluginInfo):
                raise PluginError(
                    f"plugin {label!r} (from {origin}): byoc_plugin_info returned "
                    f"{type(info).__name__}, expected a byoc.plugins.api.PluginInfo; expected "
                    f"signature: {hook_signature('byoc_plugin_info')}")
            final = name or info.name
            if final in self._plugins:
                other = self._plugins[final]
                raise PluginError(f"two plugins are named {final!r}: one from {other.origin} "
                                  f"and one from {origin}; uninstall one of them")
            options = self._options_of(plugin, final, origin)
            custom_ops = self._custom_ops_of(plugin, final, origin)
            _declare(final, origin, custom_ops)
        except BaseException:
            self._pm.unregister(plugin)
            raise
        if final != provisional:
            self._pm.unregister(plugin)
            self._pluggy_register(plugin, final, final)
        loaded = LoadedPlugin(final, info, origin, plugin, custom_ops, options)
        self._plugins[final] = loaded
        return loaded

    def _options_of(self, plugin: Any, name: str,
                    origin: str) -> tuple[PluginOption, ...] | None:
        if not hasattr(plugin, "byoc_plugin_options"):
            return None
        return self._declared_once(plugin, name, origin, "byoc_plugin_options", PluginOption,
                                   lambda option: option.name)

    def _custom_ops_of(self, plugin: Any, name: str, origin: str) -> tuple[CustomOp, ...]:
        return self._declared_once(plugin, name, origin, "byoc_import_custom_ops", CustomOp,
                                   lambda op: op.qualified_name)

    def _declared_once(self, plugin: Any, name: str, origin: str, hook_name: str,
                       item_type: type, key: Callable[[Any], str]) -> tuple:
        """What the plugin declares with the hook ``hook_name``, a list of ``item_type``;
        PluginError if it returns something else or declares a ``key`` more than once."""
        items = declarations(self._call_object(plugin, name, hook_name, {}), item_type,
                             hook_name, name, origin)
        twice = repeated([key(item) for item in items])
        if twice:
            raise PluginError(f"plugin {name!r} (from {origin}) declares {', '.join(twice)} "
                              f"more than once in {hook_name}; declare each once")
        return tuple(items)

    def validate(self, plugin: Any, name: str) -> None:
        """Check what can be checked before registering: every attribute named ``byoc_*`` is
        a known hook marked with ``@byoc.plugins.hookimpl``, and ``byoc_plugin_info`` is
        implemented. (Argument names are checked against the specs by pluggy when the plugin
        registers.) Raises PluginError naming the plugin and the hook."""
        try:
            hash(plugin)
        except TypeError:
            raise PluginError(f"plugin {name!r} is an unhashable {type(plugin).__name__}; a "
                              f"plugin must be a module or a hashable object (a dataclass "
                              f"plugin needs eq=False)") from None
        attrs = [attr for attr in dir(plugin) if attr.startswith("byoc_")]
        for attr in attrs:
            if attr not in HOOK_NAMES:
                closest = _closest_hook(attr)
                raise PluginError(
                    f"plugin {name!r} defines {attr!r}, which is not a byoc hook; did you mean "
                    f"{closest!r}? Expected signature: {hook_signature(closest)}. Known hooks: "
                    f"{', '.join(HOOK_NAMES)}")
            if self._pm.parse_hookimpl_opts(plugin, attr) is None:
                raise PluginError(
                    f"plugin {name!r} defines {attr!r} without the @byoc.plugins.hookimpl "
                    f"marker (or not as a function or method), so it would never be called; "
                    f"expected signature: {hook_signature(attr)}")
        if "byoc_plugin_info" not in attrs:
            raise PluginError(
                f"plugin {name!r} does not implement byoc_plugin_info, which every plugin "
                f"must; expected signature: {hook_signature('byoc_plugin_info')}")

    def _pluggy_register(self, plugin: Any, pluggy_name: str, label: str) -> None:
        try:
            self._pm.register(plugin, name=pluggy_name)
        except pluggy.PluginValidationError as exc:
            hook = next((h for h in HOOK_NAMES if repr(h) in str(exc)), None)
            if hook is None:
                raise PluginError(f"plugin {label!r} is invalid: {exc}") from exc
            impl = getattr(plugin, hook)
            try:
                impl_sig = f"{hook}{inspect.signature(impl)}"
            except (TypeError, ValueError):
                impl_sig = hook
            raise PluginError(
                f"plugin {label!r} implements {hook} with a signature the hook does not have: "
                f"{impl_sig}. Expected signature: {hook_signature(hook)} (an implementation "
                f"may take fewer of these arguments, but no others)") from exc

    def unregister(self, name: str) -> None:
        """Remove the plugin registered as ``name`` (embedding code and tests)."""
        loaded = self.get(name)
        self._pm.unregister(loaded.object)
        for op in loaded.custom_ops:
            withdraw_plugin_op(op.domain, op.op_type)
        del self._plugins[name]

    # -- queries -----------------------------------------------------------------------------

    def plugins(self) -> list[LoadedPlugin]:
        """The registered plugins, in registration order."""
        return list(self._plugins.values())

    def get(self, name: str) -> LoadedPlugin:
        """The plugin registered as ``name``; PluginError naming the closest name and listing
        the installed plugins if there is none."""
        try:
            return self._plugins[name]
        except KeyError:
            installed = ", ".join(sorted(self._plugins)) or "none"
            raise PluginError(f"no plugin named {name!r}{did_you_mean(name, self._plugins)}; "
                              f"installed plugins: {installed} (plugins are pip packages with "
                              f"an entry point in the group {ENTRY_POINT_GROUP})") from None

    # -- calling hooks -----------------------------------------------------------------------

    def call(self, plugin_name: str, hook_name: str, **kwargs: Any) -> Any:
        """Call hook ``hook_name`` of plugin ``plugin_name`` only, with keyword arguments.

        Returns that plugin's result, or None if it does not implement the hook. The keyword
        arguments must be exactly the hook's spec arguments (TypeError otherwise: that is a
        bug in the caller). An exception other than a ByocError raised by the plugin is
        re-raised as a PluginError naming the plugin and the hook.
        """
        loaded = self.get(plugin_name)
        if hook_name not in HOOK_NAMES:
            raise PluginError(f"there is no hook {hook_name!r}; did you mean "
                              f"{_closest_hook(hook_name)!r}?")
        return self._call_object(loaded.object, plugin_name, hook_name, kwargs)

    def _call_object(self, plugin: Any, label: str, hook_name: str,
                     kwargs: dict[str, Any]) -> Any:
        expected = _spec_arguments(hook_name)
        if set(kwargs) != set(expected):
            raise TypeError(f"{hook_name} takes the keyword arguments {expected}, "
                            f"got {sorted(kwargs)}")
        others = [p for _, p in self._pm.list_name_plugin() if p is not None and p is not plugin]
        caller = self._pm.subset_hook_caller(hook_name, remove_plugins=others)
        try:
            return caller(**kwargs)
        except ByocError:
            raise
        except Exception as exc:
            raise PluginError(f"plugin {label!r} failed in {hook_name}: "
                              f"{type(exc).__name__}: {exc} (a bug in the plugin: report it to "
                              f"its authors)") from exc


@functools.lru_cache(maxsize=None)
def _spec_arguments(hook_name: str) -> list[str]:
    """The argument names of hook ``hook_name``'s spec (a compile calls hooks hundreds of
    times)."""
    return list(inspect.signature(getattr(hookspecs, hook_name)).parameters)


def _declare(plugin: str, origin: str, custom_ops: tuple[CustomOp, ...]) -> None:
    """Declare the plugin's ops to the interpreter, all or (on a PluginError) none."""
    declared: list[CustomOp] = []
    try:
        for op in custom_ops:
            declare_plugin_op(DeclaredOp(plugin, origin, op))
            declared.append(op)
    except PluginError:
        for op in declared:
            withdraw_plugin_op(op.domain, op.op_type)
        raise


def _origin_of(ep: Any) -> str:
    dist = getattr(ep, "dist", None)
    if dist is None:
        return f"entry point {ep.name} = {ep.value}"
    name = getattr(dist, "name", None) or dist.metadata["Name"]
    return f"{name} {dist.version}"


_default: PluginManager | None = None


def default_manager() -> PluginManager:
    """The process-wide plugin manager, with every installed plugin loaded on first use."""
    global _default
    if _default is None:
        manager = PluginManager()
        manager.load_entry_points()
        _default = manager
    return _default


def installed_custom_ops(errors: list[PluginError] | None = None) -> list[DeclaredOp]:
    """The ops that the installed plugins, and those registered in-process, declare with
    ``byoc_import_custom_ops``, each with its plugin, sorted by domain and op type. The
    installed plugins are loaded by a manager of their own, so the process-wide one is left
    as it was; a plugin that cannot be loaded raises, or is appended to ``errors``."""
    manager = PluginManager()
    manager.load_entry_points(errors=errors)
    try:
        return declared_ops()
    finally:
        for plugin in manager.plugins():
            manager.unregister(plugin.name)
