"""Plugin roles: the plugins that declare the host role follow the selected ones by default."""

from __future__ import annotations

import numpy as np
import pytest
from onnx import TensorProto, helper
from plugins.toy_plugins import Adder

import byoc
from byoc.errors import PluginError
from byoc.pipeline import installed_hosts
from byoc.plugins import PluginInfo, PluginManager, hookimpl
from byoc.plugins import reference as reference_plugin
from byoc.plugins.manager import default_manager
from byoc.testing import make_model


class HostAdder(Adder):
    """The toy adder, declaring that it can take whatever the accelerators leave."""

    name = "hostadder"

    @hookimpl
    def byoc_plugin_info(self):
        return PluginInfo(name=self.name, version=self.version, device="toy host",
                          description="elementwise add on the host", role="host")


class OtherHostAdder(HostAdder):
    name = "another_host"


@pytest.fixture
def manager():
    manager = PluginManager()
    manager.register(reference_plugin)
    return manager


def add_model():
    nodes = [helper.make_node("Add", ["x0", "x1"], ["y"], name="add")]
    return make_model(nodes, [(x, TensorProto.FLOAT, [2, 3]) for x in ("x0", "x1")],
                      [("y", TensorProto.FLOAT, [2, 3])])


def plugins_in_plan(compiled):
    return {partition.plugin for partition in compiled.plan.partitions}


def test_a_host_plugin_is_picked_by_default(manager):
    manager.register(HostAdder())
    compiled = byoc.compile(add_model(), manager=manager)
    assert plugins_in_plan(compiled) == {"hostadder"}
    feeds = {"x0": np.ones((2, 3), np.float32), "x1": np.full((2, 3), 2, np.float32)}
    np.testing.assert_array_equal(compiled.run(feeds)["y"], np.full((2, 3), 3, np.float32))


def test_an_accelerator_is_not_picked_by_default(manager):
    manager.register(Adder())
    assert installed_hosts(manager) == []
    assert plugins_in_plan(byoc.compile(add_model(), manager=manager)) == {"reference"}
    assert plugins_in_plan(byoc.compile(add_model(), plugins=["adder"], manager=manager)) == \
        {"adder"}


def test_selected_plugins_come_before_the_hosts(manager):
    manager.register(HostAdder())
    manager.register(Adder())
    assert plugins_in_plan(byoc.compile(add_model(), plugins=["adder"], manager=manager)) == \
        {"adder"}
    assert plugins_in_plan(byoc.compile(add_model(), default_plugins=(), manager=manager)) == \
        {"reference"}


def test_hosts_follow_in_alphabetical_order_not_registration_order(manager):
    manager.register(HostAdder())
    manager.register(OtherHostAdder())
    assert installed_hosts(manager) == ["another_host", "hostadder"]
    assert plugins_in_plan(byoc.compile(add_model(), manager=manager)) == {"another_host"}


def test_an_unknown_role_is_refused_naming_the_plugin(manager):
    class Coprocessor(Adder):
        @hookimpl
        def byoc_plugin_info(self):
            return PluginInfo(name="copro", version="1", device="d", description="d",
                              role="coprocessor")

    with pytest.raises(PluginError, match=r"plugin 'copro' declares the role 'coprocessor'.*"
                                          r"accelerator, host"):
        manager.register(Coprocessor())
    assert [p.name for p in manager.plugins()] == ["reference"]


def test_the_installed_hosts_are_cpu_llvm_alone():
    """Today's plugins: cpu_llvm is the host backend; vta_sim and npu_example are
    accelerators, and the reference plugin is the last-resort host, not a default one."""
    installed = {p.name for p in default_manager().plugins()}
    assert installed_hosts(default_manager()) == (["cpu_llvm"] if "cpu_llvm" in installed
                                                  else [])
