"""`grokscope analyze` on a grid_goals run: which strategy the policy (or Q-function) uses.

Per checkpoint: the share of states where the greedy action is a shortest move, per split; greedy
rollout success on the training and the held-out goals; and the geometry of the goal-id
embeddings. An id names a coordinate c (see tasks/grid.py: gx / gy for layout 'rows', (gx + gy) /
(gx - gy) mod N for 'diagonal'); over c in 0..N-1 the embeddings E_c (N, d_model), centred, give

- `id_fourier`: the share of their power in the strongest frequency pair k, N - k of the discrete
  Fourier transform over c (a circle, as in modular-arithmetic networks, puts most power on one
  pair; random embeddings spread it over the (N - 1) / 2 pairs);
- `id_order`: |Spearman correlation| between c and the embeddings' first principal component
  (an ordinal line puts the ids in order along it).

Also the policy map of one held-out goal (the greedy action per cell, whether it is a shortest
move) at memorization and at the end. The card names the strategy: generalizing (held-out goals
reached) or memorizing (training goals only), and what the id geometry shows.
"""

from __future__ import annotations

import torch

from grokscope.tasks.grid import GridTask, move

__all__ = ["analyze_grid", "grid_card", "id_geometry", "policy_map"]


def _spearman(a: torch.Tensor, b: torch.Tensor) -> float:
    ra, rb = a.argsort().argsort().double(), b.argsort().argsort().double()
    ra, rb = ra - ra.mean(), rb - rb.mean()
    den = float(ra.norm() * rb.norm())
    return float((ra * rb).sum()) / den if den else 0.0


@torch.no_grad()
def id_geometry(model, task: GridTask) -> dict:
    """{'id_fourier': [row ids, column ids], 'id_order': [row ids, column ids]} (see module docstring)."""
    N = task.size
    W = model.embed.W_E.detach().double()  # (vocab, d)
    out = {"id_fourier": [], "id_order": []}
    for base, perm in ((2 * N, task.row_id), (3 * N, task.col_id)):
        E = W[base + perm]  # (N, d): row c is the id that names coordinate c
        E = E - E.mean(0)
        power = torch.fft.rfft(E, dim=0).abs().pow(2).sum(1)[1:]  # frequencies 1..N//2
        total = float(power.sum())
        out["id_fourier"].append(float(power.max()) / total if total else 0.0)
        pc = torch.linalg.svd(E, full_matrices=False).U[:, 0]
        out["id_order"].append(abs(_spearman(pc, torch.arange(N).double())))
    return out


@torch.no_grad()
def policy_map(model, task: GridTask, goal: tuple[int, int]) -> dict:
    """The greedy action at every cell for `goal` and whether it is a shortest move:
    {'goal', 'actions' [[x][y]], 'optimal' [[x][y]]} (the goal's own cell: action -1)."""
    N = task.size
    cells = torch.cartesian_prod(torch.arange(N), torch.arange(N))
    g = torch.tensor(goal).repeat(len(cells), 1)
    act = model(task.observe(cells, g)).argmax(-1)
    d = (cells - g).abs().sum(1)
    optimal = (move(cells, act, N) - g).abs().sum(1) < d
    at_goal = d == 0
    act = torch.where(at_goal, -1, act)
    return {"goal": list(goal), "actions": act.reshape(N, N).tolist(),
            "optimal": (optimal | at_goal).reshape(N, N).tolist()}


def grid_card(records: list[dict], key_steps: dict, gen: str, size: int) -> dict:
    even = 1 / (size // 2)
    pct = lambda v: "n/a" if v is None else f"{100 * v:.1f}%"
    final = records[-1]
    mem = next((r for r in records if key_steps.get("memorized") is not None
                and r["step"] == key_steps["memorized"]), None)
    reached = final.get("test_success", 0.0)
    strategy = ("generalizing: it reaches held-out goals it never trained on"
                if reached >= 0.9 else
                "memorizing: it reaches its training goals, not the held-out ones"
                if final.get("train_success", 0.0) >= 0.9 else "not yet solving its training goals")
    headline = (f"Strategy {strategy} (greedy success {pct(final.get('train_success'))} on training goals, "
                f"{pct(reached)} on held-out goals at step {final['step']:,}).")
    evidence = [f"Greedy action is a shortest move in {pct(final.get('train_acc'))} of training-goal states "
                f"and {pct(final.get(f'{gen}_acc'))} of held-out-goal states at the end"
                + (f"; {pct(mem.get('train_acc'))} and {pct(mem.get(f'{gen}_acc'))} at memorization "
                   f"(step {mem['step']:,})" if mem is not None and mem is not final else "") + "."]
    fo, order = final["id_fourier"], final["id_order"]
    evidence.append(f"Goal-id embeddings: the strongest Fourier pair over the named coordinate holds "
                    f"{pct(fo[0])} / {pct(fo[1])} of the row / column ids' power (spread evenly: "
                    f"{pct(even)}); their first principal component orders the coordinates with |Spearman| "
                    f"{order[0]:.2f} / {order[1]:.2f}.")
    if mem is not None and mem is not final:
        fo0, order0 = mem["id_fourier"], mem["id_order"]
        evidence.append(f"At memorization: Fourier share {pct(fo0[0])} / {pct(fo0[1])}, order "
                        f"{order0[0]:.2f} / {order0[1]:.2f}.")
    return {"claim": "strategy", "circuit": "generalizing" if reached >= 0.9 else "memorizing",
            "headline": headline, "evidence": evidence}


def analyze_grid(rd, cfg, task: GridTask, ckpts: list, t0: float, *, figures: bool, report: bool) -> dict:
    """Accuracy, rollout success and id geometry at every checkpoint, the policy maps, the card."""
    from grokscope.analysis.driver import finish, key_checkpoints, readable_states
    from grokscope.models import build_model
    from grokscope.training.losses import per_example_correct

    torch.manual_seed(0)
    model = build_model(cfg.model, task).eval()
    summary = rd.read_summary() if rd.summary.is_file() else {}
    gen = summary.get("generalization_split", task.generalization_split)
    records, states = [], {}
    with torch.no_grad():
        for step, state in readable_states(ckpts):
            model.load_state_dict(state)
            states[step] = state
            rec: dict = {"step": step}
            for name, s in task.splits.items():
                right = per_example_correct(model(s.inputs), s.targets, accept=s.accept)
                rec[f"{name}_acc"] = float(right.double().mean())
            rec.update(task.measures(model, torch.device("cpu")))
            rec.update(id_geometry(model, task))
            records.append(rec)
    _, phase, key_steps = key_checkpoints(rd, records, summary, gen)
    goal = tuple(task.test_goals[0].tolist())
    maps = {}
    for label in ("memorized", "final"):
        step = key_steps.get(label)
        if step is not None:
            model.load_state_dict(states[step])
            maps[label] = {"step": step, **policy_map(model, task, goal)}
    card = grid_card(records, key_steps, gen, task.size)
    out = {"format_version": 1, "kind": "grid", "steps": [r["step"] for r in records], "key_freqs": [],
           "key_source": "none", "fourier_task": False, "final": records[-1],
           "details": {"key_steps": key_steps, "policy_maps": maps, "layout": task.layout},
           "card": card, "figures": [], "seconds": None}
    if figures:
        from grokscope.report import grid_plots

        out["figures"] = grid_plots.draw_all(rd.figures, records=records, phase=phase, gen=gen, maps=maps,
                                             size=task.size)
    return finish(rd, out, records, t0, report)

