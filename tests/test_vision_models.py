"""The few-shot conv net and the vision experiment: shapes, LinNet at initialisation, the batched
meta-gradient against the per-task loop (float64, batch-norm in batch mode), ANIL's adapted set, KFO at
initialisation, checkpoint resumption, and the ``vision`` command line."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import paper_repro
from simulations.kfo import kfo_transform
from simulations.maml import GradientTransform, InnerLoop, adapt, adapted_names, initial_params, meta_loss
from simulations.per_task_maml import per_task_meta_loss
from simulations.tasks import TaskBatch
from simulations.vision.convnet import BatchNorm2d, ConvNet
from tests.helpers import assert_close
from theory.ground.errors import ParameterError

ROOT = Path(__file__).resolve().parent.parent
IDENTITY_TOL = 1e-10  # float64: two exact computations of the same derivative


def _model(linnet: int = 1, seed: int = 0, **kw) -> ConvNet:
    torch.manual_seed(seed)
    return ConvNet(1, 8, 3, width=kw.pop("width", 6), linnet_layers=linnet, **kw).double()


def _episodes(tasks=3, ways=3, shots=2, query=2, size=8, seed=0) -> TaskBatch:
    """Random float64 'images' with class-major labels: (T, N·K, 1, s, s) and (T, N·Q, 1, s, s)."""
    gen = torch.Generator().manual_seed(seed)

    def part(per_class):
        x = torch.rand(tasks, ways * per_class, 1, size, size, generator=gen, dtype=torch.float64)
        return x, torch.arange(ways).repeat_interleave(per_class).expand(tasks, -1)

    return TaskBatch(*part(shots), *part(query))


def _flat(grads) -> torch.Tensor:
    return torch.cat([g.reshape(-1) for g in grads])


# -- the network ------------------------------------------------------------------------------------
SHAPES = [((1, 8, 8), 32, (32, 1, 1)), ((1, 28, 28), 64, (64, 1, 1)), ((3, 32, 32), 32, (32, 2, 2)),
          ((3, 84, 84), 32, (32, 5, 5))]  # (C, H, W), width, feature map after four blocks


@pytest.mark.parametrize("shape, width, features", SHAPES)
def test_conv_net_shapes(shape, width, features):
    net = ConvNet(shape[0], shape[1:], ways=5, width=width)
    assert net.feature_shape == features  # pooling stops at a 1×1 map (8×8: 8 → 4 → 2 → 1 → 1)
    assert net(torch.rand(7, *shape)).shape == (7, 5)
    shallow = ConvNet(shape[0], shape[1:], ways=5, depth=2, width=width)
    assert shallow.feature_shape == (width, shape[1] // 4, shape[2] // 4)
    assert ConvNet(shape[0], shape[1:], 5, depth=2, max_pool=False).feature_shape == (32, *shape[1:])


def test_bad_network_settings_name_the_parameter():
    for kwargs, name in [({"ways": 1}, "ways"), ({"depth": 0}, "depth"),
                         ({"linnet_layers": -1}, "linnet_layers")]:
        with pytest.raises(ParameterError, match=name):
            ConvNet(1, 8, **{"ways": 5, **kwargs})


def test_batch_norm_uses_batch_statistics_like_torch():
    norm = BatchNorm2d(4).double()
    with torch.no_grad():
        norm.weight.uniform_(0.5, 1.5)
        norm.bias.normal_()
    h = torch.randn(6, 4, 3, 3, dtype=torch.float64)
    for mode in (norm.train, norm.eval):  # batch statistics in both: no running buffers
        mode()
        expected = torch.nn.functional.batch_norm(h, None, None, norm.weight, norm.bias, training=True)
        assert_close(norm(h).detach(), expected.detach(), IDENTITY_TOL, "explicit vs fused batch norm")
    assert not list(norm.buffers()) or all(b is None for b in norm.buffers())


def test_linnet_layers_are_the_identity_at_initialisation():
    plain, deep = _model(linnet=0), _model(linnet=3)
    x = torch.rand(5, 1, 8, 8, dtype=torch.float64)
    assert_close(deep(x).detach(), plain(x).detach(), IDENTITY_TOL, "logits with and without LinNet")
    extra = sum(p.numel() for p in deep.parameters()) - sum(p.numel() for p in plain.parameters())
    assert extra == 3 * (6 * 6 + 6)  # three (6, 6) weights and their biases


# -- functional MAML / ANIL on the conv net ---------------------------------------------------------
@pytest.mark.parametrize("method", ["all", "head"])
@pytest.mark.parametrize("first_order", [False, True])
def test_batched_meta_gradient_equals_per_task_loop(method, first_order):
    """vmap over tasks (BN in batch mode, per task) = a loop over cloned modules, to float64 precision."""
    model, batch = _model(), _episodes()
    inner = InnerLoop(0.4, 2, first_order, method, "cross_entropy")
    params = initial_params(model)
    batched = torch.autograd.grad(meta_loss(model, params, batch, inner), list(params.values()))
    loop = torch.autograd.grad(per_task_meta_loss(model, batch, inner), list(model.parameters()))
    assert_close(_flat(batched), _flat(loop), IDENTITY_TOL,
                 f"meta-gradient, {method}, first order {first_order}")


def test_anil_adapts_the_head_weight_and_bias_only():
    model, batch = _model(), _episodes(tasks=1)
    inner = InnerLoop(0.4, 1, False, "head", "cross_entropy")
    assert adapted_names(model, inner) == ["head.weight", "head.bias"]
    params = initial_params(model)
    fast = adapt(model, params, batch.x_support[0], batch.y_support[0], inner)
    changed = {n for n in params if not torch.equal(fast[n], params[n])}
    assert changed == {"head.weight", "head.bias"}


@pytest.mark.parametrize("method", ["all", "head"])
def test_untrained_kfo_on_the_conv_net_is_the_plain_step(method):
    model, batch = _model(), _episodes()
    inner = InnerLoop(0.4, 1, False, method, "cross_entropy")
    names = None if method == "all" else list(model.head_names)
    params = initial_params(model)
    kfo = kfo_transform(params, "linear", names=names)
    t_params, t_apply = kfo.params, kfo.apply
    assert any(k.startswith("blocks.0.conv.weight") for k in t_params) == (method == "all")
    with_kfo = meta_loss(model, params, batch, inner, GradientTransform(t_params, t_apply))
    g_kfo = torch.autograd.grad(with_kfo, list(params.values()) + list(t_params.values()))
    plain = meta_loss(model, params, batch, inner)
    g_plain = torch.autograd.grad(plain, list(params.values()))
    assert_close(with_kfo.detach(), plain.detach(), IDENTITY_TOL, "meta-loss with untrained KFO")
    assert_close(_flat(g_kfo[:len(params)]), _flat(g_plain), IDENTITY_TOL, "meta-gradient in θ")
    assert torch.isfinite(_flat(g_kfo[len(params):])).all() and _flat(g_kfo[len(params):]).abs().max() > 0


# -- the experiment: checkpoints --------------------------------------------------------------------
def _tiny(tmp_path, name, **kw):
    from simulations.experiments.vision import VisionConfig

    settings = {"dataset": "digits", "ways": 3, "shots": 1, "query": 2, "depth": 2, "width": 8, "kfo": True,
                "meta_batch": 4, "iterations": 6, "eval_tasks": 6, "validation_tasks": 2, "validate_every": 2,
                "checkpoint": str(tmp_path / name), "checkpoint_every_seconds": 1e9, **kw}
    return VisionConfig(**settings)


def test_resuming_a_checkpoint_equals_the_uninterrupted_run(tmp_path):
    from simulations.experiments.vision import run_vision

    straight = run_vision(_tiny(tmp_path, "a.pt"), progress=False)
    stopped = run_vision(_tiny(tmp_path, "b.pt"), progress=False, _stop_after=3)
    assert stopped == {"stopped_at": 3, "resumed_from": None}
    resumed = run_vision(_tiny(tmp_path, "b.pt"), progress=False)
    assert resumed["resumed_from"] == 3
    a, b = (torch.load(tmp_path / n, weights_only=True) for n in ("a.pt", "b.pt"))
    for group in ("params", "transform_params"):
        assert a[group].keys() == b[group].keys() and a[group]
        for name in a[group]:
            assert torch.equal(a[group][name], b[group][name]), f"{group} {name} differs after resuming"
    assert a["history"] == b["history"] == straight["history"] == resumed["history"]
    assert straight["test_accuracy"] == resumed["test_accuracy"]
    assert torch.equal(a["generator"], b["generator"])


def test_a_checkpoint_of_another_configuration_or_a_broken_file_is_refused(tmp_path):
    from simulations.experiments.vision import run_vision

    run_vision(_tiny(tmp_path, "c.pt", iterations=1), progress=False)
    with pytest.raises(ParameterError, match="alpha"):
        run_vision(_tiny(tmp_path, "c.pt", alpha=0.1), progress=False)
    (tmp_path / "broken.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(ParameterError, match="checkpoint"):
        run_vision(_tiny(tmp_path, "broken.pt"), progress=False)


def test_config_validation_names_the_field():
    from simulations.experiments.vision import VisionConfig

    for kwargs in ({"dataset": "mnist"}, {"ways": 1}, {"method": "reptile"}, {"alpha": -1.0},
                   {"kfo": "yes"}, {"device": "gpu"}, {"eval_tasks": 1}):
        name = next(iter(kwargs))
        with pytest.raises(ParameterError, match=name):
            VisionConfig(**kwargs)


# -- the command line -------------------------------------------------------------------------------
def _cli(capsys, *argv):
    code = paper_repro.main(["vision", *argv])
    out, err = capsys.readouterr()
    return code, out, [line for line in err.split("\n") if line.strip()]


CLI_ERRORS = [(["--dataset", "mnist"], "--dataset"), (["--ways", "1"], "--ways"),
              (["--ways", "11"], "--ways"),
              (["--method", "reptile"], "--method"), (["--dataset", "omniglot"], "argument --data-root: omniglot"),
              (["--shots", "200"], "--shots")]  # digits classes hold 174-183 images


@pytest.mark.parametrize("argv, names", CLI_ERRORS)
def test_bad_vision_input_is_one_line_and_exit_2(capsys, argv, names):
    code, _, err = _cli(capsys, *argv)
    assert code == 2 and len(err) == 1, err
    assert err[0].startswith("paper_repro.py: error:") and names in err[0], err


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_cuda_without_a_gpu_is_a_clear_error(capsys):
    code, _, err = _cli(capsys, "--device", "cuda")
    assert code == 2 and len(err) == 1 and "--device" in err[0] and "no CUDA" in err[0], err


def test_vision_errors_print_no_traceback():
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "paper_repro.py", "vision", "--dataset", "mnist"], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert len(done.stderr.strip().split("\n")) == 1


def test_vision_end_to_end_on_digits(capsys):
    code, out, _ = _cli(capsys, "--dataset", "digits", "--ways", "5", "--shots", "1", "--iterations", "30",
                        "--eval-tasks", "50", "--json")
    assert code == 0
    report = json.loads(out)
    assert report["classes"] == {"train": 24, "validation": 8, "test": 8}  # digits 0-5, 6-7, 8-9 × 4 rotations
    assert 0 < report["ci95"] < 0.2 and len(report["history"]["meta_loss"]) == 30
    assert report["test_accuracy"] - report["ci95"] > 0.2, "30 meta-steps should beat 5-way chance on novel classes"


# -- GPU --------------------------------------------------------------------------------------------
@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_meta_gradient_matches_the_cpu():
    model, batch = _model(), _episodes()
    inner = InnerLoop(0.4, 2, False, "all", "cross_entropy")
    params = initial_params(model)
    cpu = torch.autograd.grad(meta_loss(model, params, batch, inner), list(params.values()))
    on_gpu = TaskBatch(*(t.cuda() for t in (batch.x_support, batch.y_support, batch.x_query, batch.y_query)))
    model = model.to("cuda")
    params = initial_params(model)
    gpu = torch.autograd.grad(meta_loss(model, params, on_gpu, inner), list(params.values()))
    assert_close(_flat(gpu).cpu(), _flat(cpu), 1e-8, "CUDA vs CPU meta-gradient (float64)")


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_vision_runs_on_cuda_and_resumes(tmp_path):
    from simulations.experiments.vision import run_vision

    straight = run_vision(_tiny(tmp_path, "g.pt", device="cuda"), progress=False)
    run_vision(_tiny(tmp_path, "h.pt", device="cuda"), progress=False, _stop_after=3)
    resumed = run_vision(_tiny(tmp_path, "h.pt", device="cuda"), progress=False)
    assert 0 <= straight["test_accuracy"] <= 1 and resumed["resumed_from"] == 3
    assert abs(straight["history"]["meta_loss"][-1] - resumed["history"]["meta_loss"][-1]) < 1e-4
