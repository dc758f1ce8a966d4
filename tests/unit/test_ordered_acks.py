"""Finished work is released in offset order, so a commit never passes unfinished work."""

from __future__ import annotations

from coderunner.handlers.ordered_acks import OrderedAcks


def test_a_later_message_finishing_first_waits_for_the_earlier_one() -> None:
    acks: OrderedAcks[str] = OrderedAcks()
    for offset in (10, 11, 12):
        acks.start("p0", offset, f"m{offset}")
    assert acks.finish("p0", 11) == []
    assert acks.finish("p0", 12) == []
    assert acks.finish("p0", 10) == ["m10", "m11", "m12"]
    assert acks.in_flight() == 0


def test_partitions_do_not_block_each_other() -> None:
    acks: OrderedAcks[str] = OrderedAcks()
    acks.start("p0", 5, "a")
    acks.start("p1", 7, "b")
    assert acks.finish("p1", 7) == ["b"]
    assert acks.in_flight() == 1
    assert acks.finish("p0", 5) == ["a"]
