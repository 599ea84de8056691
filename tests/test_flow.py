"""Flow matching (course_utils.flow) against closed forms: the straight path, the exact velocity field of Gaussian
data, the ODE samplers on a linear equation with a known solution, and the link to diffusion's formulas."""

from __future__ import annotations

import math

import pytest
import torch

from course_utils import diffusion, flow
from course_utils.models import UNet


def _gaussian_pairs(n: int, mean: float, std: float, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    x0 = mean + std * torch.randn(n, 1, generator=g, dtype=torch.float64)
    return x0, torch.randn(n, 1, generator=g, dtype=torch.float64)


def test_the_path_runs_straight_from_the_data_to_the_noise_at_the_target_velocity():
    x0, eps = torch.randn(4, 1, 3, 3), torch.randn(4, 1, 3, 3)
    assert torch.equal(flow.interpolate(x0, eps, 0.0), x0)
    assert torch.equal(flow.interpolate(x0, eps, 1.0), eps)
    t = torch.tensor([0.1, 0.4, 0.7, 0.9])
    h = 1e-3  # the target is the path's derivative in t, the same at every t (a straight line)
    slope = (flow.interpolate(x0, eps, t + h) - flow.interpolate(x0, eps, t - h)) / (2 * h)
    torch.testing.assert_close(slope, flow.velocity_target(x0, eps), atol=1e-3, rtol=1e-3)
    with pytest.raises(ValueError, match="one time per item"):
        flow.interpolate(x0, eps, torch.rand(3))


@pytest.mark.parametrize("t", [0.2, 0.5, 0.8])
def test_the_loss_is_minimised_by_the_closed_form_velocity_of_gaussian_data(t):
    # x0 ~ N(m, s^2), eps ~ N(0, 1): x_t is Gaussian and E[eps - x0 | x_t] is linear in x_t. A least-squares fit of
    # the regression target on x_t (what the squared loss learns at this t) must find the closed form's line.
    mean, std = 1.5, 0.5
    x0, eps = _gaussian_pairs(400_000, mean, std)
    x_t, target = flow.interpolate(x0, eps, t), flow.velocity_target(x0, eps)
    design = torch.cat([x_t, torch.ones_like(x_t)], dim=1)
    slope, intercept = torch.linalg.lstsq(design, target).solution.flatten().tolist()
    points = torch.tensor([[-1.0], [0.0], [2.0]], dtype=torch.float64)
    exact = flow.gaussian_velocity(points, t, torch.tensor([mean], dtype=torch.float64), std)
    torch.testing.assert_close(slope * points + intercept, exact, atol=0.01, rtol=0)


def test_flow_loss_prefers_the_exact_field_to_the_one_with_time_reversed_or_sign_flipped():
    mean, std = torch.tensor([1.0, -0.5]), 0.4
    x0 = mean + std * torch.randn(20_000, 2, generator=torch.Generator().manual_seed(1))

    def field(sign: float = 1.0, reverse: bool = False):
        return lambda x, t: sign * flow.gaussian_velocity(x, (1 - t) if reverse else t, mean, std)

    losses = {
        name: flow.flow_loss(f, x0, torch.Generator().manual_seed(2)).item()
        for name, f in {"exact": field(), "reversed": field(reverse=True), "flipped": field(-1.0)}.items()
    }
    assert losses["exact"] < 0.8 * losses["reversed"] and losses["exact"] < 0.5 * losses["flipped"], losses
    # The exact field's loss is the target's variance left given x_t: E_t[Var(eps - x0 | x_t)] = E_t[(1 + s^2) -
    # (t - (1 - t) s^2)^2 / V_t] per coordinate, about 0.69 here (numerical integral over t on a fine grid).
    grid = torch.linspace(0, 1, 10_001, dtype=torch.float64)
    variance = (1 - grid) ** 2 * std**2 + grid**2
    floor = ((1 + std**2) - (grid - (1 - grid) * std**2) ** 2 / variance).mean().item()
    assert losses["exact"] == pytest.approx(floor, rel=0.08)


def test_the_exact_velocity_carries_noise_to_the_data_when_integrated():
    # Integrating the exact marginal field from t = 1 to 0 turns N(0, I) into the data: a Gaussian's mean and spread
    # come out right, and a mixture's components keep their weights.
    x1 = torch.randn(20_000, 2, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    mean, std = torch.tensor([2.0, -1.0], dtype=torch.float64), 0.3
    out, _ = flow.flow_sample(lambda x, t: flow.gaussian_velocity(x, t, mean, std), x1, 50, "heun")
    torch.testing.assert_close(out.mean(0), mean, atol=0.01, rtol=0)
    torch.testing.assert_close(out.std(0), torch.full((2,), std, dtype=torch.float64), atol=0.01, rtol=0)

    centres, weights = torch.tensor([[-2.0, 0.0], [2.0, 0.0]], dtype=torch.float64), torch.tensor([0.7, 0.3])
    out, _ = flow.flow_sample(lambda x, t: flow.mixture_velocity(x, t, centres, weights, 0.2), x1, 50, "heun")
    assert (out[:, 0] < 0).double().mean().item() == pytest.approx(0.7, abs=0.02)
    assert ((out - centres[(out[:, 0] > 0).long()]).norm(dim=1) < 1.0).double().mean() > 0.99


def _linear_ode_error(steps: int, solver: str, a: float = 1.5) -> float:
    # dx/dt = a x from t = 1 (x = 1) back to t = 0: the exact answer is x(0) = e^{-a}.
    x1 = torch.ones(1, 1, dtype=torch.float64)
    out, _ = flow.flow_sample(lambda x, t: a * x, x1, steps, solver)
    return abs(out.item() - math.exp(-a))


def test_euler_is_first_order_and_heun_second_order_on_a_linear_ode():
    a = 1.5
    for steps in (10, 20, 40):
        h = 1 / steps
        # Stated bounds (global error of a one-step method of order p: C h^p, with C from the equation's derivatives
        # along the solution, here at most a^{p+1} e^{a} / (p + 1)): Euler a^2 e^a h / 2, Heun a^3 e^a h^2 / 3.
        assert _linear_ode_error(steps, "euler", a) < a**2 * math.exp(a) * h / 2
        assert _linear_ode_error(steps, "heun", a) < a**3 * math.exp(a) * h**2 / 3
    # Doubling the steps halves Euler's error and quarters Heun's.
    assert _linear_ode_error(40, "euler") / _linear_ode_error(20, "euler") == pytest.approx(0.5, abs=0.03)
    assert _linear_ode_error(40, "heun") / _linear_ode_error(20, "heun") == pytest.approx(0.25, abs=0.02)
    assert _linear_ode_error(10, "heun") < 0.01 * _linear_ode_error(10, "euler") * 10


def test_the_samplers_call_the_network_as_often_as_they_say_and_do_not_depend_on_the_batch_size():
    calls, seen = [], []

    def velocity(x, t):
        calls.append(len(x))
        seen.append(float(t[0]))
        return -x + t.view(-1, 1)

    x1 = torch.randn(10, 3, generator=torch.Generator().manual_seed(0))
    for solver in flow.SOLVERS:
        calls.clear()
        out, trajectory = flow.flow_sample(velocity, x1, 4, solver, return_trajectory=True)
        assert len(calls) == flow.network_calls(4, solver) and len(trajectory) == 5
        assert torch.equal(trajectory[0], x1) and torch.equal(trajectory[-1], out)
        chunked, _ = flow.flow_sample(velocity, x1, 4, solver, batch_size=3)
        torch.testing.assert_close(chunked, out)
    assert seen[0] == 1.0 and min(seen) == 0.0  # from the noise at t = 1 down to the data at t = 0
    with pytest.raises(ValueError, match="solver"):
        flow.flow_sample(velocity, x1, 4, "rk4")
    with pytest.raises(ValueError, match="steps"):
        flow.flow_sample(velocity, x1, 0)


def test_velocity_noise_and_clean_data_convert_into_each_other():
    x0, eps = torch.randn(5, 1, 4, 4, dtype=torch.float64), torch.randn(5, 1, 4, 4, dtype=torch.float64)
    t = torch.tensor([0.05, 0.3, 0.5, 0.7, 0.95], dtype=torch.float64)
    x_t, v = flow.interpolate(x0, eps, t), flow.velocity_target(x0, eps)
    torch.testing.assert_close(flow.x0_from_velocity(v, x_t, t), x0)
    torch.testing.assert_close(flow.eps_from_velocity(v, x_t, t), eps)
    torch.testing.assert_close(flow.velocity_from_eps(eps, x_t, t), v)


def test_flow_is_diffusion_with_the_schedule_one_minus_t_and_t():
    # diffusion.py's x at step k, rescaled by c_t, is the flow's x_t at the matching time; a velocity oracle read as
    # a noise predictor (as_noise_predictor) gives back the very noise, and diffusion's predict_x0 the very picture.
    schedule = diffusion.make_schedule(1000, "cosine")
    g = torch.Generator().manual_seed(4)
    x0 = torch.rand(3, 1, 4, 4, generator=g, dtype=torch.float64) * 2 - 1
    eps = torch.randn(3, 1, 4, 4, generator=g, dtype=torch.float64)
    k = torch.tensor([10, 500, 990])
    x_vp = diffusion.q_sample(x0, k, eps, schedule)
    t = flow.flow_time(schedule.alpha_bar[k])
    torch.testing.assert_close(x_vp * flow.flow_scale(t).view(-1, 1, 1, 1), flow.interpolate(x0, eps, t))
    assert float(flow.flow_time(torch.tensor(0.5))) == pytest.approx(0.5)  # equal signal and noise: t = 1/2

    oracle = flow.as_noise_predictor(lambda x_t, s: (x_t - x0) / s.view(-1, 1, 1, 1), schedule.alpha_bar)
    eps_hat = oracle(x_vp, k)
    torch.testing.assert_close(eps_hat, eps)
    torch.testing.assert_close(diffusion.predict_x0(x_vp, k, eps_hat, schedule), x0, atol=1e-5, rtol=1e-5)


def test_a_flow_model_feeds_the_unet_continuous_times_on_its_diffusion_scale():
    torch.manual_seed(0)
    net = UNet((1, 8, 8), channels=(8, 16))
    with torch.no_grad():  # the output layer starts at zero: give every weight something, so that outputs differ
        for weight in net.parameters():
            weight.add_(0.1 * torch.randn_like(weight))
    model = flow.FlowModel(net, sample_steps=3, solver="euler")
    x = torch.randn(2, 1, 8, 8)
    t = torch.tensor([0.3, 0.3])
    with torch.no_grad():
        torch.testing.assert_close(model(x, t), net(x, t * 1000))
        assert not torch.allclose(model(x, t), net(x, t), atol=1e-3)  # t in [0, 1] is not fed as a timestep as is
        # a float time is not rounded to a step: t = 0.3 and 0.301 embed differently (the output layer starts at zero)
        assert not torch.allclose(net.time_embedding(t * 1000), net.time_embedding((t + 0.001) * 1000))
    images, trajectory = model.sample(4, torch.Generator().manual_seed(0), return_trajectory=True)
    assert images.shape == (4, 1, 8, 8) and len(trajectory) == 4
    with pytest.raises(ValueError, match="solver"):
        flow.FlowModel(net, solver="ddim")


def test_guided_velocity_mixes_the_two_predictions_as_guidance_does():
    torch.manual_seed(0)
    model = flow.FlowModel(UNet((1, 8, 8), channels=(8, 16), num_classes=3)).eval()
    with torch.no_grad():  # the output layer starts at zero: give every weight something, so that predictions differ
        for weight in model.parameters():
            weight.add_(0.1 * torch.randn_like(weight))
    x, t, labels = torch.randn(4, 1, 8, 8), torch.full((4,), 0.5), torch.tensor([0, 1, 2, 1])
    with torch.no_grad():
        uncond, cond = model(x, t, torch.full((4,), model.null_label)), model(x, t, labels)
        torch.testing.assert_close(flow.guided_velocity(model, labels, 0.0)(x, t), uncond, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(flow.guided_velocity(model, labels, 1.0)(x, t), cond, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(
            flow.guided_velocity(model, labels, 3.0)(x, t), uncond + 3 * (cond - uncond), atol=1e-5, rtol=1e-5
        )
    with pytest.raises(ValueError, match="class-conditional"):
        flow.guided_velocity(flow.FlowModel(UNet((1, 8, 8), channels=(8, 16))), labels, 2.0)


def test_training_times_follow_the_distribution_they_are_drawn_from():
    g = torch.Generator().manual_seed(0)
    uniform, logit_normal = flow.draw_times(200_000, g, "uniform"), flow.draw_times(200_000, g, "logit-normal")
    assert uniform.min() >= 0 and uniform.max() <= 1 and logit_normal.min() > 0 and logit_normal.max() < 1
    assert uniform.mean().item() == pytest.approx(0.5, abs=0.005)
    z = torch.logit(logit_normal.double())  # sigmoid(z) with z ~ N(0, 1): its logit is a standard normal
    assert z.mean().item() == pytest.approx(0.0, abs=0.01) and z.std().item() == pytest.approx(1.0, abs=0.01)
    # The middle fifth holds a fifth of the uniform draws and 2 Phi(logit 0.6) - 1 = 0.3146 of the logit-normal ones.
    middle = {
        name: ((t > 0.4) & (t < 0.6)).double().mean().item() for name, t in [("u", uniform), ("ln", logit_normal)]
    }
    assert middle["u"] == pytest.approx(0.2, abs=0.005) and middle["ln"] == pytest.approx(0.3146, abs=0.005)
    shifted = torch.logit(flow.draw_times(200_000, g, "logit-normal", mean=-0.5).double())
    assert shifted.mean().item() == pytest.approx(-0.5, abs=0.01) and shifted.std().item() == pytest.approx(1, abs=0.01)
    with pytest.raises(ValueError, match="distribution must be one of"):
        flow.draw_times(4, g, "logit_normal")


def test_flow_loss_asks_the_model_at_times_from_the_distribution_it_is_given():
    seen = []

    def model(x, t):
        seen.append(t)
        return torch.zeros_like(x)

    x0 = torch.zeros(50_000, 1)
    flow.flow_loss(model, x0, torch.Generator().manual_seed(0))
    flow.flow_loss(model, x0, torch.Generator().manual_seed(0), times="logit-normal")
    assert seen[0].std().item() == pytest.approx(math.sqrt(1 / 12), abs=0.005)  # U[0, 1]
    assert torch.logit(seen[1].double()).std().item() == pytest.approx(1.0, abs=0.02)
