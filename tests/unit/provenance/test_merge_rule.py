"""The provenance merge rule, pure: of every statement about a node or an edge, the one of
smallest precedence wins (a definition before a mention, then the earliest log position), so
the graph is the same whatever order, and however often, the log's events are applied."""

from __future__ import annotations

import itertools
import random

from services.provenance.domain import (
    Edge,
    Label,
    Node,
    Origin,
    Rel,
    winning_edges,
    winning_nodes,
)


def origin(topic: str = "atoms", partition: int = 0, offset: int = 0) -> Origin:
    return Origin(topic, partition, offset, f"ev-{topic}-{partition}-{offset}", "acme", "t")


def atom(origin_: Origin, *, defines: bool = True, size: int = 1) -> Node:
    props = {"size_bytes": size} if defines else {}
    return Node(Label.ATOM, "a" * 64, "", "a" * 64, props, origin_, defines)


def test_a_definition_beats_a_mention_whatever_their_positions() -> None:
    mention = atom(origin("atoms", 0, 1), defines=False)
    definition = atom(origin("embeddings", 5, 900))
    assert winning_nodes([mention, definition]) == [definition]
    assert winning_nodes([definition, mention]) == [definition]


def test_among_definitions_the_earliest_log_position_wins() -> None:
    late = atom(origin("atoms", 0, 10), size=2)
    early = atom(origin("atoms", 0, 9), size=1)  # 9 < 10 numerically, not as text
    other_partition = atom(origin("atoms", 1, 0), size=3)
    assert winning_nodes([late, other_partition, early]) == [early]


def test_a_topic_that_is_a_prefix_of_another_sorts_first() -> None:
    # The separator sorts below every character a topic name may hold.
    shorter = atom(origin("ooda.action", 3, 0), size=1)
    longer = atom(origin("ooda.actions", 0, 0), size=2)
    assert shorter.precedence < longer.precedence
    assert winning_nodes([longer, shorter]) == [shorter]


def test_statements_of_one_record_are_broken_by_their_properties() -> None:
    same = origin("atoms", 0, 4)
    first, second = atom(same, size=1), atom(same, size=2)
    assert winning_nodes([second, first]) == winning_nodes([first, second])


def test_any_order_and_any_repetition_give_the_same_graph() -> None:
    nodes = [
        atom(origin(topic, partition, offset), defines=defines, size=offset)
        for topic, partition, offset, defines in itertools.product(
            ("atoms", "embeddings"), (0, 1), (3, 17), (True, False)
        )
    ]
    edges = [
        Edge(Rel.EMBEDDED_AS, "Atom:x", "Embedding:y", "", {"n": n.origin.offset}, n.origin)
        for n in nodes
    ]
    expected_nodes, expected_edges = winning_nodes(nodes), winning_edges(edges)
    rng = random.Random(7)
    for _ in range(50):
        shuffled = rng.sample(nodes, len(nodes)) * rng.randint(1, 3)
        assert winning_nodes(shuffled) == expected_nodes
        assert winning_nodes(winning_nodes(shuffled) + shuffled) == expected_nodes
        assert winning_edges(rng.sample(edges, len(edges))) == expected_edges
