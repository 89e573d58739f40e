import pytest
import torch
from lrnn.audio.delay import apply_delay, lina_delay, lina_undelay, undo_delay
from lrnn.audio.special_tokens import BOS, EOS, N_SPECIAL, PAD


def test_pattern_on_a_hand_made_example():
    codes = torch.tensor([[10, 11, 12], [20, 21, 22], [30, 31, 32]])
    s = N_SPECIAL
    expected = torch.tensor(
        [
            [10 + s, 11 + s, 12 + s, PAD, PAD],
            [PAD, 20 + s, 21 + s, 22 + s, PAD],
            [PAD, PAD, 30 + s, 31 + s, 32 + s],
        ]
    )
    assert torch.equal(apply_delay(codes), expected)


@pytest.mark.parametrize("q", [1, 2, 4])
def test_round_trip(q):
    codes = torch.randint(0, 1024, (q, 37), generator=torch.Generator().manual_seed(q))
    delayed = apply_delay(codes)
    assert delayed.shape == (q, 37 + q - 1)
    assert torch.equal(undo_delay(delayed), codes)
    assert torch.equal(lina_undelay(lina_delay(codes)), codes)


def test_lina_layout_with_one_codebook_is_bos_codes_eos():
    codes = torch.tensor([[5, 0, 7]])
    assert lina_delay(codes).tolist() == [[BOS, 5 + N_SPECIAL, N_SPECIAL, 7 + N_SPECIAL, EOS]]


def test_lina_layout_places_bos_before_and_eos_after_each_codebook():
    # The authors' delay_rvq(code + 3, head_token=1, tail_token=2) on this input gives these rows.
    codes = torch.tensor([[0, 1], [2, 3]])
    tokens = lina_delay(codes)
    assert tokens.tolist() == [[BOS, 3, 4, EOS, EOS], [BOS, BOS, 5, 6, EOS]]
    # Each codebook emits EOS at the step after its last token, and every codebook ends on EOS.
    assert (tokens[:, -1] == EOS).all()


def test_undo_delay_rejects_special_ids_in_code_positions():
    tokens = apply_delay(torch.tensor([[1, 2], [3, 4]]))
    tokens[1, 1] = EOS
    with pytest.raises(ValueError, match="special id"):
        undo_delay(tokens)


def test_bad_codes_are_rejected():
    with pytest.raises(ValueError, match=r"\[q, T\]"):
        apply_delay(torch.zeros(5, dtype=torch.long))
    with pytest.raises(TypeError, match="integer"):
        apply_delay(torch.zeros(2, 5))
    with pytest.raises(ValueError, match="non-negative"):
        apply_delay(torch.tensor([[0, -1]]))
