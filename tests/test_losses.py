import pytest
import torch
import torch.nn.functional as F

from custom_trainer.losses import class_weights, focal_loss


def seed_focal_loss(logits, targets, alpha, gamma=2.0):
    """The notebook's FocalLoss.forward, transcribed."""
    ce = F.cross_entropy(logits, targets, reduction="none")
    pt = torch.exp(-ce)
    loss = ((1 - pt) ** gamma) * ce
    if alpha is not None:
        loss = alpha[targets] * loss
    return loss.mean()


def test_matches_the_seeds_focal_loss():
    torch.manual_seed(0)
    logits, labels = torch.randn(64, 12) * 3, torch.randint(0, 12, (64,))
    alpha = torch.rand(12) + 0.5
    assert torch.allclose(focal_loss(logits, labels, alpha, 2.0), seed_focal_loss(logits, labels, alpha), atol=1e-6)


def test_gamma_zero_without_alpha_is_cross_entropy():
    torch.manual_seed(1)
    logits, labels = torch.randn(16, 5), torch.randint(0, 5, (16,))
    assert torch.allclose(focal_loss(logits, labels, None, 0.0), F.cross_entropy(logits, labels), atol=1e-6)


def test_focusing_down_weights_easy_examples():
    easy = torch.tensor([[6.0, 0.0, 0.0]])
    hard = torch.tensor([[0.5, 0.0, 0.0]])
    label = torch.tensor([0])
    ratio_focal = focal_loss(easy, label, gamma=2.0) / focal_loss(hard, label, gamma=2.0)
    ratio_ce = focal_loss(easy, label, gamma=0.0) / focal_loss(hard, label, gamma=0.0)
    assert ratio_focal < ratio_ce / 10


def test_num_items_in_batch_sums_then_divides():
    torch.manual_seed(2)
    logits, labels = torch.randn(10, 4), torch.randint(0, 4, (10,))
    per_item = focal_loss(logits, labels) * 10
    assert torch.allclose(focal_loss(logits, labels, num_items_in_batch=40), per_item / 40)


def test_ignored_labels_do_not_count():
    logits = torch.randn(4, 3)
    labels = torch.tensor([0, -100, 2, -100])
    assert torch.allclose(focal_loss(logits, labels), focal_loss(logits[[0, 2]], labels[[0, 2]]))


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_extreme_low_precision_logits_stay_finite_and_float32(dtype):
    logits = torch.tensor([[6.0e4, -6.0e4, 0.0], [-6.0e4, 6.0e4, 0.0]], dtype=dtype, requires_grad=True)
    labels = torch.tensor([1, 1])
    loss = focal_loss(logits, labels, torch.ones(3), 2.0)
    assert loss.dtype == torch.float32
    assert torch.isfinite(loss)
    loss.backward()
    assert torch.isfinite(logits.grad.float()).all()


def test_class_weights_inverse_frequency_sum_to_num_classes():
    labels = [0] * 60 + [1] * 30 + [2] * 10
    weights = class_weights(labels, 3)
    assert weights.sum().item() == pytest.approx(3.0)
    assert weights[2] / weights[0] == pytest.approx(6.0)
    assert weights[1] / weights[0] == pytest.approx(2.0)
    assert torch.allclose(class_weights([0, 1, 2] * 5, 3), torch.ones(3))


def test_class_weights_reject_missing_classes():
    with pytest.raises(ValueError, match=r"class id\(s\) \[1\] never occur"):
        class_weights([0, 0, 2], 3)


def test_square_root_class_weights_are_bounded_on_a_long_tail():
    labels = [0] * 400 + [1] * 40 + [2] * 4
    inverse, sqrt = class_weights(labels, 3), class_weights(labels, 3, power=0.5)
    assert float(inverse.max() / inverse.min()) == pytest.approx(100.0)
    assert float(sqrt.max() / sqrt.min()) == pytest.approx(10.0)
    assert float(sqrt.sum()) == pytest.approx(3.0)
    assert class_weights(labels, 3, power=0.0).tolist() == pytest.approx([1.0, 1.0, 1.0])
