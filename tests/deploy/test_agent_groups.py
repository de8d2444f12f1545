"""``make run``'s agent processes: every LLM agent alone, baselines grouped when asked."""

from __future__ import annotations

from deploy.render import users_for
from devstack.processes import agent_groups, hosts, programs
from services.common.lineup import AgentSpec, Lineup


def _lineup(baselines: int) -> Lineup:
    llm = [
        AgentSpec(id="claude", display_name="Claude", provider="anthropic", model="m"),
        AgentSpec(id="gpt", display_name="GPT", provider="openai", model="m"),
    ]
    plain = [
        AgentSpec(id=f"b{n:03d}", display_name=f"B{n}", provider="baseline", model="random")
        for n in range(baselines)
    ]
    off = AgentSpec(
        id="off", display_name="Off", provider="baseline", model="random", enabled=False
    )
    return Lineup(agents=(llm[0], *plain[:2], llm[1], *plain[2:], off))


def test_by_default_every_agent_has_its_own_process() -> None:
    groups = agent_groups(_lineup(3))
    assert groups == (("claude",), ("gpt",), ("b000",), ("b001",), ("b002",))
    assert hosts(groups) == {}


def test_baselines_are_grouped_evenly_and_llm_agents_stay_alone() -> None:
    groups = agent_groups(_lineup(10), per_process=4)
    assert groups[:2] == (("claude",), ("gpt",))
    assert [len(g) for g in groups[2:]] == [4, 3, 3]
    assert [a for g in groups[2:] for a in g] == [f"b{n:03d}" for n in range(10)]
    assert list(hosts(groups)) == ["agents-b000-4", "agents-b004-3", "agents-b007-3"]


def test_a_host_runs_under_its_own_user_with_its_agents_ids() -> None:
    lineup = _lineup(100)
    groups = agent_groups(lineup, per_process=25)
    placed = programs(
        lineup, port_is_free=lambda _: True, free_port=lambda: 0, agents_per_process=25
    )
    agents = [p for p in placed if p.module == "services.agent"]
    assert [p.name for p in agents] == [
        "agent-claude", "agent-gpt", *(f"agents-b{n:03d}-25" for n in (0, 25, 50, 75))
    ]  # fmt: skip
    assert dict(agents[2].env) == {"ARENA_AGENT_IDS": ",".join(f"b{n:03d}" for n in range(25))}
    assert dict(agents[0].env) == {"AGENT_ID": "claude"}
    assert all(p.user == p.name for p in placed)
    users = {u.name: u for u in users_for(lineup, hosts(groups))}
    host = users["agents-b025-25"]
    assert "arena.decision.proposed.b030" in host.publish
    assert "arena.decision.proposed.b000" not in host.publish
    assert "arena.decision.proposed.claude" not in host.publish


def test_a_default_metrics_port_in_use_is_replaced_by_a_free_one() -> None:
    # A second arena on the machine (or anything else) holds 9102 and 9104.
    taken = {9102, 9104}
    spare = iter((40001, 40002))
    placed = programs(
        _lineup(1), port_is_free=lambda port: port not in taken, free_port=lambda: next(spare)
    )
    ports = [p.metrics_port for p in placed]
    assert ports[:5] == [9101, 40001, 9103, 40002, 9105]
    assert len(set(ports)) == len(ports)


def test_no_two_processes_get_the_same_port_nor_the_gateways() -> None:
    # As `--free-ports` asks: no default port, each process a port the system hands out;
    # it hands out 40001 twice in a row (the first socket was closed), and 40003 is the
    # gateway's.
    spare = iter((40001, 40001, 40002, 40003, *range(40004, 40010)))
    placed = programs(
        _lineup(1),
        port_is_free=lambda _: False,
        free_port=lambda: next(spare),
        reserved=(40003,),
    )
    assert [p.metrics_port for p in placed] == [40001, 40002, *range(40004, 40009)]
