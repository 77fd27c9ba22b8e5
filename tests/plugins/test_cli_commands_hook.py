"""The byoc_cli_commands hook: plugins adding top-level ``byoc`` commands, name clashes,
broken plugins, and start-up that does not load plugins for byoc's own commands."""

from __future__ import annotations

import pytest

from byoc import cli
from byoc.errors import InputError, PluginError
from byoc.plugins import PluginInfo, PluginManager, hookimpl
from byoc.plugins import manager as manager_module
from byoc.plugins.api import CliCommand


def greet_arguments(parser):
    parser.add_argument("who")
    parser.add_argument("--times", type=int, default=1)


def greet(args):
    if args.who == "nobody":
        raise InputError("there is nobody to greet; name someone")
    if args.who == "bug":
        raise ZeroDivisionError("division by zero")
    print(" ".join([f"hello {args.who}"] * args.times))
    return 3 if args.who == "three" else None


def broken_arguments(parser):
    raise RuntimeError("no arguments today")


def make_plugin(name, commands):
    class Plugin:
        @hookimpl
        def byoc_plugin_info(self):
            return PluginInfo(name=name, version="1.0", device="test", description="")

        @hookimpl
        def byoc_cli_commands(self):
            return commands

    Plugin.__qualname__ = f"Plugin_{name}"
    return Plugin


GREETER = make_plugin("greeter", [
    CliCommand("greet", "say hello", greet_arguments, greet),
    CliCommand("fragile", "cannot set up its arguments", broken_arguments, greet)])


class FakeEntryPoint:
    """What importlib.metadata gives for an installed plugin, minus the installation."""

    def __init__(self, name, plugin=None, error=None):
        self.name, self.value, self.dist = name, f"test_plugins:{name}", None
        self.plugin, self.error = plugin, error

    def load(self):
        if self.error:
            raise self.error
        return self.plugin


@pytest.fixture
def installed(monkeypatch):
    """installed(*entry_points) makes those the installed plugins; returns the list of
    entry point look-ups byoc made."""
    lookups = []

    def install(*eps):
        def entry_points(**kwargs):
            lookups.append(kwargs)
            return list(eps) if kwargs.get("group") == "byoc.plugins" else []
        monkeypatch.setattr(manager_module, "entry_points", entry_points)
        return lookups
    return install


def test_plugin_command_runs_with_its_arguments(installed, capsys):
    installed(FakeEntryPoint("greeter", GREETER))
    assert cli.main(["greet", "world", "--times", "2"]) == 0
    assert capsys.readouterr().out == "hello world hello world\n"
    assert cli.main(["greet", "three"]) == 3


def test_plugin_commands_appear_in_help(installed, capsys):
    installed(FakeEntryPoint("greeter", GREETER))
    with pytest.raises(SystemExit) as exit_:
        cli.main(["--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    assert "greet" in out and "say hello" in out and "compile" in out
    assert "left out" not in out


def test_user_errors_from_a_command_are_one_paragraph(installed, capsys):
    installed(FakeEntryPoint("greeter", GREETER))
    assert cli.main(["greet", "nobody"]) == 1
    err = capsys.readouterr().err
    assert err == "byoc: error: there is nobody to greet; name someone\n"


def test_a_crashing_command_is_reported_as_the_plugins_bug(installed, capsys):
    installed(FakeEntryPoint("greeter", GREETER))
    assert cli.main(["greet", "bug"]) == 2
    err = capsys.readouterr().err
    assert "internal error: ZeroDivisionError" in err and "bug in the plugin 'greeter'" in err
    assert "Traceback" not in err


def test_only_the_command_used_sets_up_its_arguments(installed, capsys):
    installed(FakeEntryPoint("greeter", GREETER))
    assert cli.main(["greet", "you"]) == 0
    assert cli.main(["fragile", "you"]) == 1
    err = capsys.readouterr().err.replace("\n  ", " ")
    assert "plugin 'greeter' failed to set up the arguments of its command 'fragile': " \
           "RuntimeError: no arguments today" in err


def test_two_plugins_adding_one_name_are_refused(installed, capsys):
    other = make_plugin("other", [CliCommand("greet", "another hello", greet_arguments, greet)])
    installed(FakeEntryPoint("greeter", GREETER), FakeEntryPoint("other", other))
    found = cli.plugin_commands()
    assert "greet" not in found.commands and "fragile" in found.commands
    error = found.refused["greet"]
    assert isinstance(error, PluginError)
    assert "plugins 'greeter' (from entry point greeter = test_plugins:greeter) and 'other'" \
           in str(error) and "both add the command 'greet'" in str(error)
    assert cli.main(["greet", "x"]) == 1
    err = capsys.readouterr().err.replace("\n  ", " ")
    assert "'greeter'" in err and "'other'" in err and "both add the command 'greet'" in err
    with pytest.raises(SystemExit):
        cli.main(["--help"])
    out = capsys.readouterr().out
    assert "plugin commands left out:" in out and "another hello" not in out


def test_a_builtin_name_is_refused_and_the_builtin_kept(installed, capsys):
    clash = make_plugin("clash", [CliCommand("ops", "not byoc's ops", greet_arguments, greet)])
    installed(FakeEntryPoint("clash", clash))
    error = cli.plugin_commands().refused["ops"]
    assert "plugin 'clash'" in str(error) and "one of byoc's own commands" in str(error)
    assert cli.main(["ops"]) == 0
    assert "ai.onnx::Conv" in capsys.readouterr().out


def test_builtin_commands_do_not_load_plugins(installed, capsys):
    lookups = installed(FakeEntryPoint("broken", error=ImportError("no such module")))
    with pytest.raises(SystemExit):
        cli.main(["--version"])
    assert lookups == []
    # `byoc ops` loads the plugins for the ops they declare; a broken one does not stop it.
    assert cli.main(["ops"]) == 0
    assert "plugin 'broken'" in capsys.readouterr().err


def test_a_broken_plugin_does_not_take_the_others_commands(installed, capsys):
    installed(FakeEntryPoint("broken", error=ImportError("no module named broken_pkg")),
              FakeEntryPoint("greeter", GREETER))
    assert cli.main(["greet", "world"]) == 0
    assert capsys.readouterr().out == "hello world\n"
    # A command that may have been the broken plugin's names the load error.
    assert cli.main(["disasm"]) == 1
    err = capsys.readouterr().err.replace("\n  ", " ")
    assert "unknown command 'disasm'" in err and "plugin 'broken'" in err
    assert "could not be loaded" in err
    with pytest.raises(SystemExit):
        cli.main(["-h"])
    out = capsys.readouterr().out
    assert "greet" in out and "plugin 'broken'" in out


@pytest.mark.parametrize("result", ["greet", [("greet", "help")], {"greet": None}])
def test_a_malformed_hook_result_is_a_plugin_failure(result):
    manager = PluginManager()
    manager.register(make_plugin("odd", result))
    found = cli.plugin_commands(manager)
    assert found.commands == {}
    (failure,) = found.failures
    assert "plugin 'odd'" in str(failure) and "expected a list of byoc.plugins.api.CliCommand" \
        in str(failure) and "byoc_cli_commands() -> list[CliCommand]" in str(failure)


def test_a_plugin_adding_one_name_twice_is_refused():
    twice = [CliCommand("greet", "a", greet_arguments, greet)] * 2
    manager = PluginManager()
    manager.register(make_plugin("twice", twice))
    (failure,) = cli.plugin_commands(manager).failures
    assert "more than one command named 'greet'" in str(failure)


def test_plugins_without_commands_add_nothing():
    manager = PluginManager()
    manager.register(make_plugin("quiet", None))
    found = cli.plugin_commands(manager)
    assert (found.commands, found.refused, found.failures) == ({}, {}, [])


@pytest.mark.parametrize("name", ["", "Greet", "-x", "two words", "1st", None])
def test_command_names_must_be_command_words(name):
    with pytest.raises(PluginError, match="is not a command word"):
        CliCommand(name, "help", greet_arguments, greet)


def test_command_parts_must_be_callable():
    with pytest.raises(PluginError, match="run must be callable"):
        CliCommand("greet", "help", greet_arguments, "greet")


def test_hook_signature_is_checked_at_registration():
    class TakesArguments:
        @hookimpl
        def byoc_plugin_info(self):
            return PluginInfo(name="args", version="1", device="d", description="")

        @hookimpl
        def byoc_cli_commands(self, parser):
            return []

    with pytest.raises(PluginError, match=r"implements byoc_cli_commands with a signature the "
                                          r"hook does not have.*byoc_cli_commands\(\) -> "
                                          r"list\[CliCommand\]"):
        PluginManager().register(TakesArguments())


def test_load_entry_points_can_collect_errors(installed):
    installed(FakeEntryPoint("broken", error=ImportError("gone")),
              FakeEntryPoint("greeter", GREETER))
    with pytest.raises(PluginError, match="plugin 'broken'"):
        PluginManager().load_entry_points()
    errors = []
    manager = PluginManager()
    loaded = manager.load_entry_points(errors=errors)
    assert [p.name for p in loaded] == ["greeter"]
    assert len(errors) == 1 and "ImportError: gone" in str(errors[0])


def test_builtin_command_list_matches_the_parser():
    parser = cli.build_parser()
    (commands,) = [a for a in parser._actions if a.dest == "command"]
    assert tuple(commands.choices) == cli.BUILTIN_COMMANDS
