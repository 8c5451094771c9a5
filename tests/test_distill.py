"""Knowledge distillation: a trained teacher's softened posteriors on the very clips the student sees."""

from __future__ import annotations

import copy
import json

import pytest
import torch

from spotter.checkpoint import save_checkpoint
from spotter.model import build_model, ensemble
from spotter.training.module import KWSModule
from spotter.training.run import main as train_main


def _tones() -> tuple[torch.Tensor, torch.Tensor]:
    t = torch.arange(16000) / 16000
    x = torch.stack([0.3 * torch.sin(2 * torch.pi * f * t) * torch.exp(-((t - 0.5) / 0.2) ** 2)
                     for f in (300, 500, 900, 1500, 2500, 4000)])
    return x, torch.tensor([0, 1, 2, 3, 4, 5])


def test_the_teacher_scores_the_same_augmented_masked_clips_as_the_student():
    # A teacher identical to the student gives a distillation loss of exactly 0 only if it scores the student's
    # own view: the same speed/EQ/gain augmentation and the same SpecAugment masks. Scored on any other view
    # (the clean clip, the augmented waveform before masking) the loss would be positive.
    torch.manual_seed(0)
    module = KWSModule("linear", augment=True, distill_weight=1.0, distill_temperature=2.0, normalize="mean",
                       augment_config={"speed": (0.85, 1.15), "eq_db": 8.0, "freq_masks": 2, "time_masks": 2})
    module.set_teacher(copy.deepcopy(module.model))
    x, y = _tones()
    with pytest.warns(UserWarning):  # self.log outside a Trainer
        assert module.training_step((x, y), 0).item() == pytest.approx(0.0, abs=1e-6)
        with torch.no_grad():
            module.model.net.fc.weight.add_(0.05 * torch.randn_like(module.model.net.fc.weight))
        assert module.training_step((x, y), 0).item() > 0.1
    assert not any(p.requires_grad for p in module.teacher.parameters())
    assert not any(k.startswith("teacher") or "_teacher" in k for k in module.state_dict())  # never saved


def test_distillation_loss_is_hintons_and_pulls_the_student_to_the_teacher():
    module = KWSModule("linear", distill_weight=1.0, distill_temperature=3.0)
    torch.manual_seed(1)
    teacher = torch.randn(8, 12) * 4
    student = torch.zeros(8, 12, requires_grad=True)
    p_t = torch.softmax(teacher / 3, -1)
    expected = 9 * (p_t * (torch.log(p_t) - torch.log_softmax(student.detach() / 3, -1))).sum(-1).mean()
    assert module.distillation_loss(student, teacher).item() == pytest.approx(expected.item(), rel=1e-5)
    opt = torch.optim.SGD([student], lr=20.0)
    start = module.distillation_loss(student, teacher).item()
    for _ in range(200):
        opt.zero_grad()
        module.distillation_loss(student, teacher).backward()
        opt.step()
    assert module.distillation_loss(student, teacher).item() < 0.01 * start
    assert (student.argmax(-1) == teacher.argmax(-1)).all()


def test_an_ensemble_teaches_on_the_shared_front_end_and_another_front_end_hears_the_waveform():
    x, y = _tones()
    torch.manual_seed(2)
    members = [build_model("bcresnet-1").eval() for _ in range(2)]
    teacher = ensemble(members)
    module = KWSModule("bcresnet-1", augment=False, distill_weight=0.5)
    module.set_teacher(teacher)
    assert module._shares_features_with_teacher()
    other = KWSModule("bcresnet-1", augment=False, distill_weight=0.5, normalize="mean")
    other.set_teacher(teacher)
    assert not other._shares_features_with_teacher()
    with pytest.warns(UserWarning):
        for m in (module, other):
            loss = m.training_step((x, y), 0)
            assert torch.isfinite(loss) and loss.item() > 0
            loss.backward()
    assert all(p.grad is None for p in teacher.parameters())


def test_train_with_a_teacher_records_it_and_refuses_one_with_other_labels(tmp_path, capsys):
    stranger = build_model("linear", labels=("yes", "no", "unknown"))
    save_checkpoint(stranger, tmp_path / "stranger.pt")
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    code = train_main(["--data", str(corpus), "--model", "linear", "--teacher", str(tmp_path / "stranger.pt"),
                       "--out", str(tmp_path / "run"), "--no-progress", "--accelerator", "cpu"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1
    assert f"--teacher {tmp_path / 'stranger.pt'}: its labels ['yes', 'no', 'unknown'] differ" in err
    code = train_main(["--data", str(corpus), "--model", "linear", "--teacher", str(tmp_path / "stranger.pt"),
                       "--distill-weight", "1.5", "--out", str(tmp_path / "run2"), "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "the weight must be in 0..1" in err


@pytest.mark.slow
def test_distilled_run_end_to_end(tmp_path):
    from spotter.data.synth import synthesize_corpus

    corpus = tmp_path / "corpus"
    synthesize_corpus(corpus, per_word=30, seed=4, engines=("espeak",), words=("yes", "no", "bed"),
                      progress=False, noise_seconds=10.0, holdout_fraction=0.2)
    common = ["--data", str(corpus), "--model", "linear", "--epochs", "1", "--batch-size", "16",
              "--accelerator", "cpu", "--no-progress"]
    assert train_main([*common, "--out", str(tmp_path / "teacher")]) == 0
    # lr 0 from the teacher's own weights: the student is the teacher, so the distillation term is 0
    assert train_main([*common, "--out", str(tmp_path / "student"), "--init", str(tmp_path / "teacher/model.pt"),
                       "--lr", "0", "--teacher", str(tmp_path / "teacher/model.pt"), "--distill-weight", "1"]) == 0
    metrics = json.loads((tmp_path / "student/metrics.json").read_text())
    assert metrics["teacher"] == str(tmp_path / "teacher/model.pt")
    assert metrics["distill_weight"] == 1.0 and metrics["distill_temperature"] == 2.0
    log = (tmp_path / "student/logs/version_0/metrics.csv").read_text().splitlines()
    column = log[0].split(",").index("train_distill")
    values = [float(row.split(",")[column]) for row in log[1:] if row.split(",")[column]]
    assert values and max(values) < 1e-6
