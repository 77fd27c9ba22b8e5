"""Placement by estimated cost (byoc.partition.placement), on graphs and costs we choose: what
it moves and why, what it must never do, and what it leaves alone."""

from dataclasses import dataclass, field

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from partition.test_partitioner import assert_consistent, build, ops, random_cases

from byoc.partition.partitioner import PartitionProblem
from byoc.partition.placement import place_by_cost, price_plan, price_priority
from byoc.plugins.api import Estimate, Transfer


@dataclass
class Costs:
    """A cost model we control: seconds per node by plugin (and op), a transfer latency per
    plugin, which plugins are hosts and which have no model of their own."""

    per_node: dict[str, float]
    latency: dict[str, float] = field(default_factory=dict)
    hosts: tuple[str, ...] = ("cpu",)
    unpriced: tuple[str, ...] = ()
    per_op: dict[tuple[str, str], float] = field(default_factory=dict)
    launch: dict[str, float] = field(default_factory=dict)

    def match(self, plugin, pattern, nodes):
        seconds = sum(self.per_op.get((plugin, n.op_type), self.per_node[plugin])
                      for n in nodes)
        return Estimate(seconds, None, 0, 0, f"{plugin} test model")

    def priced(self, plugin, pattern, nodes):
        return plugin not in self.unpriced

    def transfer(self, plugin):
        if plugin in self.hosts:
            return Transfer.free(self.launch.get(plugin, 0.0))
        return Transfer(bandwidth=1e30, latency=self.latency.get(plugin, 0.0),
                        launch=self.launch.get(plugin, 0.0))

    def is_host(self, plugin):
        return plugin in self.hosts


def island():
    """x -> a -> b -> s -> c -> d: the npu claims every node but the Sigmoid s."""
    return build([("a", "Relu", ["x"]), ("b", "Relu", ["a"]), ("s", "Sigmoid", ["b"]),
                  ("c", "Relu", ["s"]), ("d", "Relu", ["c"])])


def layout(plan):
    return [(p.plugin, [n.name for n in p.nodes]) for p in plan.partitions]


def test_transfers_that_cost_more_than_the_accelerator_saves_keep_the_model_on_the_host():
    graph = island()
    problem = PartitionProblem(graph, [ops("npu", 0, "Relu")])
    costs = Costs({"npu": 1e-6, "cpu": 3e-6}, latency={"npu": 10e-6})
    plan, placement = place_by_cost(problem, costs)
    assert layout(plan) == [("cpu", ["a", "b", "s", "c", "d"])]
    # priority: npu 4 x 1 us + 4 transfers x 10 us, host 3 us; host alone: 5 x 3 us
    assert placement.priority == pytest.approx(47e-6)
    assert placement.host_only == pytest.approx(15e-6)
    assert placement.chosen == pytest.approx(15e-6)
    why = plan.explanations["a"].reasons["npu"]
    assert any("placement by estimated cost" in r and "15.0 us without this match" in r
               for r in why), why
    assert_consistent(graph, plan)


def test_cheap_transfers_keep_the_accelerator():
    problem = PartitionProblem(island(), [ops("npu", 0, "Relu")])
    costs = Costs({"npu": 1e-6, "cpu": 3e-6}, latency={"npu": 0.1e-6})
    plan, placement = place_by_cost(problem, costs)
    assert layout(plan) == [("npu", ["a", "b"]), ("cpu", ["s"]), ("npu", ["c", "d"])]
    assert placement.chosen == placement.priority == pytest.approx(7.4e-6)


def test_each_partition_pays_its_launch_once():
    """Launch costs make two small npu partitions dearer than one host partition: the
    island's npu work goes to the host once the npu's launch outweighs what it saves."""
    problem = PartitionProblem(island(), [ops("npu", 0, "Relu")])
    cheap = Costs({"npu": 1e-6, "cpu": 3e-6}, launch={"npu": 1e-6, "cpu": 0.5e-6})
    plan, placement = place_by_cost(problem, cheap)
    assert len(plan.partitions) == 3
    assert [p.launch_seconds for p in placement.partitions] == [1e-6, 0.5e-6, 1e-6]
    assert placement.chosen == pytest.approx(4e-6 + 3e-6 + 2.5e-6)
    dear = Costs({"npu": 1e-6, "cpu": 3e-6}, launch={"npu": 5e-6, "cpu": 0.5e-6})
    plan, placement = place_by_cost(problem, dear)
    assert layout(plan) == [("cpu", ["a", "b", "s", "c", "d"])]
    assert placement.chosen == pytest.approx(15.5e-6)


def test_a_costly_op_moves_to_the_host_alone_when_that_saves_time():
    """One Relu of the chain is slow on the npu: only its match moves (a single-match move),
    the rest stays on the accelerator."""
    graph = build([("a", "Relu", ["x"]), ("b", "Relu", ["a"]), ("e", "Exp", ["b"]),
                   ("c", "Relu", ["e"])])
    problem = PartitionProblem(graph, [ops("npu", 0, "Relu", "Exp")])
    costs = Costs({"npu": 1e-6, "cpu": 3e-6}, latency={"npu": 0.5e-6},
                  per_op={("npu", "Exp"): 50e-6})
    plan, placement = place_by_cost(problem, costs)
    assert layout(plan) == [("npu", ["a", "b"]), ("cpu", ["e"]), ("npu", ["c"])]
    assert placement.chosen < min(placement.priority, placement.host_only)


def test_a_cheaper_lower_priority_accelerator_takes_over():
    graph = build([("a", "Relu", ["x"]), ("b", "Relu", ["a"])])
    problem = PartitionProblem(graph, [ops("npu", 0, "Relu"), ops("dsp", 1, "Relu")])
    plan, placement = place_by_cost(problem, Costs({"npu": 5e-6, "dsp": 1e-6, "cpu": 9e-6}))
    assert layout(plan) == [("dsp", ["a", "b"])]
    assert placement.chosen == pytest.approx(2e-6)
    assert placement.priority == pytest.approx(10e-6)


def test_an_accelerator_without_a_model_keeps_what_priority_gives_it():
    """A plugin that cannot price its matches is not pushed off the model: byoc's fallback
    model would price it pessimistically."""
    problem = PartitionProblem(island(), [ops("npu", 0, "Relu")])
    costs = Costs({"npu": 1e-6, "cpu": 3e-6}, latency={"npu": 10e-6}, unpriced=("npu",))
    plan, placement = place_by_cost(problem, costs)
    assert layout(plan) == layout(problem.plan())
    assert placement.chosen == placement.priority > placement.host_only


def test_pins_and_exclusions_hold_under_cost_placement():
    graph = island()
    costs = Costs({"npu": 1e-6, "cpu": 3e-6}, latency={"npu": 10e-6})
    pinned = PartitionProblem(graph, [ops("npu", 0, "Relu")], pins={"s": "npu"})
    plan, _ = place_by_cost(pinned, costs)
    assert plan.partition_of("s").plugin == "cpu"   # pinned, but no npu pattern takes it
    cheap = Costs({"npu": 1e-6, "cpu": 3e-6})
    problem = PartitionProblem(graph, [ops("npu", 0, "Relu")])
    plan, _ = place_by_cost(problem, cheap, exclusions={"c": {"npu": "failed to compile"}})
    assert plan.partition_of("c").plugin == "cpu"
    assert "failed to compile" in plan.explanations["c"].reasons["npu"]


def test_priority_placement_is_priced_with_the_host_only_total_beside_it():
    problem = PartitionProblem(island(), [ops("npu", 0, "Relu")])
    plan = problem.plan()
    placement = price_priority(problem, Costs({"npu": 1e-6, "cpu": 3e-6},
                                              latency={"npu": 10e-6}), plan)
    assert plan.placement is placement and placement.mode == "priority"
    assert (placement.chosen, placement.priority) == (pytest.approx(47e-6),) * 2
    assert placement.host_only == pytest.approx(15e-6)
    assert sum(p.total_seconds for p in placement.partitions) == pytest.approx(47e-6)
    npu = placement.partitions[0]
    assert [(c.value, c.direction) for c in npu.crossings] == [("x", "in"), ("b", "out")]
    assert npu.transfer_seconds == pytest.approx(20e-6)


@settings(max_examples=150, deadline=None)
@given(case=random_cases(), data=st.data())
def test_cost_placement_is_never_estimated_slower_than_priority_or_host_only(case, data):
    graph, claims, min_size, pins = case
    seconds = st.floats(0.1e-6, 20e-6)
    costs = Costs({"npu": data.draw(seconds), "dsp": data.draw(seconds),
                   "cpu": data.draw(seconds)},
                  latency={"npu": data.draw(seconds), "dsp": data.draw(seconds)})
    problem = PartitionProblem(graph, claims, host="cpu", min_partition_size=min_size,
                               pins=pins)
    plan, placement = place_by_cost(problem, costs)
    assert placement.chosen <= min(placement.priority, placement.host_only) + 1e-15
    # the total is the plan's, and the plan obeys the partitioner's rules
    assert sum(p.total_seconds for p in price_plan(plan, problem, costs)) == \
        pytest.approx(placement.chosen)
    assert_consistent(graph, plan)
    for pin, plugin in pins.items():
        for node in graph.nodes:
            if pin in (node.name, node.op_type) and pins.get(node.name, plugin) == plugin:
                assert plan.partition_of(node.name).plugin in (plugin, "cpu")


def test_the_search_is_bounded_and_says_when_it_stopped(monkeypatch):
    """The search prices at most MAX_PLANS plans; stopped early, it still returns the best
    plan it saw (never worse than the baselines) and says so."""
    from byoc.partition import placement as module

    specs = [(f"n{i}", "Relu" if i % 2 else "Exp", [f"n{i - 1}" if i else "x"])
             for i in range(40)]
    problem = PartitionProblem(build(specs), [ops("npu", 0, "Relu"), ops("dsp", 1, "Exp")])
    costs = Costs({"npu": 1e-6, "dsp": 1e-6, "cpu": 1.1e-6},
                  latency={"npu": 0.2e-6, "dsp": 0.3e-6})
    unbounded = place_by_cost(problem, costs)[1]
    assert unbounded.searched_all and unbounded.plans_priced > 6
    monkeypatch.setattr(module, "MAX_PLANS", 6)
    plan, placement = place_by_cost(problem, costs)
    assert not placement.searched_all and placement.plans_priced <= 6
    assert placement.chosen <= min(placement.priority, placement.host_only)
    assert_consistent(problem.graph, plan)
