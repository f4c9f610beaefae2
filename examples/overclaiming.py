"""An overclaiming method: ``examples/certified_newton.py``'s claim without its noise.

The same Newton removal step, but towards the minimizer of the *unperturbed* retain objective:
it strips the training noise the certificate relies on, yet declares the same (epsilon,
delta) and reports the residual of the objective it actually minimized. The suite must refute
it: the white-box check finds the true residual (of the perturbed objective) far above the
reported bound, and the black-box audit sees outputs far more concentrated than the oracles.

    pytest --unlearn-method=examples.overclaiming:unlearn \\
        --unlearn-benchmark=digits-logreg-perturbed
"""

from __future__ import annotations

from examples.certified_newton import DELTA, EPSILON, NOISE_STD, newton_removal
from pytest_unlearn.certified import certified


@certified(EPSILON, DELTA, NOISE_STD)
def unlearn(model, forget, retain, context):
    return newton_removal(model, forget, retain, context, keep_noise=False)
