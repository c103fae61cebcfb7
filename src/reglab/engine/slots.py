"""Slots: a population's members trained some at a time, a slot handed to another member at an epoch
boundary without recompiling — what adaptive search (successive halving, a sampler's next trials) needs.

A population compiled for S members trains S *slots*. Every member is built up front (its own Keras model
under its own seed); the first S start in slots 0 … S-1, and at each epoch boundary `decide` may retire a
slot's member (its records end there, its final weights are that epoch's) and give the slot to another
member. A member that takes a slot starts from its own initial state — its model's weights and
non-trainable state (dropout seeds), a fresh optimizer with its own learning rate — at its own epoch 0,
and trains `epochs` epochs unless retired earlier. A slot keeps its rows: every member that takes it
must train and validate on the slot's fold (a point's members take the slots of another point's members
fold by fold), so the slot's batch plan and validation indices hold for each of them, and each trains
exactly as `model.fit` of its own model (test). `decide` may also seat members planned after the population
was traced (a sampler's next trials: `hand_on`), built then and admitted where the traced program serves them
(`reglab.engine.admission`).

>>> board = Board(["a", "b", "c"], size=2, epochs=3)
>>> board.occupant, board.local(1, 0)
([0, 1], 0)
>>> board.retire(0, 2); board.take(0, 2, 2); board.occupant, board.local(0, 2), board.ended
([2, 1], 0, {0: 2})
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from reglab.search import plan


@dataclass
class Slots:
    """`size`: the slots (the first `size` members start in them). `decide(epoch, board)`: asked after every
    epoch of the population's loop (`epoch` epochs done), returns {slot: member position, or None to leave it
    empty} for the slots that change; a slot whose member finished its epochs is asked about too.
    `state()` / `restore(state)`: what `decide` remembers, as JSON-ready values, for a checkpoint (a population
    taking turns is checkpointed only when both are given)."""

    size: int
    decide: Callable
    state: Callable | None = None
    restore: Callable | None = None


class Board:
    """Which member trains in each slot, since which epoch of the loop; who stopped when (own epochs)."""

    def __init__(self, members, size: int, epochs: int):
        self.members, self.epochs = members, epochs
        self.occupant: list[int | None] = list(range(size))
        self.since = [0] * size
        self.latest = list(range(size))  # each slot's member, or its last one while it is empty
        self.started = set(range(size))
        self.ended: dict[int, int] = {}  # member position -> the epochs it trained
        self.rows: dict = {}  # member id -> its epoch rows so far (the engine's)
        self.refused: dict[str, str] = {}  # member id -> why it could not join (members `decide` planned late)

    def position(self, member) -> int:
        """Where `member` is in `members` (one `decide` planned late is appended when admitted)."""
        return plan.position(self.members, member)

    def state(self) -> dict:
        """The board as JSON-ready values (a checkpoint's); `restore` puts it back (`rows` are the engine's)."""
        return {
            "occupant": self.occupant,
            "since": self.since,
            "latest": self.latest,
            "started": sorted(self.started),
            "ended": [[m, e] for m, e in self.ended.items()],
        }

    def restore(self, state: dict) -> None:
        self.occupant, self.since, self.latest = list(state["occupant"]), list(state["since"]), list(state["latest"])
        self.started = set(state["started"])
        self.ended = {int(m): int(e) for m, e in state["ended"]}

    def local(self, slot: int, epoch: int) -> int:
        """The epoch of its own that the slot's member is in at the loop's `epoch`."""
        return epoch - self.since[slot]

    def busy(self, epoch: int) -> list[int]:
        """The slots whose member still has epochs to train at the loop's `epoch`."""
        return [s for s, m in enumerate(self.occupant) if m is not None and self.local(s, epoch) < self.epochs]

    def retire(self, slot: int, epoch: int) -> None:
        member = self.occupant[slot]
        if member is not None and member not in self.ended:
            self.ended[member] = self.local(slot, epoch)
        self.occupant[slot] = None

    def take(self, slot: int, member: int, epoch: int) -> None:
        """`member` starts in `slot` at the loop's `epoch` (the slot's member, if any, retired first)."""
        if member in self.started:
            raise ValueError(f"A member takes one slot, once. Received: member={self.members[member]!r}")
        self.retire(slot, epoch)
        self.occupant[slot] = self.latest[slot] = member
        self.since[slot] = epoch
        self.started.add(member)


def check_fold(members, slot_member: int, member: int) -> None:
    """A member takes a slot only with the slot's rows (its batch plan and validation indices)."""
    a, b = members[slot_member], members[member]
    if not plan.same_rows(a, b):
        raise ValueError(
            f"A member takes a slot only on the slot's fold (the same training and validation rows). "
            f"Received: member={b.id!r} (fold {b.fold}) for the slot of {a.id!r} (fold {a.fold})"
        )


PARTS = ("trainable", "non_trainable")  # what a member's final state is (its model's variables)


def hand_on(
    slots: Slots, board: Board, epoch: int, states: list, cuts: list, initial: dict, finals: dict, admit=None
) -> list:
    """The boundary after the loop's `epoch` epochs: members that finished their epochs leave their slots,
    `slots.decide` retires and seats members, and each seated member's slot gets its initial state (rows of
    `initial`, the population's initial state). A member that leaves keeps its state of now in `finals`.
    `decide` may seat members that did not exist when the population was traced (`plan.Member`s, not
    positions): `admit(members)` builds and appends them (returning None), or refuses them all (returning
    why: their slots stay empty and `board.refused` says it).
    Returns the shards' states (new where they changed: rows are set in one host copy of the shard, not by
    eager scatters, which would compile once per shape)."""
    import jax

    where = {}
    for k, cut in enumerate(cuts):
        for i, s in enumerate(cut):
            where.setdefault(s, (k, i))  # a slot's first place (the last shard may repeat one to fill up)

    views, hosts = {}, {}  # each shard's state on the host: read once a boundary; copied once where written

    def view(k):
        if k not in views:
            views[k] = jax.tree.map(np.asarray, states[k])
        return views[k]

    def host(k):
        if k not in hosts:
            hosts[k] = jax.tree.map(np.array, view(k))
        return hosts[k]

    def leave(s):  # reads the views: the state the epoch left, whatever was written since
        m = board.occupant[s]
        if m is not None and m not in finals:
            k, i = where[s]
            finals[m] = {part: [a[i].copy() for a in view(k)[part]] for part in PARTS}
        board.retire(s, epoch)

    for s, m in enumerate(board.occupant):
        if m is not None and board.local(s, epoch) >= board.epochs:
            leave(s)
    changes = slots.decide(epoch, board) or {}
    new = [m for m in changes.values() if m is not None and not isinstance(m, (int, np.integer))]
    if new:  # members planned now (a sampler's next trials): built and admitted, or refused and told
        if admit is None:
            raise ValueError(f"`decide` seats members by position here. Received: {changes!r}")
        refusal = admit(new)
        if refusal is not None:
            board.refused.update({m.id: refusal for m in new})
        changes = {s: (board.position(m) if refusal is None else None) if m in new else m for s, m in changes.items()}
    for s, m in sorted(changes.items()):
        if not 0 <= s < len(board.occupant):
            raise ValueError(f"`decide` names slot {s} of {len(board.occupant)}. Received: {changes!r}")
        leave(s)
        if m is None:
            continue
        check_fold(board.members, board.latest[s], m)
        board.take(s, m, epoch)
        k, i = where[s]
        for leaf, value in zip(jax.tree.leaves(host(k)), jax.tree.leaves(initial)):
            leaf[i] = value[m]
    _gather_in(board, epoch, cuts, where, host)
    for k, changed in hosts.items():
        states[k] = jax.device_put(changed)
    return states


def seated_values(values, board: Board, epoch: int):
    """The per-member values (`values(own epoch)`: a member per row) of each slot's member in its own epoch at the
    loop's `epoch`, a row per slot; each epoch in use computed once (a schedule costs)."""
    import jax

    from reglab.engine.program import take_rows

    own = np.array([board.local(s, epoch) for s in range(len(board.occupant))])
    out = None
    for e in np.unique(own):
        part, here = take_rows(values(int(e)), np.asarray(board.latest)), own == e
        out = (
            part
            if out is None
            else jax.tree.map(lambda c, p: np.where(here.reshape(-1, *[1] * (p.ndim - 1)), p, c), out, part)
        )
    return out


def finish(board: Board, state: dict, finals: dict, rows: dict, status: list) -> tuple[list[int], dict]:
    """After the loop: (the positions of the members that took a slot, their final states stacked in that order).
    A member `decide` stopped before its last epoch gets "pruned" on its last row; a member still seated leaves
    with the state of now (`state`: a row per slot)."""
    from reglab.engine.program import take_rows

    members = board.members
    for m, own in board.ended.items():
        if own < board.epochs and rows[members[m].id] and status[m] == "ok":
            rows[members[m].id][-1]["status"] = "pruned"
    finals.update({m: take_rows(state, s) for s, m in enumerate(board.occupant) if m is not None and m not in finals})
    who = sorted(finals)
    return who, {part: [np.stack([finals[m][part][i] for m in who]) for i in range(len(state[part]))] for part in PARTS}


def running(board: Board, epoch: int, cuts: list) -> list[int]:
    """The shards with a member still training at the loop's `epoch` (the others need not run)."""
    busy = set(board.busy(epoch))
    return [k for k, cut in enumerate(cuts) if busy.intersection(cut)]


def _gather_in(board: Board, epoch: int, cuts: list, where: dict, host) -> None:
    """Move the members training in the last shards into empty slots of the first ones (the same rows; the
    member's state, own epoch and batch order go with it), a whole shard at a time, so that a population
    whose members mostly stopped runs fewer shards (`running`)."""
    import jax

    busy = set(board.busy(epoch))
    for k in range(len(cuts) - 1, 0, -1):
        leaving = [s for s in dict.fromkeys(cuts[k]) if s in busy and where[s][0] == k]
        if not leaving:
            continue
        free = [t for j in range(k) for t in dict.fromkeys(cuts[j]) if where[t][0] == j and board.occupant[t] is None]
        moves = {}
        for s in leaving:
            member = board.members[board.occupant[s]]
            t = next((t for t in free if plan.same_rows(board.members[board.latest[t]], member)), None)
            if t is None:
                return  # this shard cannot be emptied, nor can those before it take more
            moves[s] = t
            free.remove(t)
        for s, t in moves.items():
            (k_from, i), (k_to, j) = where[s], where[t]
            for leaf_to, leaf_from in zip(jax.tree.leaves(host(k_to)), jax.tree.leaves(host(k_from))):
                leaf_to[j] = leaf_from[i]
            board.occupant[t] = board.latest[t] = board.occupant[s]
            board.since[t], board.occupant[s] = board.since[s], None
            busy.discard(s)
            busy.add(t)
