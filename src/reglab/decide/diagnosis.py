"""A plain-language verdict per configuration, read off its fold-averaged learning curves.

Seed 000's advice — compare training and validation curves to see over- and underfitting — made
explicit and testable. For each point, from the epoch records of its members (mean over folds):

- `rise`: how far the final validation loss sits above its own minimum, relative to that minimum;
- `train_drop`: how much the training loss fell after the validation minimum;
- `gap`: (final validation − final training prediction loss) / final validation loss;
- `excess`: (final validation loss − the lowest validation loss any point reached) / that lowest loss;
- `penalty_share`: the penalty's share of the final training objective;
- `late_gain`: the relative fall of the validation loss over the last fifth of the epochs;
- `gradient_share`: where the two gradients were recorded (`Sweep(gradients=True)`, `reglab.kit.gradients`), the
  largest over the regularized weights of the penalty's share of the weight's gradient, ‖∇R‖ / (‖∇L‖ + ‖∇R‖), at
  the last epoch (fold mean). At a minimum of the regularized objective the two gradients are equal and opposite
  (share 0.5): a share near 0.5 says the penalty holds the weight where its pull balances the data's — λ decides
  that weight's size —, a share near 0 that the data do. A weight whose share is ≥ `HOLDS` is named in the reason,
  and counts as the penalty's doing (below) like a large `penalty_share`: the penalty's share of the *objective*
  misses a model λ has collapsed (its weights near zero, the penalty itself small), its share of the gradient
  does not (digits, 32-unit MLP, L2 = 0.1: 4 % of the objective, 48 % of each kernel's gradient).

The rules, in order (thresholds are module constants):

0. *not learning* when the final validation loss is no better than the constant predictor's on the
   same folds (`baseline_loss`, `reglab.decide.baseline`: the training fold's class priors or mean target):
   whatever else the curves show, such a model is worse than ignoring the inputs — unless it was
   better at its minimum and overfitted from there (rule 1's rise with the training loss falling):
   that is *overfitting*, and its reason says it ends worse than the constant predictor. The advice follows
   the cause: "decrease the learning rate" when the training loss is ≥ `BLOWN_UP` × the baseline (the
   weights blew up; a large penalty share then only follows from their size); "decrease λ" when the
   penalty dominates the objective or holds a weight (its gradient share ≥ `HOLDS`); "increase λ …" when
   the training loss is below the baseline (it fits the training folds only); "train longer (more epochs)
   or with a higher learning rate" when the validation loss is still falling (a first sweep of a few
   epochs); else "decrease the learning rate".
1. *overfitting* when the validation loss rose ≥ `RISE` above its minimum while the training loss
   kept falling, or when the gap is ≥ `GAP` and the point ends ≥ `EXCESS` worse than the best →
   "increase λ" (or add dropout; or stop at the best epoch).
2. *underfitting* when the point ends ≥ `EXCESS` worse than the best with a small gap (< `SMALL_GAP`:
   training is as bad as validation). The penalty is the cause when its share is ≥ `PENALTY_SHARE`, or
   it holds a weight → "decrease λ"; otherwise "train longer" (validation still falling) or "a larger model".
3. *well-fit* otherwise; "train longer" is added when the validation loss is still falling.

>>> import pandas as pd
>>> rows = [dict(point="p", status="ok", epoch=e, train_loss=1 / e, val_loss=0.5 + abs(e - 4) / 8,
...              train_penalty=0.0, train_total=1 / e) for e in range(1, 11)]
>>> verdicts = diagnose(pd.DataFrame(rows))
>>> verdicts.loc[0, "verdict"], verdicts.loc[0, "recommendation"]
('overfitting', 'increase λ (or add dropout), or keep the weights of epoch 4')
"""

from __future__ import annotations

import math

import pandas as pd

RISE = 0.10
GAP = 0.5
SMALL_GAP = 0.25
EXCESS = 0.10
PENALTY_SHARE = 0.3
HOLDS = 0.4  # the penalty's share of a weight's gradient from which its pull is ≥ 2/3 of the data's (0.5: equal)
LATE_GAIN = 0.01
# Keras's cross-entropy clips probabilities at 1e-7, so a blown-up classifier's loss tops out at
# -log(1e-7) ≈ 16.1: 5–15× a 2- to 10-class baseline (wine, 3 classes, lr 1e6: 8.3×)
BLOWN_UP = 5.0
TRAIN_MORE = "train longer (more epochs) or with a higher learning rate"

COLUMNS = (
    "verdict",
    "recommendation",
    "reason",
    "rise",
    "train_drop",
    "gap",
    "excess",
    "penalty_share",
    "late_gain",
    "gradient_share",
    "best_epoch",
    "baseline_loss",
)


def curves(epochs: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """{point: per-epoch means over its "ok" members of the losses}: the curves the rules read."""
    ok = epochs[epochs["status"] == "ok"]
    wanted = [c for c in ("train_loss", "val_loss", "train_penalty", "train_total", "baseline_loss") if c in ok]
    return {pid: group.groupby("epoch")[wanted].mean().sort_index() for pid, group in ok.groupby("point", sort=False)}


def diagnose(epochs: pd.DataFrame) -> pd.DataFrame:
    """One row per point: `verdict`, `recommendation`, `reason` (with the numbers) and the numbers."""
    per_point = curves(epochs)
    shares = gradient_shares(epochs)
    lowest = min(
        (float(c["val_loss"].min()) for c in per_point.values() if c["val_loss"].notna().any()), default=math.nan
    )
    rows = []
    for pid in dict.fromkeys(epochs["point"]):
        statuses = set(epochs.loc[epochs["point"] == pid, "status"])
        curve = per_point.get(pid)
        if "pruned" in statuses and not statuses & {"failed", "diverged"}:
            stopped = int(epochs.loc[(epochs["point"] == pid) & (epochs["status"] == "pruned"), "epoch"].max())
            rows.append(
                {
                    "point": pid,
                    "verdict": "pruned",
                    "recommendation": "none: others did better at the same epoch",
                    "reason": f"stopped by successive halving after epoch {stopped}",
                }
            )
            continue
        if statuses - {"ok"} or curve is None or not curve["val_loss"].notna().any():
            broken = "failed" if "failed" in statuses else "diverged"
            rows.append(
                {
                    "point": pid,
                    "verdict": broken,
                    "recommendation": "decrease the learning rate or λ"
                    if broken == "diverged"
                    else "see the member's error",
                    "reason": f"a member {broken}",
                }
            )
            continue
        predictor = next(
            (p for p in epochs.loc[epochs["point"] == pid].get("baseline_predictor", []) if isinstance(p, str) and p),
            "the constant predictor",
        )
        rows.append({"point": pid, **_judge(curve, lowest, predictor, shares.get(pid))})
    return pd.DataFrame(rows, columns=["point", *COLUMNS])


def gradient_shares(epochs: pd.DataFrame) -> dict[str, pd.Series]:
    """{point: the penalty's share of each regularized weight's gradient at the point's last epoch, fold mean}
    (indexed by weight path), for the points whose members recorded the two gradients."""
    columns = [c for c in epochs.columns if c.startswith("grad_share:")]
    if not columns:
        return {}
    ok = epochs[epochs["status"] == "ok"]
    last = ok[ok["epoch"] == ok.groupby("point")["epoch"].transform("max")]
    shares = last.groupby("point", sort=False)[columns].mean()
    shares.columns = [c.split(":", 1)[1] for c in columns]
    return {pid: row.dropna() for pid, row in shares.iterrows() if row.notna().any()}


def _judge(curve: pd.DataFrame, lowest: float, predictor: str = "", shares: pd.Series | None = None) -> dict:
    val, train = curve["val_loss"], curve["train_loss"]
    final_val, final_train = float(val.iloc[-1]), float(train.iloc[-1])
    best_epoch = int(val.idxmin())
    val_min = float(val.min())
    numbers = {
        "rise": (final_val - val_min) / val_min if val_min > 0 else 0.0,
        "train_drop": float(train.loc[best_epoch]) - final_train,
        "gap": (final_val - final_train) / final_val if final_val > 0 else 0.0,
        "excess": (final_val - lowest) / lowest if lowest > 0 else 0.0,
        "penalty_share": float(curve["train_penalty"].iloc[-1] / curve["train_total"].iloc[-1])
        if "train_penalty" in curve and curve["train_total"].iloc[-1] > 0
        else 0.0,
        "late_gain": _late_gain(val),
        "gradient_share": float(shares.max()) if shares is not None and len(shares) else math.nan,
        "best_epoch": best_epoch,
        # the mean over the folds of the final curve's members, as the validation loss it is compared with
        "baseline_loss": float(curve["baseline_loss"].iloc[-1]) if "baseline_loss" in curve else math.nan,
    }
    n = numbers
    minimum = f"its minimum {val_min:.3g} at epoch {best_epoch}, the best point's {lowest:.3g}"
    rest = f"training loss {final_train:.3g}, penalty {n['penalty_share']:.0%} of the objective"
    held = shares[shares >= HOLDS] if shares is not None else pd.Series(dtype=float)
    if len(held):  # seed 004's tug of war: the penalty pulls as hard as the data
        names = ", ".join(f"{path} ({share:.0%} of its gradient)" for path, share in held.sort_values().items())
        rest += f"; the penalty holds back {names}"
    penalty_holds = n["penalty_share"] >= PENALTY_SHARE or len(held) > 0
    facts = f"validation loss {final_val:.3g} ({minimum}), {rest}"
    still_falling = n["late_gain"] >= LATE_GAIN
    baseline = n["baseline_loss"]
    rose = n["rise"] >= RISE and n["train_drop"] > 0
    worse = final_val >= baseline  # False when the baseline is NaN (unknown loss, older run directory)
    if worse and not (rose and val_min < baseline):
        why = (
            f"validation loss {final_val:.3g} is {'worse than' if final_val > baseline else 'no better than'} "
            f"the constant predictor's {baseline:.3g} ({predictor})"
        )
        if final_train >= BLOWN_UP * baseline:
            advice = "decrease the learning rate"
        elif penalty_holds:
            advice = "decrease λ"
        elif final_train < baseline:
            advice = "increase λ (or add dropout)" + (
                f", or keep the weights of epoch {best_epoch}" if val_min < baseline else ""
            )
        elif still_falling or len(val) < 2:  # not there yet (a quick first sweep): more training, not less
            advice = TRAIN_MORE
        else:
            advice = "decrease the learning rate"
        return {"verdict": "not learning", "recommendation": advice, "reason": f"{why}; {minimum}, {rest}", **numbers}
    if rose or (n["gap"] >= GAP and n["excess"] >= EXCESS):
        why = (
            f"validation loss rose {n['rise']:.0%} above its minimum while training loss kept falling"
            if rose
            else f"validation loss is {n['gap']:.0%} above training loss and {n['excess']:.0%} above the best point's"
        )
        if worse:
            why += f", to worse than the constant predictor's {baseline:.3g} ({predictor})"
        advice = "increase λ (or add dropout)" + (
            f", or keep the weights of epoch {best_epoch}" if n["rise"] >= RISE else ""
        )
        return {"verdict": "overfitting", "recommendation": advice, "reason": f"{why}: {facts}", **numbers}
    if n["excess"] >= EXCESS and n["gap"] < SMALL_GAP:
        why = f"training loss is as high as validation loss, {n['excess']:.0%} above the best point's"
        if penalty_holds:
            advice = "decrease λ"
        elif still_falling:
            advice = "train longer"
        else:
            advice = "a larger model (or less dropout)"
        return {"verdict": "underfitting", "recommendation": advice, "reason": f"{why}: {facts}", **numbers}
    advice = "train longer (validation loss still falling)" if still_falling else "keep"
    return {"verdict": "well-fit", "recommendation": advice, "reason": facts, **numbers}


def _late_gain(val: pd.Series) -> float:
    """Relative fall of the validation loss over the last fifth of the epochs (≥ 2 epochs; a curve of 2 or 3
    epochs: over all of it)."""
    k = min(max(2, math.ceil(len(val) / 5)), len(val) - 1)
    if k < 1:
        return 0.0
    before, after = float(val.iloc[-k - 1]), float(val.iloc[-1])
    return (before - after) / before if before > 0 else 0.0
