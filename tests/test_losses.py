"""Tests of the Segmented Harmonic Loss and the baseline losses.

Expected values are derived by hand in the comments and computed with plain Python
math, never with the code under test.
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from shl.losses import (
    AsymmetricLoss,
    BinaryCrossEntropyLoss,
    ClassBalancedBCELoss,
    FocalLoss,
    SegmentedHarmonicLoss,
    asymmetric_loss,
    binary_cross_entropy_loss,
    build_loss,
    class_balanced_bce_loss,
    class_balanced_weights,
    segmented_harmonic_loss,
    sigmoid_focal_loss,
)

LN3 = math.log(3.0)
DTYPES = [torch.float32, torch.float64]
RTOL = {torch.float32: 1e-5, torch.float64: 1e-12}


def hand_case(
    dtype: torch.dtype = torch.float64,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Return the 2 x 3 case used by the hand derivations.

    logits ln 3, 0 and -ln 3 give probabilities 0.75, 0.5 and 0.25::

        p = [[0.75, 0.50, 0.25],     y = [[1, 0, 0],     segments = [0, 0, 1]
             [0.50, 0.25, 0.75]]          [0, 1, 1]]
    """
    logits = torch.tensor([[LN3, 0.0, -LN3], [0.0, -LN3, LN3]], dtype=dtype)
    targets = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 1.0]], dtype=dtype)
    segments = torch.tensor([0, 0, 1])
    return logits, targets, segments


def assert_close(actual: torch.Tensor, expected: float, dtype: torch.dtype) -> None:
    assert math.isclose(actual.item(), expected, rel_tol=RTOL[dtype], abs_tol=RTOL[dtype])


# Hand values for hand_case():
# Segment 0 (labels 0, 1) has entries (p, y) = (.75, 1), (.5, 0), (.5, 0), (.25, 1):
#   TP0 = .75 + .25 = 1, FP0 = .5 + .5 = 1, FN0 = .25 + .75 = 1
#   F1_0 = (2 + 1) / (2 + 1 + 1 + 1) = 3 / 5
# Segment 1 (label 2) has entries (.25, 0), (.75, 1):
#   TP1 = .75, FP1 = .25, FN1 = .25
#   F1_1 = (1.5 + 1) / (1.5 + .25 + .25 + 1) = 2.5 / 3
# Harmonic mean H = 2 / (5/3 + 6/5) = 30 / 43.
# BCE per entry: -log .75 = log(4/3), -log .5 = log 2, -log .25 = log 4.
#   Segment 0 mean = (log(4/3) + log 2 + log 2 + log 4) / 4
#   Segment 1 mean = (log(4/3) + log(4/3)) / 2
F1_SEGMENT_0 = 3.0 / 5.0
F1_SEGMENT_1 = 2.5 / 3.0
BCE_SEGMENT_0 = (math.log(4 / 3) + 2 * math.log(2) + math.log(4)) / 4
BCE_SEGMENT_1 = math.log(4 / 3)
BASE_BCE = (BCE_SEGMENT_0 + BCE_SEGMENT_1) / 2


# ---------------------------------------------------------------------------
# SHL hand values
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES)
def test_shl_hand_value_harmonic(dtype):
    logits, targets, segments = hand_case(dtype)

    loss = segmented_harmonic_loss(logits, targets, segments)

    harmonic = 2 / (1 / F1_SEGMENT_0 + 1 / F1_SEGMENT_1)
    assert math.isclose(harmonic, 30 / 43)
    assert_close(loss, 0.5 * BASE_BCE + 0.5 * (1 - harmonic), dtype)
    assert loss.dtype == dtype


@pytest.mark.parametrize("dtype", DTYPES)
def test_shl_hand_value_arithmetic(dtype):
    logits, targets, segments = hand_case(dtype)

    loss = segmented_harmonic_loss(logits, targets, segments, combine="arithmetic", lam=0.25)

    mean_f1 = (F1_SEGMENT_0 + F1_SEGMENT_1) / 2
    assert_close(loss, 0.25 * BASE_BCE + 0.75 * (1 - mean_f1), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_shl_inactive_segment_left_out(dtype):
    # Same logits, but label 2 has no positive, so segment 1 is inactive:
    #   entries (.25, 0), (.75, 0): TP1 = 0, FP1 = 1, FN1 = 0, F1_1 = 1 / 2.
    # Segment 0 is unchanged, F1_0 = 3 / 5.
    # active_only=True:  H = F1_0 = 3 / 5.
    # active_only=False: H = 2 / (5/3 + 2) = 6 / 11.
    # Base: segment 1 entries are now -log .75 and -log .25 = log(4/3) and log 4.
    logits, targets, segments = hand_case(dtype)
    targets[1, 2] = 0.0
    base = (BCE_SEGMENT_0 + (math.log(4 / 3) + math.log(4)) / 2) / 2

    active = segmented_harmonic_loss(logits, targets, segments)
    every = segmented_harmonic_loss(logits, targets, segments, active_only=False)

    assert_close(active, 0.5 * base + 0.5 * (1 - 3 / 5), dtype)
    assert_close(every, 0.5 * base + 0.5 * (1 - 6 / 11), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_shl_hand_value_weighted(dtype):
    # weights = [[1, 0, 2], [1, 1, 0]]
    # Segment 0: (.75, y1, w1), (.5, y0, w0), (.5, y0, w1), (.25, y1, w1)
    #   TP0 = .75 + .25 = 1, FP0 = .5, FN0 = .25 + .75 = 1, F1_0 = 3 / 4.5 = 2/3
    # Segment 1: (.25, y0, w2), (.75, y1, w0)
    #   TP1 = 0, FP1 = 2 * .25 = .5, FN1 = 0, F1_1 = 1 / 1.5 = 2/3
    #   The weight-0 entry has target 1, so segment 1 is still active.
    # H = 2/3.
    # Base, divided by the weight sum of each segment:
    #   segment 0: (log(4/3) + log 2 + log 4) / 3
    #   segment 1: 2 log(4/3) / 2
    logits, targets, segments = hand_case(dtype)
    weights = torch.tensor([[1.0, 0.0, 2.0], [1.0, 1.0, 0.0]], dtype=dtype)
    base = ((math.log(4 / 3) + math.log(2) + math.log(4)) / 3 + math.log(4 / 3)) / 2

    loss = segmented_harmonic_loss(logits, targets, segments, weights)

    assert_close(loss, 0.5 * base + 0.5 * (1 - 2 / 3), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_shl_hand_value_asl_base(dtype):
    # ASL with gamma_neg 4, gamma_pos 0, clip 0.05, per entry:
    #   positives: -log p.  negatives: -(p - .05)^4 log(1 - (p - .05)).
    # Segment 0: log(4/3), -(.45^4) log .55, -(.45^4) log .55, log 4   -> mean over 4
    # Segment 1: -(.2^4) log .8, log(4/3)                                 -> mean over 2
    logits, targets, segments = hand_case(dtype)
    negative_half = -(0.45**4) * math.log(0.55)
    negative_quarter = -(0.2**4) * math.log(0.8)
    segment_0 = (math.log(4 / 3) + 2 * negative_half + math.log(4)) / 4
    segment_1 = (negative_quarter + math.log(4 / 3)) / 2
    harmonic = 30 / 43

    loss = segmented_harmonic_loss(logits, targets, segments, base="asl")

    assert_close(loss, 0.5 * (segment_0 + segment_1) / 2 + 0.5 * (1 - harmonic), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_shl_eps_changes_f1(dtype):
    # eps = 0.5: F1_0 = 2.5 / 4.5 = 5/9, F1_1 = 2 / 2.5 = 4/5, H = 2 / (9/5 + 5/4).
    logits, targets, segments = hand_case(dtype)

    loss = segmented_harmonic_loss(logits, targets, segments, lam=0.0, eps=0.5)

    assert_close(loss, 1 - 2 / (9 / 5 + 5 / 4), dtype)


# ---------------------------------------------------------------------------
# SHL against independent loop implementations
# ---------------------------------------------------------------------------


def random_batch(seed: int, rows: int = 6, labels: int = 10, dtype=torch.float64):
    generator = torch.Generator().manual_seed(seed)
    logits = torch.randn(rows, labels, generator=generator, dtype=dtype) * 2
    targets = (torch.rand(rows, labels, generator=generator) < 0.3).to(dtype)
    targets[0, 0] = 1.0
    return logits, targets


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("dtype", DTYPES)
def test_shl_one_segment_lambda_zero_is_soft_f1(seed, dtype):
    logits, targets = random_batch(seed, dtype=dtype)
    segments = torch.zeros(logits.shape[1], dtype=torch.long)
    tp = fp = fn = 0.0
    for x, y in zip(logits.flatten().tolist(), targets.flatten().tolist()):
        p = 1 / (1 + math.exp(-x))
        tp += p * y
        fp += p * (1 - y)
        fn += (1 - p) * y
    soft_f1 = (2 * tp + 1) / (2 * tp + fp + fn + 1)

    loss = segmented_harmonic_loss(logits, targets, segments, lam=0.0)

    assert_close(loss, 1 - soft_f1, dtype)


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("dtype", DTYPES)
def test_shl_lambda_one_is_segment_balanced_bce(seed, dtype):
    logits, targets = random_batch(seed, dtype=dtype)
    segments = torch.tensor([0, 1, 2, 0, 1, 2, 2, 2, 0, 1])
    segment_means = []
    for segment in range(3):
        values = []
        for row in range(logits.shape[0]):
            for label in range(logits.shape[1]):
                if segments[label] != segment:
                    continue
                x = logits[row, label].item()
                y = targets[row, label].item()
                p = 1 / (1 + math.exp(-x))
                values.append(-(y * math.log(p) + (1 - y) * math.log(1 - p)))
        segment_means.append(sum(values) / len(values))
    expected = sum(segment_means) / len(segment_means)

    loss = segmented_harmonic_loss(logits, targets, segments, lam=1.0)

    assert_close(loss, expected, dtype)


def test_shl_module_matches_function():
    logits, targets = random_batch(3)
    segments = torch.tensor([0, 1, 2, 0, 1, 2, 2, 2, 0, 1])
    module = SegmentedHarmonicLoss(segments, lam=0.3, combine="arithmetic")

    from_module = module(logits, targets)
    from_function = segmented_harmonic_loss(
        logits, targets, segments, lam=0.3, combine="arithmetic"
    )

    assert torch.equal(from_module, from_function)


# ---------------------------------------------------------------------------
# Gradients and edge cases
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("combine", ["harmonic", "arithmetic"])
@pytest.mark.parametrize("base", ["bce", "asl"])
@pytest.mark.parametrize("active_only", [True, False])
def test_shl_gradcheck_float64(combine, base, active_only):
    generator = torch.Generator().manual_seed(7)
    logits = torch.randn(4, 6, generator=generator, dtype=torch.float64, requires_grad=True)
    targets = torch.tensor(
        [[1, 0, 0, 0, 1, 0], [0, 1, 0, 0, 0, 0], [0, 0, 0, 0, 1, 1], [1, 0, 0, 0, 0, 0]],
        dtype=torch.float64,
    )
    # Segment 2 (labels 2, 3) has no positive.
    segments = torch.tensor([0, 0, 2, 2, 1, 1])
    weights = (torch.rand(4, 6, generator=generator, dtype=torch.float64) + 0.5).requires_grad_()

    def loss_of(x, w):
        return segmented_harmonic_loss(
            x, targets, segments, w, combine=combine, base=base, active_only=active_only
        )

    assert torch.autograd.gradcheck(loss_of, (logits, weights))


def test_shl_gradcheck_with_running_counts():
    logits, targets = random_batch(4, rows=3, labels=5)
    logits.requires_grad_()
    segments = torch.tensor([0, 1, 1, 0, 1])
    running = torch.tensor([[1.0, 0.5], [0.25, 2.0], [0.5, 0.0]], dtype=torch.float64)

    def loss_of(x):
        return segmented_harmonic_loss(x, targets, segments, running_counts=running)

    assert torch.autograd.gradcheck(loss_of, (logits,))


def edge_cases() -> list[tuple]:
    """Return (name, logits, targets, segments, weights) cases that must stay finite."""
    generator = torch.Generator().manual_seed(11)
    random_logits = torch.randn(3, 4, generator=generator)
    two_segments = torch.tensor([0, 1, 1, 0])
    return [
        ("no positive", random_logits, torch.zeros(3, 4), two_segments, None),
        (
            "one label",
            torch.randn(3, 1, generator=generator),
            torch.tensor([[1.0], [0.0], [1.0]]),
            torch.tensor([0]),
            None,
        ),
        (
            "one segment",
            random_logits,
            torch.tensor([[1.0, 0.0, 0.0, 1.0], [0.0, 1.0, 0.0, 0.0], [0.0, 0.0, 1.0, 1.0]]),
            torch.zeros(4, dtype=torch.long),
            None,
        ),
        ("zero weights", random_logits, torch.ones(3, 4), two_segments, torch.zeros(3, 4)),
        (
            "large logits",
            torch.tensor([[100.0, -100.0], [-100.0, 100.0]]),
            torch.tensor([[1.0, 1.0], [0.0, 0.0]]),
            torch.tensor([0, 1]),
            None,
        ),
        ("empty batch", torch.zeros(0, 4), torch.zeros(0, 4), two_segments, None),
    ]


@pytest.mark.parametrize("case", edge_cases(), ids=lambda case: case[0])
@pytest.mark.parametrize("base", ["bce", "asl"])
@pytest.mark.parametrize("combine", ["harmonic", "arithmetic"])
def test_shl_edge_cases_finite(case, base, combine):
    _, logits, targets, segments, weights = case
    logits = logits.clone().requires_grad_()

    loss = segmented_harmonic_loss(
        logits, targets, segments, weights, base=base, combine=combine
    )
    loss.backward()

    assert torch.isfinite(loss)
    assert loss.requires_grad
    assert torch.isfinite(logits.grad).all()


def test_shl_no_positive_is_lambda_times_base():
    # No segment is active, so the F1 term is 0 and the loss is lam * base.
    logits = torch.tensor([[0.0, LN3]], dtype=torch.float64, requires_grad=True)
    targets = torch.zeros(1, 2, dtype=torch.float64)
    segments = torch.tensor([0, 1])
    base = (math.log(2) + math.log(4)) / 2

    loss = segmented_harmonic_loss(logits, targets, segments, lam=0.3)
    loss.backward()

    assert math.isclose(loss.item(), 0.3 * base, rel_tol=1e-12)
    assert torch.isfinite(logits.grad).all()


def test_shl_zero_weights_gives_zero():
    # All weights 0: every count is 0, so F1_k = eps / eps = 1 and 1 - H = 0, and no
    # segment has weight, so the base term is 0.
    logits = torch.randn(3, 4, requires_grad=True)
    targets = torch.ones(3, 4)

    loss = segmented_harmonic_loss(logits, targets, torch.tensor([0, 1, 1, 0]), torch.zeros(3, 4))
    loss.backward()

    assert loss.item() == 0.0
    assert torch.equal(logits.grad, torch.zeros(3, 4))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_shl_zero_weight_entries_ignored(seed):
    generator = torch.Generator().manual_seed(seed)
    rows, labels = 5, 12
    segments = torch.arange(labels) % 4
    logits = torch.randn(rows, labels, generator=generator)
    targets = (torch.rand(rows, labels, generator=generator) < 0.3).float()
    weights = torch.rand(rows, labels, generator=generator) + 0.1
    zero = torch.rand(rows, labels, generator=generator) < 0.4
    # Row 0 keeps a weighted positive in every segment, so the set of active segments
    # is the same whatever the zero-weight targets are.
    zero[0, :4] = False
    targets[0, :4] = 1.0
    weights[zero] = 0.0

    changed_logits = logits.clone()
    changed_targets = targets.clone()
    changed_logits[zero] = torch.randn(int(zero.sum()), generator=generator) * 10
    changed_targets[zero] = 1.0 - changed_targets[zero]

    for base in ("bce", "asl"):
        original = segmented_harmonic_loss(logits, targets, segments, weights, base=base)
        changed = segmented_harmonic_loss(
            changed_logits, changed_targets, segments, weights, base=base
        )
        assert torch.allclose(original, changed, rtol=1e-6, atol=0.0)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_shl_permutation_within_segment_invariant(seed):
    generator = torch.Generator().manual_seed(seed)
    logits, targets = random_batch(seed, rows=5, labels=9, dtype=torch.float32)
    segments = torch.tensor([0, 1, 2, 0, 1, 2, 0, 1, 2])
    weights = torch.rand(5, 9, generator=generator)
    # Reorder the labels of each segment among that segment's own columns.
    permutation = torch.arange(9)
    for segment in range(3):
        columns = (segments == segment).nonzero().flatten()
        shuffled = columns[torch.randperm(len(columns), generator=generator)]
        permutation[columns] = shuffled

    original = segmented_harmonic_loss(logits, targets, segments, weights)
    permuted = segmented_harmonic_loss(
        logits[:, permutation], targets[:, permutation], segments, weights[:, permutation]
    )

    assert torch.equal(segments[permutation], segments)
    assert torch.allclose(original, permuted, rtol=1e-6, atol=0.0)


def gradient_norms_by_segment(combine: str) -> tuple[list[float], list[float]]:
    """Return the logit gradient norm and the soft F1 of each of three segments.

    The segments share the same targets, and their logits are (2y - 1) times margins
    2, 0 and -2, so segment 0 is predicted well and segment 2 badly.
    """
    y_block = torch.tensor(
        [[1, 0, 0, 1], [0, 1, 0, 0], [0, 0, 1, 0], [1, 1, 0, 0]], dtype=torch.float64
    )
    targets = y_block.repeat(1, 3)
    segments = torch.arange(12) // 4
    margins = torch.tensor([2.0, 0.0, -2.0], dtype=torch.float64).repeat_interleave(4)
    logits = ((2 * targets - 1) * margins).requires_grad_()

    segmented_harmonic_loss(logits, targets, segments, lam=0.0, combine=combine).backward()

    norms, f1_values = [], []
    probabilities = torch.sigmoid(logits.detach())
    for segment in range(3):
        columns = segments == segment
        p, y = probabilities[:, columns], targets[:, columns]
        tp, fp, fn = (p * y).sum(), (p * (1 - y)).sum(), ((1 - p) * y).sum()
        f1_values.append(((2 * tp + 1) / (2 * tp + fp + fn + 1)).item())
        norms.append(logits.grad[:, columns].norm().item())
    return norms, f1_values


def test_shl_harmonic_focuses_worst_segment():
    norms, f1_values = gradient_norms_by_segment("harmonic")

    assert f1_values[0] > f1_values[1] > f1_values[2]
    assert max(range(3), key=lambda k: norms[k]) == 2


def test_shl_arithmetic_does_not_focus_worst_segment():
    # The same case under the arithmetic mean: the uncertain segment 1 (margin 0, where
    # the sigmoid is steepest) gets the largest gradient, not the worst segment 2.
    norms, _ = gradient_norms_by_segment("arithmetic")

    assert max(range(3), key=lambda k: norms[k]) == 1


# ---------------------------------------------------------------------------
# Precision
# ---------------------------------------------------------------------------


def test_shl_float32_under_bfloat16_autocast():
    torch.manual_seed(0)
    layer = torch.nn.Linear(8, 6)
    features = torch.randn(4, 8)
    targets = (torch.rand(4, 6) < 0.5).float()
    segments = torch.tensor([0, 0, 1, 1, 2, 2])
    module = SegmentedHarmonicLoss(segments)

    with torch.autocast("cpu", dtype=torch.bfloat16):
        logits = layer(features)
        loss = module(logits, targets)
        bce = binary_cross_entropy_loss(logits, targets)

    assert logits.dtype == torch.bfloat16
    assert loss.dtype == torch.float32
    assert bce.dtype == torch.float32
    loss.backward()
    assert torch.isfinite(layer.weight.grad).all()


def test_shl_half_inputs_computed_in_float32():
    logits, targets, segments = hand_case(torch.float32)

    loss = segmented_harmonic_loss(logits.to(torch.bfloat16), targets.to(torch.bfloat16), segments)

    assert loss.dtype == torch.float32
    # bfloat16 rounds the logits to about 3 significant digits.
    expected = 0.5 * BASE_BCE + 0.5 * (1 - 30 / 43)
    assert math.isclose(loss.item(), expected, rel_tol=1e-2)


# ---------------------------------------------------------------------------
# Running counts
# ---------------------------------------------------------------------------


def test_shl_running_counts_hand_value():
    # momentum m = 0.5 and the hand case twice. Batch counts C per segment:
    #   TP = (1, .75), FP = (1, .25), FN = (1, .25).
    # Call 1 uses C, and the buffer becomes m * (0 + C) = 0.5 C.
    # Call 2 uses C + 0.5 C = 1.5 C:
    #   segment 0: TP = FP = FN = 1.5, F1 = (3 + 1) / (3 + 3 + 1) = 4/7
    #   segment 1: TP = 1.125, FP = FN = .375, F1 = 3.25 / 4 = 13/16
    # The buffer then becomes 0.5 * (0.5 C + C) = 0.75 C.
    logits, targets, segments = hand_case(torch.float64)
    module = SegmentedHarmonicLoss(segments, momentum=0.5)
    fresh = SegmentedHarmonicLoss(segments, momentum=0.5)
    module.train()

    first = module(logits, targets)
    second = module(logits, targets)
    fresh_value = fresh(logits, targets)

    harmonic_first = 30 / 43
    harmonic_second = 2 / (7 / 4 + 16 / 13)
    assert math.isclose(first.item(), 0.5 * BASE_BCE + 0.5 * (1 - harmonic_first), rel_tol=1e-6)
    assert math.isclose(second.item(), 0.5 * BASE_BCE + 0.5 * (1 - harmonic_second), rel_tol=1e-6)
    assert not math.isclose(second.item(), fresh_value.item(), rel_tol=1e-4)
    expected_buffer = 0.75 * torch.tensor([[1.0, 0.75], [1.0, 0.25], [1.0, 0.25]])
    assert torch.allclose(module.running_counts, expected_buffer, rtol=1e-6)


def test_shl_running_counts_frozen_in_eval():
    logits, targets, segments = hand_case(torch.float32)
    module = SegmentedHarmonicLoss(segments, momentum=0.9)
    module(logits, targets)
    saved = module.running_counts.clone()
    module.eval()

    first = module(logits, targets)
    second = module(logits, targets)

    assert torch.equal(module.running_counts, saved)
    assert torch.equal(first, second)
    assert "running_counts" in module.state_dict()


def test_shl_running_counts_reset_and_backward():
    logits, targets, segments = hand_case(torch.float32)
    logits.requires_grad_()
    module = SegmentedHarmonicLoss(segments, momentum=0.5)

    for _ in range(3):
        loss = module(logits, targets)
        loss.backward()
    module.reset_running_counts()

    assert torch.isfinite(logits.grad).all()
    assert torch.equal(module.running_counts, torch.zeros(3, 2))


def test_shl_without_momentum_has_no_buffer():
    module = SegmentedHarmonicLoss([0, 1, 1])

    assert module.running_counts is None
    assert "running_counts" not in module.state_dict()


# ---------------------------------------------------------------------------
# Validation
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "named"),
    [
        ({"combine": "geometric"}, "'geometric'"),
        ({"base": "focal"}, "'focal'"),
        ({"lam": 1.5}, "1.5"),
        ({"lam": -0.1}, "-0.1"),
        ({"eps": 0.0}, "0.0"),
        ({"eps": float("inf")}, "inf"),
        ({"active_only": "yes"}, "'yes'"),
        ({"reduction": "none"}, "'none'"),
        ({"num_segments": 0}, "0"),
        ({"asl_clip": 1.0}, "1.0"),
        ({"asl_gamma_neg": -1.0}, "-1.0"),
    ],
)
def test_shl_invalid_option_raises(options, named):
    logits, targets, segments = hand_case()

    with pytest.raises(ValueError, match=named):
        segmented_harmonic_loss(logits, targets, segments, **options)
    with pytest.raises(ValueError, match=named):
        SegmentedHarmonicLoss(segments, **options)


@pytest.mark.parametrize("momentum", [1.0, -0.5, "fast", True])
def test_shl_invalid_momentum_raises(momentum):
    with pytest.raises(ValueError, match="momentum"):
        SegmentedHarmonicLoss([0, 1], momentum=momentum)


def test_shl_invalid_shapes_raise():
    logits, targets, segments = hand_case()

    with pytest.raises(ValueError, match=r"shape \(batch, labels\)"):
        segmented_harmonic_loss(logits[0], targets[0], segments)
    with pytest.raises(ValueError, match="does not match logits shape"):
        segmented_harmonic_loss(logits, targets[:, :2], segments)
    with pytest.raises(ValueError, match="3 labels"):
        segmented_harmonic_loss(logits, targets, torch.tensor([0, 1]))
    with pytest.raises(ValueError, match=r"0\.\.0, got ids from 0 to 1"):
        segmented_harmonic_loss(logits, targets, segments, num_segments=1)
    with pytest.raises(ValueError, match="from -1 to 1"):
        segmented_harmonic_loss(logits, targets, torch.tensor([-1, 0, 1]))
    with pytest.raises(ValueError, match="integer ids"):
        segmented_harmonic_loss(logits, targets, torch.tensor([0.0, 0.0, 1.0]))
    with pytest.raises(ValueError, match="does not broadcast"):
        segmented_harmonic_loss(logits, targets, segments, torch.ones(2, 2))
    with pytest.raises(ValueError, match="non-negative"):
        segmented_harmonic_loss(logits, targets, segments, -torch.ones(2, 3))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        segmented_harmonic_loss(logits, targets * 2, segments)
    with pytest.raises(ValueError, match="running_counts"):
        segmented_harmonic_loss(logits, targets, segments, running_counts=torch.zeros(3, 5))
    with pytest.raises(ValueError, match="built for 2 labels"):
        SegmentedHarmonicLoss([0, 1])(logits, targets)


# ---------------------------------------------------------------------------
# Baselines: hand values on hand_case()
# ---------------------------------------------------------------------------
# Entries (p, y) in row-major order:
#   (.75, 1) (.5, 0) (.25, 0) / (.5, 0) (.25, 1) (.75, 1)
# p_t = p y + (1 - p)(1 - y) = .75, .5, .75, .5, .25, .75


@pytest.mark.parametrize("dtype", DTYPES)
def test_bce_hand_value(dtype):
    # BCE = -log p_t: three times log(4/3), twice log 2, once log 4, mean over 6.
    logits, targets, _ = hand_case(dtype)
    expected = (3 * math.log(4 / 3) + 2 * math.log(2) + math.log(4)) / 6

    assert_close(binary_cross_entropy_loss(logits, targets), expected, dtype)
    assert_close(BinaryCrossEntropyLoss()(logits, targets), expected, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_bce_weighted_and_reductions(dtype):
    # weights [[1, 0, 2], [1, 1, 0]]: sum = log(4/3) + 2 log(4/3) + log 2 + log 4.
    # "mean" divides by all 6 entries, weight 0 included.
    logits, targets, _ = hand_case(dtype)
    weights = torch.tensor([[1.0, 0.0, 2.0], [1.0, 1.0, 0.0]], dtype=dtype)
    weighted_sum = 3 * math.log(4 / 3) + math.log(2) + math.log(4)

    mean = binary_cross_entropy_loss(logits, targets, weights)
    total = binary_cross_entropy_loss(logits, targets, weights, reduction="sum")
    per_entry = binary_cross_entropy_loss(logits, targets, weights, reduction="none")

    assert_close(mean, weighted_sum / 6, dtype)
    assert_close(total, weighted_sum, dtype)
    assert per_entry.shape == (2, 3)
    assert_close(per_entry[0, 2], 2 * math.log(4 / 3), dtype)
    assert per_entry[0, 1].item() == 0.0


@pytest.mark.parametrize("dtype", DTYPES)
def test_focal_hand_value(dtype):
    # loss = -log(p_t) (1 - p_t)^2:
    #   p_t = .75: .0625 log(4/3) (three entries), p_t = .5: .25 log 2 (two),
    #   p_t = .25: .5625 log 4 (one).
    logits, targets, _ = hand_case(dtype)
    expected = (
        3 * 0.0625 * math.log(4 / 3) + 2 * 0.25 * math.log(2) + 0.5625 * math.log(4)
    ) / 6

    assert_close(sigmoid_focal_loss(logits, targets), expected, dtype)
    assert_close(FocalLoss()(logits, targets), expected, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_focal_alpha_hand_value(dtype):
    # alpha = .25 multiplies positives by .25 and negatives by .75.
    #   positives: (.75, 1) .0625 log(4/3), (.25, 1) .5625 log 4, (.75, 1) .0625 log(4/3)
    #   negatives: (.5, 0) .25 log 2 twice, (.25, 0) .0625 log(4/3)
    logits, targets, _ = hand_case(dtype)
    positives = 2 * 0.0625 * math.log(4 / 3) + 0.5625 * math.log(4)
    negatives = 2 * 0.25 * math.log(2) + 0.0625 * math.log(4 / 3)
    expected = (0.25 * positives + 0.75 * negatives) / 6

    loss = sigmoid_focal_loss(logits, targets, alpha=0.25)

    assert_close(loss, expected, dtype)


def test_focal_matches_torchvision_formula_gamma_zero():
    # gamma 0 and no alpha: the focal loss is plain BCE.
    logits, targets = random_batch(5)

    focal = sigmoid_focal_loss(logits, targets, gamma=0.0)

    assert torch.allclose(focal, F.binary_cross_entropy_with_logits(logits, targets), rtol=1e-12)


@pytest.mark.parametrize("dtype", DTYPES)
def test_asl_hand_value(dtype):
    # gamma_neg 4, gamma_pos 0, clip .05.
    #   positives: -log p = log(4/3), log 4, log(4/3)
    #   negatives: p_m = p - .05, loss = -p_m^4 log(1 - p_m):
    #     p = .5 -> -(.45^4) log .55 (twice), p = .25 -> -(.2^4) log .8
    logits, targets, _ = hand_case(dtype)
    positives = 2 * math.log(4 / 3) + math.log(4)
    negatives = -2 * 0.45**4 * math.log(0.55) - 0.2**4 * math.log(0.8)
    expected = (positives + negatives) / 6

    assert_close(asymmetric_loss(logits, targets), expected, dtype)
    assert_close(AsymmetricLoss()(logits, targets), expected, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_asl_no_clip_gamma_pos_hand_value(dtype):
    # clip 0, gamma_neg 1, gamma_pos 1:
    #   positives: -(1 - p) log p: .25 log(4/3), .75 log 4, .25 log(4/3)
    #   negatives: -p log(1 - p): .5 log 2 (twice), .25 log(4/3)
    logits, targets, _ = hand_case(dtype)
    expected = (
        0.25 * math.log(4 / 3) * 2 + 0.75 * math.log(4) + 0.5 * math.log(2) * 2
        + 0.25 * math.log(4 / 3)
    ) / 6

    loss = asymmetric_loss(logits, targets, gamma_neg=1.0, gamma_pos=1.0, clip=0.0)

    assert_close(loss, expected, dtype)


def test_asl_clip_removes_easy_negatives():
    # A negative with p <= clip has p_m = 0 and contributes nothing.
    logits = torch.tensor([[math.log(0.04 / 0.96)]], dtype=torch.float64)

    loss = asymmetric_loss(logits, torch.zeros(1, 1, dtype=torch.float64))

    assert loss.item() == 0.0


def test_class_balanced_weights_hand_value():
    # beta .9, counts (3, 0, 100): raw (1 - .9) / (1 - .9^n) with count 0 read as 1:
    #   .1 / (1 - .729) = .1 / .271, 1, .1 / (1 - .9^100); then scaled to sum to 3.
    raw = [0.1 / (1 - 0.9**3), 1.0, 0.1 / (1 - 0.9**100)]
    expected = [3 * value / sum(raw) for value in raw]

    weights = class_balanced_weights(torch.tensor([3, 0, 100]), beta=0.9)

    assert weights.dtype == torch.float32
    for actual, expected_weight in zip(weights.tolist(), expected):
        assert math.isclose(actual, expected_weight, rel_tol=1e-6)
    assert math.isclose(weights.sum().item(), 3.0, rel_tol=1e-6)


@pytest.mark.parametrize("dtype", DTYPES)
def test_class_balanced_bce_hand_value(dtype):
    # Per-label weights c = (c0, c1, c2) from the test above, times BCE per entry:
    #   label 0: log(4/3) + log 2, label 1: log 2 + log 4, label 2: 2 log(4/3)
    logits, targets, _ = hand_case(dtype)
    raw = [0.1 / (1 - 0.9**3), 1.0, 0.1 / (1 - 0.9**100)]
    c = [3 * value / sum(raw) for value in raw]
    expected = (
        c[0] * (math.log(4 / 3) + math.log(2))
        + c[1] * (math.log(2) + math.log(4))
        + c[2] * 2 * math.log(4 / 3)
    ) / 6
    counts = torch.tensor([3, 0, 100])

    functional = class_balanced_bce_loss(logits, targets, label_counts=counts, beta=0.9)
    module = ClassBalancedBCELoss(counts, beta=0.9)(logits, targets)

    # The label weights are stored in float32, so both dtypes use float32 precision.
    assert math.isclose(functional.item(), expected, rel_tol=1e-6)
    assert math.isclose(module.item(), expected, rel_tol=1e-6)


def test_class_balanced_beta_zero_is_bce():
    logits, targets = random_batch(6)

    loss = class_balanced_bce_loss(logits, targets, label_counts=torch.arange(10), beta=0.0)

    assert torch.allclose(loss, F.binary_cross_entropy_with_logits(logits, targets), rtol=1e-6)


@pytest.mark.parametrize("name", ["bce", "focal", "asl", "cb"])
def test_baselines_finite_on_large_logits(name):
    logits = torch.tensor([[100.0, -100.0], [-100.0, 100.0]], requires_grad=True)
    targets = torch.tensor([[1.0, 1.0], [0.0, 0.0]])
    loss_fn = build_loss(name, label_counts=torch.tensor([1, 1]))

    loss = loss_fn(logits, targets)
    loss.backward()

    assert torch.isfinite(loss)
    assert torch.isfinite(logits.grad).all()


@pytest.mark.parametrize("name", ["bce", "focal", "asl", "cb"])
def test_baselines_float32_under_autocast(name):
    layer = torch.nn.Linear(4, 3)
    loss_fn = build_loss(name, label_counts=torch.tensor([1, 2, 3]))

    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = loss_fn(layer(torch.randn(2, 4)), torch.ones(2, 3))

    assert loss.dtype == torch.float32


@pytest.mark.parametrize(
    ("call", "named"),
    [
        (lambda x, y: binary_cross_entropy_loss(x, y, reduction="avg"), "'avg'"),
        (lambda x, y: sigmoid_focal_loss(x, y, gamma=-1.0), "-1.0"),
        (lambda x, y: sigmoid_focal_loss(x, y, alpha=2.0), "2.0"),
        (lambda x, y: asymmetric_loss(x, y, clip=1.5), "1.5"),
        (lambda x, y: asymmetric_loss(x, y, gamma_pos=-2.0), "-2.0"),
        (lambda x, y: class_balanced_bce_loss(x, y, label_counts=torch.ones(3), beta=1.0), "1.0"),
        (lambda x, y: class_balanced_bce_loss(x, y, label_counts=torch.ones(4)), "4 entries"),
        (lambda x, y: binary_cross_entropy_loss(x, y[:, :2]), "does not match"),
    ],
)
def test_baselines_invalid_arguments_raise(call, named):
    logits, targets, _ = hand_case()

    with pytest.raises(ValueError, match=named):
        call(logits, targets)


# ---------------------------------------------------------------------------
# Factory
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "options", "expected_type"),
    [
        ("shl", {"lam": 0.2, "combine": "arithmetic", "momentum": 0.9}, SegmentedHarmonicLoss),
        ("bce", {}, BinaryCrossEntropyLoss),
        ("focal", {"gamma": 1.0, "alpha": 0.5}, FocalLoss),
        ("asl", {"gamma_neg": 2.0, "clip": 0.0}, AsymmetricLoss),
        ("cb", {"beta": 0.99}, ClassBalancedBCELoss),
    ],
)
def test_build_loss_by_name(name, options, expected_type):
    loss_fn = build_loss(name, options, segments=[0, 0, 1], label_counts=[5, 0, 2])

    assert isinstance(loss_fn, expected_type)
    for key, value in options.items():
        assert getattr(loss_fn, key) == value


def test_build_loss_shl_value_matches_function():
    logits, targets, segments = hand_case()

    loss_fn = build_loss("shl", {"lam": 0.25}, segments=segments)

    expected = 0.25 * BASE_BCE + 0.75 * (1 - 30 / 43)
    assert math.isclose(loss_fn(logits, targets).item(), expected, rel_tol=1e-12)


def test_build_loss_invalid_requests_raise():
    with pytest.raises(ValueError, match="'dice'"):
        build_loss("dice")
    with pytest.raises(ValueError, match="'lambda'"):
        build_loss("shl", {"lambda": 0.5}, segments=[0])
    with pytest.raises(ValueError, match="needs segments"):
        build_loss("shl")
    with pytest.raises(ValueError, match="needs label_counts"):
        build_loss("cb")
    with pytest.raises(ValueError, match="'harmonica'"):
        build_loss("shl", {"combine": "harmonica"}, segments=[0, 1])
