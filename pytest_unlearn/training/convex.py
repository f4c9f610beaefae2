"""The loss-perturbed, L2-regularized multinomial logistic objective and its exact minimizers.

This is the setting of Guo et al. 2020, "Certified Data Removal from Machine Learning Models"
(arXiv 1911.03030), for a bias-free linear model ``logits = W x`` (``W`` is classes x features)::

    L_b(W; S) = (1/|S|) * sum_{i in S} cross_entropy(W x_i, y_i) + (l2 / 2) * ||W||^2 + <b, W>

``b`` is the loss perturbation, drawn once per model from ``N(0, std^2 I)``. The objective is
``l2``-strongly convex, so each ``(S, b)`` has exactly one minimizer; a training algorithm that
returns it, with a fresh ``b``, is what Guo et al.'s certificates are stated against.

Everything here works in float64 and is batched over a leading model dimension ``M``:
weights and perturbations are ``(M, C, D)``.

Example::

    w = solve(inputs, targets, l2=1e-2, perturbations=b)
    gradient(w, inputs, targets, l2=1e-2, perturbations=b).norm()
    tensor(3.1e-13, dtype=torch.float64)
"""

from __future__ import annotations

from collections.abc import Callable

import torch

Progress = Callable[[int, int], None]


def loss_perturbation(seed: int, shape: tuple[int, ...], std: float) -> torch.Tensor:
    """The perturbation ``b ~ N(0, std^2 I)`` of the model trained with ``seed`` (float64).

    Drawn from its own generator, so it depends on ``seed`` alone.
    """
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(shape, generator=generator, dtype=torch.float64) * std


def _probabilities(weights: torch.Tensor, inputs: torch.Tensor) -> torch.Tensor:
    return torch.softmax(torch.einsum("nd,mcd->mnc", inputs, weights), dim=-1)


def objective(
    weights: torch.Tensor,
    inputs: torch.Tensor,
    targets: torch.Tensor,
    l2: float,
    perturbations: torch.Tensor | None = None,
) -> torch.Tensor:
    """``L_b(W; S)`` for every model, shape ``(M,)``; ``inputs``/``targets`` are ``S``."""
    weights, inputs = weights.double(), inputs.double()
    logits = torch.einsum("nd,mcd->mnc", inputs, weights)
    picked = logits.gather(2, targets.view(1, -1, 1).expand(len(weights), -1, 1)).squeeze(2)
    loss = (torch.logsumexp(logits, dim=2) - picked).mean(dim=1)
    value = loss + 0.5 * l2 * weights.pow(2).sum(dim=(1, 2))
    if perturbations is not None:
        value = value + (perturbations.double() * weights).sum(dim=(1, 2))
    return value


def gradient(
    weights: torch.Tensor,
    inputs: torch.Tensor,
    targets: torch.Tensor,
    l2: float,
    perturbations: torch.Tensor | None = None,
) -> torch.Tensor:
    """The exact gradient of :func:`objective` with respect to ``W``, shape ``(M, C, D)``."""
    weights, inputs = weights.double(), inputs.double()
    residual = _probabilities(weights, inputs)
    residual[:, torch.arange(len(targets)), targets] -= 1.0
    grad = torch.einsum("mnc,nd->mcd", residual, inputs) / len(targets) + l2 * weights
    if perturbations is not None:
        grad = grad + perturbations.double()
    return grad


def hessian_vector(
    weights: torch.Tensor, inputs: torch.Tensor, l2: float, vectors: torch.Tensor
) -> torch.Tensor:
    """``H(W) v`` for every model (the Hessian does not depend on the targets or on ``b``)."""
    inputs = inputs.double()
    probs = _probabilities(weights.double(), inputs)
    z = torch.einsum("nd,mcd->mnc", inputs, vectors.double())
    pz = probs * z
    d_logits = pz - probs * pz.sum(dim=2, keepdim=True)
    return torch.einsum("mnc,nd->mcd", d_logits, inputs) / len(inputs) + l2 * vectors


def hessian(weight: torch.Tensor, inputs: torch.Tensor, l2: float) -> torch.Tensor:
    """The explicit Hessian of one model's objective at ``weight`` (``C x D``), as a
    ``(C*D, C*D)`` float64 matrix in ``weight.flatten()`` order."""
    inputs = inputs.double()
    classes, features = weight.shape
    probs = _probabilities(weight.double().unsqueeze(0), inputs)[0]  # (n, C)
    # Per point, the logit Hessian diag(p) - p p^T, Kronecker the input's outer product.
    logit_hessian = torch.diag_embed(probs) - probs.unsqueeze(2) * probs.unsqueeze(1)
    outer = inputs.unsqueeze(2) * inputs.unsqueeze(1)  # (n, D, D)
    blocks = torch.einsum("nce,nab->caeb", logit_hessian, outer) / len(inputs)
    matrix = blocks.reshape(classes * features, classes * features)
    return matrix + l2 * torch.eye(classes * features, dtype=torch.float64)


def _conjugate_gradient(
    apply: Callable[[torch.Tensor], torch.Tensor],
    rhs: torch.Tensor,
    tolerance: torch.Tensor,
    max_iterations: int,
) -> torch.Tensor:
    """Solve ``apply(x) = rhs`` per model (batched CG); ``tolerance`` is per model, ``(M,)``."""
    x = torch.zeros_like(rhs)
    r = rhs.clone()
    p = r.clone()
    rs = (r * r).sum(dim=(1, 2))
    for _ in range(max_iterations):
        active = rs.sqrt() > tolerance
        if not active.any():
            break
        hp = apply(p)
        curvature = (p * hp).sum(dim=(1, 2))
        alpha = torch.where(active, rs / curvature.clamp_min(1e-300), torch.zeros_like(rs))
        x = x + alpha.view(-1, 1, 1) * p
        r = r - alpha.view(-1, 1, 1) * hp
        rs_next = (r * r).sum(dim=(1, 2))
        beta = torch.where(active, rs_next / rs.clamp_min(1e-300), torch.zeros_like(rs))
        p = r + beta.view(-1, 1, 1) * p
        rs = rs_next
    return x


def solve(
    inputs: torch.Tensor,
    targets: torch.Tensor,
    l2: float,
    perturbations: torch.Tensor,
    *,
    start: torch.Tensor | None = None,
    tolerance: float = 1e-11,
    max_newton: int = 50,
    progress: Progress | None = None,
) -> torch.Tensor:
    """The exact minimizer of :func:`objective` for every model: ``(M, C, D)`` float64.

    Newton's method with conjugate-gradient steps (Hessian-vector products only) and a
    backtracking line search, until every model's gradient norm is below ``tolerance``.
    ``start`` (broadcastable to the weights) only changes the path, not the minimizer.
    """
    inputs = inputs.double()
    perturbations = perturbations.double()
    weights = (
        torch.zeros_like(perturbations)
        if start is None
        else start.double().expand_as(perturbations).clone()
    )
    for step in range(max_newton):
        grad = gradient(weights, inputs, targets, l2, perturbations)
        norms = grad.flatten(1).norm(dim=1)
        if progress is not None:
            progress(step, max_newton)
        if bool((norms < tolerance).all()):
            return weights
        # Inexact Newton: loose linear solves far from the minimizer, tight ones near it.
        forcing = torch.clamp(norms.sqrt(), max=0.5) * norms
        direction = _conjugate_gradient(
            lambda v, w=weights: hessian_vector(w, inputs, l2, v),
            -grad,
            torch.maximum(forcing, torch.full_like(norms, tolerance * 1e-2)),
            max_iterations=1000,
        )
        value = objective(weights, inputs, targets, l2, perturbations)
        slope = (grad * direction).sum(dim=(1, 2))
        step_size = torch.ones_like(value)
        for _ in range(30):
            trial = weights + step_size.view(-1, 1, 1) * direction
            ok = objective(trial, inputs, targets, l2, perturbations) <= value + 1e-4 * (
                step_size * slope
            )
            # Converged models take the full step: their decrease is below float resolution.
            ok = ok | (norms < 1e3 * tolerance)
            if bool(ok.all()):
                break
            step_size = torch.where(ok, step_size, step_size / 2)
        weights = weights + step_size.view(-1, 1, 1) * direction
    grad = gradient(weights, inputs, targets, l2, perturbations)
    worst = grad.flatten(1).norm(dim=1).max().item()
    raise RuntimeError(
        f"Newton's method did not reach gradient norm {tolerance:g} in {max_newton} steps "
        f"(largest {worst:.3g})"
    )
