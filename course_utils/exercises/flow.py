"""Checks for notebook 05b (flow matching): the straight path, its velocity, and one Euler step back along it.

Each check compares the student's function with the reference on small random cases and, when the answer is wrong,
recognises the usual slips (time running the wrong way, the velocity's sign flipped, diffusion's square roots, one
time for the whole batch, a step taken forwards) to say which one it is.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from course_utils import flow
from course_utils.exercises import CheckResult, ExerciseError, check, expect_close, expect_shape, expect_true


def interpolate_reference(x0: torch.Tensor, eps: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """``x_t = (1 - t) x_0 + t eps``, one ``t`` per picture (:func:`course_utils.flow.interpolate`)."""
    t = t.view(-1, 1, 1, 1)
    return (1 - t) * x0 + t * eps


def velocity_target_reference(x0: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
    """``d x_t / dt = eps - x_0`` (:func:`course_utils.flow.velocity_target`)."""
    return eps - x0


def euler_step_reference(velocity: Callable, x: torch.Tensor, t: float, t_next: float) -> torch.Tensor:
    """``x_next = x + (t_next - t) v(x, t)``: one Euler step of ``dx/dt = v`` (from ``t`` towards ``t_next``)."""
    return x + (t_next - t) * velocity(x, t)


def _matches(candidate: torch.Tensor, got: torch.Tensor) -> bool:
    return candidate.shape == got.shape and torch.allclose(candidate.double(), got.double(), atol=1e-4, rtol=1e-3)


def _first_match(got: torch.Tensor, mistakes: list[tuple[torch.Tensor, str]]) -> None:
    for wrong, hint in mistakes:
        if _matches(wrong, got):
            raise ExerciseError(hint)


def check_interpolate(student_fn: Callable) -> CheckResult:
    """Check ``student_fn(x0, eps, t) -> x_t``: the point at time ``t`` on the straight line from picture to noise."""

    def test() -> None:
        g = torch.Generator().manual_seed(0)
        x0 = torch.rand(4, 1, 8, 8, generator=g) * 2 - 1
        eps = torch.randn(4, 1, 8, 8, generator=g)
        t = torch.tensor([0.1, 0.35, 0.6, 0.9])  # a different time for each picture
        try:
            got = student_fn(x0.clone(), eps.clone(), t.clone())
        except NotImplementedError:
            raise
        except RuntimeError as error:  # usually a broadcasting error
            raise ExerciseError(
                f"interpolate raised {error}. t has shape (N,): reshape it to (N, 1, 1, 1) with .view(-1, 1, 1, 1) "
                "so that it multiplies each picture of shape N x 1 x H x W."
            ) from None
        expect_true(got is not None, "interpolate returned None: did you forget `return x_t`?")
        expect_shape(got, (4, 1, 8, 8), "x_t for 4 pictures of 1x8x8")
        got = torch.as_tensor(got).detach()
        s = t.view(-1, 1, 1, 1)
        _first_match(
            got,
            [
                (
                    s * x0 + (1 - s) * eps,
                    "time runs the wrong way: at t = 0 the line starts at the picture x0 and at t = 1 it reaches the "
                    "noise, so x0 gets (1 - t) and the noise gets t.",
                ),
                (
                    (1 - s).sqrt() * x0 + s.sqrt() * eps,
                    "those square roots are diffusion's (variance preserving); flow matching walks a straight line: "
                    "x_t = (1 - t) * x0 + t * eps, no square roots.",
                ),
                (
                    (1 - t[0]) * x0 + t[0] * eps,
                    "every picture got the time of the first one: use the whole t, reshaped to (N, 1, 1, 1).",
                ),
            ],
        )
        expect_close(
            got, interpolate_reference(x0, eps, t), "x_t", hint="x_t = (1 - t) * x0 + t * eps, t shaped (N, 1, 1, 1)."
        )

    return check("interpolate", test)


def check_velocity_target(student_fn: Callable) -> CheckResult:
    """Check ``student_fn(x0, eps) -> v``: the velocity along the straight line, what the network learns."""

    def test() -> None:
        g = torch.Generator().manual_seed(1)
        x0 = torch.rand(3, 1, 8, 8, generator=g) * 2 - 1
        eps = torch.randn(3, 1, 8, 8, generator=g)
        got = student_fn(x0.clone(), eps.clone())
        expect_true(got is not None, "velocity_target returned None: did you forget `return v`?")
        expect_shape(got, (3, 1, 8, 8), "the velocity of 3 pictures of 1x8x8")
        got = torch.as_tensor(got).detach()
        _first_match(
            got,
            [
                (
                    x0 - eps,
                    "the sign is flipped: x_t moves from the picture (t = 0) to the noise (t = 1), so its velocity "
                    "d x_t / dt is eps - x0. (The sampler walks against it, from noise to picture.)",
                ),
                (eps, "that is diffusion's target, the noise itself; the velocity is eps - x0."),
                (-x0, "that is the velocity with the noise left out: eps - x0."),
            ],
        )
        expect_close(got, velocity_target_reference(x0, eps), "the velocity", hint="d/dt [(1 - t) x0 + t eps].")
        # The derivative of the student's own path, if the notebook's interpolate is right, is this velocity.
        h = 1e-3
        slope = (flow.interpolate(x0, eps, 0.5 + h) - flow.interpolate(x0, eps, 0.5 - h)) / (2 * h)
        expect_close(got, slope, "the slope of the straight path", atol=1e-3, rtol=1e-3)

    return check("velocity_target", test)


def check_euler_step(student_fn: Callable) -> CheckResult:
    """Check ``student_fn(velocity, x, t, t_next) -> x_next``: one Euler step of ``dx/dt = velocity(x, t)``."""

    def test() -> None:
        g = torch.Generator().manual_seed(2)
        x = torch.randn(3, 1, 8, 8, generator=g)
        shift = torch.randn(3, 1, 8, 8, generator=g)

        def velocity(points: torch.Tensor, t: float) -> torch.Tensor:  # depends on x and t, so mistakes show
            return shift * (1 + float(t)) - 0.5 * points

        t, t_next = 0.8, 0.6
        got = student_fn(velocity, x.clone(), t, t_next)
        expect_true(got is not None, "euler_step returned None: did you forget `return x_next`?")
        expect_shape(got, (3, 1, 8, 8), "x_next for 3 pictures of 1x8x8")
        got = torch.as_tensor(got).detach()
        v = velocity(x, t)
        _first_match(
            got,
            [
                (
                    x + (t - t_next) * v,
                    "the step goes the wrong way: t_next - t is negative when sampling (from noise at t = 1 down to "
                    "the picture at t = 0), so x_next = x + (t_next - t) * velocity(x, t).",
                ),
                (x + (t_next - t) * velocity(x, t_next), "evaluate the velocity where you are, at (x, t), not t_next."),
                (x - v, "the step must be scaled by the time step: x + (t_next - t) * velocity(x, t)."),
                ((t_next - t) * v, "x_next starts from x: x + (t_next - t) * velocity(x, t)."),
            ],
        )
        expect_close(
            got, euler_step_reference(velocity, x, t, t_next), "x_next", hint="x + (t_next - t) * velocity(x, t)."
        )

    return check("euler_step", test)
