"""pytest integration of the conformance kit: ``pytest --byoc-plugin NAME``.

byoc registers this module with pytest (entry point group ``pytest11``), so the option is
there in any pytest run once byoc is installed; without it the module does nothing and imports
nothing of byoc. Each case becomes one test item, ``byoc-conformance/NAME::PATTERN[CASE]``,
marked ``byoc_conformance`` (``-m byoc_conformance`` runs the kit alone next to a package's
own tests); a pattern the plugin's limits skip is one skipped item with the reason. A
failure prints the kit's message alone: it names the pattern, the case and its parameters.
"""

from __future__ import annotations

import pytest

MARKER = "byoc_conformance"


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("byoc", "byoc conformance kit")
    group.addoption("--byoc-plugin", action="append", default=[], metavar="NAME",
                    dest="byoc_plugins",
                    help="run byoc's conformance kit on the installed byoc plugin NAME "
                         "(repeatable)")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", f"{MARKER}: a case of byoc's conformance kit "
                                       f"(added by --byoc-plugin)")


@pytest.hookimpl(tryfirst=True)  # before -k and -m deselect
def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config,
                                  items: list[pytest.Item]) -> None:
    for plugin in config.getoption("byoc_plugins"):
        collector = PluginCases.from_parent(session, name=f"byoc-conformance/{plugin}",
                                            nodeid=f"byoc-conformance/{plugin}")
        collector.plugin = plugin
        items.extend(collector.collect())


class PluginCases(pytest.Collector):
    """The cases of one plugin."""

    plugin: str

    def collect(self) -> list[pytest.Item]:
        from byoc.conformance import plugin_cases
        from byoc.conformance.families import Unbuildable
        from byoc.errors import ByocError

        try:
            cases, skipped = plugin_cases(self.plugin)
        except ByocError as exc:
            return [BrokenLimits.from_parent(self, name="limits", error=str(exc))]
        items: list[pytest.Item] = [
            SkippedPattern.from_parent(self, name=f"{pattern}[skipped]", reason=reason)
            for pattern, reason in skipped.items()]
        for case in cases:
            try:
                built = case.build()
            except Unbuildable:
                continue  # this combination of values makes no valid model for the op
            except ByocError as exc:  # the kit cannot build this pattern's structure
                items.append(BrokenLimits.from_parent(self, name=case.label, error=str(exc)))
                continue
            items.append(CaseItem.from_parent(self, name=case.label, case=case, built=built))
        return items


class _KitItem(pytest.Item):
    def __init__(self, **kwargs) -> None:
        super().__init__(**{k: v for k, v in kwargs.items()
                            if k in ("name", "parent", "nodeid", "config", "session")})
        self.add_marker(MARKER)

    def repr_failure(self, excinfo, style=None):
        from byoc.conformance import ConformanceFailure

        if isinstance(excinfo.value, ConformanceFailure):
            return str(excinfo.value)
        return super().repr_failure(excinfo, style=style)

    def reportinfo(self):
        return self.path, None, self.name


class CaseItem(_KitItem):
    """One case: compile, check the plan, compare with the reference."""

    def __init__(self, *, case, built, **kwargs) -> None:
        super().__init__(**kwargs)
        self.case, self.built = case, built

    def runtest(self) -> None:
        from byoc.conformance import NotApplicable, run_case

        try:
            run_case(self.case, self.built)
        except NotApplicable as exc:
            pytest.skip(str(exc))


class SkippedPattern(_KitItem):
    """A pattern the plugin's limits leave untested, with the reason."""

    def __init__(self, *, reason, **kwargs) -> None:
        super().__init__(**kwargs)
        self.reason = reason

    def runtest(self) -> None:
        pytest.skip(self.reason)


class BrokenLimits(_KitItem):
    """The plugin's limits could not be read: one failing item saying why."""

    def __init__(self, *, error, **kwargs) -> None:
        super().__init__(**kwargs)
        self.error = error

    def runtest(self) -> None:
        from byoc.conformance import ConformanceFailure

        raise ConformanceFailure(f"plugin {self.parent.plugin!r}: {self.error}")
