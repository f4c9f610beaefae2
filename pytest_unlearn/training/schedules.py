"""Learning-rate schedules that recipes name (``lr_schedule``), one rate per minibatch step.

``examples/retrain.py`` computes the same rates itself (it imports nothing of ours), so the
formula is spelled out here once, in plain arithmetic, for both to follow.
"""

from __future__ import annotations


def one_cycle_linear(
    step: int,
    total_steps: int,
    *,
    peak_lr: float,
    peak_step: int,
    initial_divisor: float,
    final_divisor: float,
) -> float:
    """Linear warm-up from ``peak_lr / initial_divisor`` to ``peak_lr`` at ``peak_step``, then
    linear decay to ``peak_lr / final_divisor`` at the last step (EasyDUB's schedule).

    >>> [round(one_cycle_linear(s, 5, peak_lr=1.0, peak_step=2, initial_divisor=10,
    ...                         final_divisor=10), 3) for s in range(5)]
    [0.1, 0.55, 1.0, 0.55, 0.1]
    """
    start, end = peak_lr / initial_divisor, peak_lr / final_divisor
    last = max(1, total_steps - 1)
    peak_step = min(max(0, peak_step), last)
    if step <= peak_step:
        return start + (peak_lr - start) * (step / peak_step if peak_step else 1.0)
    return peak_lr + (end - peak_lr) * (step - peak_step) / max(1, last - peak_step)
