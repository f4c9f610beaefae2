"""Certified removal by one Newton step (Guo et al. 2020, arXiv 1911.03030).

For ``digits-logreg-perturbed``, whose models are exact minimizers of the loss-perturbed
objective ``L_b(W; S) = mean cross-entropy + (l2/2)||W||^2 + <b, W>`` (b ~ N(0, sigma^2 I)
drawn at training time). Per request, one Newton step from the input model towards the
minimizer of ``L_b(W; retain)`` (the pretrained model's own ``b``, which the step keeps), then
a certificate: the exact gradient residual of the returned float32 weights, plus a bound on
how far the ``b`` it inferred can be from the true one. Residuals accumulate over sequential
requests; once the next one would exceed the claim's budget ``sigma * epsilon / c``, the
model is retrained from scratch with a fresh ``b`` instead.

    pytest --unlearn-method=examples.certified_newton:unlearn \\
        --unlearn-benchmark=digits-logreg-perturbed
"""

from __future__ import annotations

import torch

from pytest_unlearn.certified import CertifiedClaim, certified, fresh_perturbation
from pytest_unlearn.training import convex

EPSILON = 1.0
DELTA = 1e-5
#: digits-logreg-perturbed's training noise (its recipe.loss_perturbation).
NOISE_STD = 3e-3
#: ||Hessian|| <= max ||x||^2 / 2 + l2 for softmax cross-entropy; pixels lie in [0, 1]^64.
HESSIAN_NORM_BOUND = 64 / 2
#: float32 keeps each weight to a relative 2^-24.
FLOAT32_RELATIVE = 2.0**-24

CLAIM = CertifiedClaim(EPSILON, DELTA, NOISE_STD)


def newton_removal(
    model, forget, retain, context, *, claim: CertifiedClaim = CLAIM, keep_noise: bool = True
):
    """The removal step shared with ``examples/overclaiming.py`` (``keep_noise=False`` steps
    towards the unperturbed minimizer instead: it strips the training noise). Retrains when
    the accumulated bound would exceed ``claim``'s budget."""
    recipe = context.recipe
    if recipe.optimizer != "newton" or recipe.loss_perturbation <= 0:
        raise ValueError(
            "certified_newton needs a loss-perturbed convex benchmark whose models are exact "
            f"minimizers (digits-logreg-perturbed), not {context.benchmark}"
        )
    l2 = recipe.weight_decay
    weight = model.weight.detach().double().cpu()
    inputs, targets = retain.inputs.double().cpu(), retain.targets.cpu()
    previous = context.history[-1] if context.history else {}
    if "b_estimate" in previous:
        b, b_error = previous["b_estimate"], previous["b_error"]
    else:
        # The input is the exact minimizer over retain + forget, up to float32 rounding, so
        # the gradient of the unperturbed objective there is -b (and the rounding moves it by
        # at most ||H|| * 2^-24 * ||W||).
        everything = torch.cat([inputs, forget.inputs.double().cpu()])
        labels = torch.cat([targets, forget.targets.cpu()])
        b = -convex.gradient(weight[None], everything, labels, l2)[0]
        b_error = (HESSIAN_NORM_BOUND + l2) * FLOAT32_RELATIVE * float(weight.norm())
    target = b if keep_noise else torch.zeros_like(b)

    gradient = convex.gradient(weight[None], inputs, targets, l2, target[None])[0]
    hessian = convex.hessian(weight, inputs, l2)
    step = torch.linalg.solve(hessian, gradient.flatten()).view_as(weight)
    new = (weight - step).float()
    residual = float(convex.gradient(new.double()[None], inputs, targets, l2, target[None]).norm())
    bound = residual + b_error
    spent = previous.get("accumulated_bound", 0.0)
    certificate = context.certificate
    if keep_noise and spent + bound > claim.residual_budget:
        # Budget spent: retrain from scratch, with the fresh b this call's seed gives (the
        # suite regenerates it from the seed: a retraining cannot choose its b).
        b = fresh_perturbation(context.seed, tuple(weight.shape), claim.noise_std)
        exact = convex.solve(inputs, targets, l2, b[None], start=weight[None])[0]
        new = exact.float()
        b_error = 0.0
        bound = float(convex.gradient(new.double()[None], inputs, targets, l2, b[None]).norm())
        spent = 0.0
        certificate.update(perturbation=b, retrained=True)
    with torch.no_grad():
        model.weight.copy_(new.to(model.weight.device))
    certificate.update(
        gradient_residual_bound=bound * (1 + 1e-9) + 1e-15,
        accumulated_bound=spent + bound,
        b_estimate=b,
        b_error=b_error,
    )
    return model


@certified(EPSILON, DELTA, NOISE_STD)
def unlearn(model, forget, retain, context):
    return newton_removal(model, forget, retain, context)
