"""``lrnn bench speech_throughput`` on the CPU with tiny models (the numbers mean nothing: the test checks the code
path and the JSON), its parallel prefill of Lina-Speech, its configs and its refusals. The baseline's KV-cache
decoding against its causal forward is tested in test_transformer_tts.py."""

import json

import pytest
import torch
from lrnn.audio.model import LinaSpeech
from lrnn.audio.special_tokens import BOS, N_SPECIAL
from lrnn.benchmarks.speech_throughput import TINY_LINA, lina_config, lina_prefill, transformer_config

from lrnn.cli import available_benchmarks, main

ROW_KEYS = {"model", "dtype", "batch", "frames", "prefill_ms", "decode_s", "frames_per_s", "realtime"}
ROW_KEYS |= {"ms_per_step_first", "ms_per_step_last", "ms_per_step", "cache_gib", "peak_gib"}


def test_it_is_a_registered_benchmark():
    assert "speech_throughput" in available_benchmarks()


@pytest.mark.filterwarnings("ignore:Mismatch dtype between input and weight:UserWarning")  # GLA's RMSNorm, CPU bf16
def test_tiny_run_on_the_cpu(tmp_path, capsys):
    """Both models, both dtypes, batch 2, 5 frames in windows of 2 steps."""
    out = tmp_path / "speech.json"
    args = ["--device", "cpu", "--tiny", "--dtypes", "fp32", "bf16", "--batch-sizes", "2", "--lengths", "5"]
    main(["bench", "speech_throughput", *args, "--out", str(out)])

    report = json.loads(out.read_text())
    assert report["gpu"] == "cpu" and report["settings"]["window"] == 2 and "interrupted" not in report
    assert report["models"]["lina"]["config"] == TINY_LINA
    assert report["models"]["transformer"]["config"]["num_layers"] == 2 * TINY_LINA["num_layers"]
    assert all(model["params"] > 0 for model in report["models"].values())
    rows = report["results"]
    assert [(r["model"], r["dtype"]) for r in rows] == [
        (m, d) for d in ("fp32", "bf16") for m in ("lina", "transformer")
    ]
    for row in rows:
        assert set(row) == ROW_KEYS and row["batch"] == 2 and row["frames"] == 5 and row["peak_gib"] is None
        assert [frames for frames, _ in row["ms_per_step"]] == [2, 4, 5]
        assert (
            row["ms_per_step_first"] == row["ms_per_step"][0][1]
            and row["ms_per_step_last"] == row["ms_per_step"][-1][1]
        )
        assert row["frames_per_s"] > 0 and row["prefill_ms"] > 0 and row["cache_gib"] >= 0
    assert [(pair["dtype"], pair["batch"], pair["frames"]) for pair in report["comparison"]] == [
        ("fp32", 2, 5),
        ("bf16", 2, 5),
    ]
    printed = capsys.readouterr().out
    assert "prefill ms" in printed and "Lina" in printed and f"wrote {out}" in printed


def test_lina_prefill_equals_stepping_the_prompt():
    """float64: the parallel prefill's logits and cache are those of ``LinaSpeech.step`` over the prompt."""
    torch.manual_seed(0)
    model = LinaSpeech(**TINY_LINA).double().eval()
    gen = torch.Generator().manual_seed(1)
    text = torch.randint(N_SPECIAL, 100, (2, 5), generator=gen)
    mask = torch.ones_like(text, dtype=torch.bool)
    audio = torch.randint(N_SPECIAL, model.vocab_size, (2, 6, 1), generator=gen)
    audio[:, 0] = BOS
    with torch.no_grad():
        logits, cache = lina_prefill(model, text, mask, audio[:, :5])
        stepped = model.init_cache(text, mask)
        for s in range(5):
            expected, stepped = model.step(audio[:, s], stepped)
        torch.testing.assert_close(logits, expected, rtol=1e-10, atol=1e-10)
        torch.testing.assert_close(model.step(audio[:, 5], cache)[0], model.step(audio[:, 5], stepped)[0])


def test_paper_sizes_come_from_the_recipe():
    lina = lina_config(tiny=False)
    assert lina == dict(
        codebook_size=1024, num_codebooks=1, d_model=1024, num_layers=6, num_heads=4, text_layers=6, text_heads=4,
        position_dim=64, pos_net_heads=1, max_text_positions=2000, dropout=0.0,
    )  # fmt: skip
    assert transformer_config(lina) == dict(
        codebook_size=1024, num_codebooks=1, d_model=1024, text_layers=6, text_heads=4, num_layers=12, num_heads=16
    )


def test_refusals():
    with pytest.raises(SystemExit, match="--device cpu runs only with --tiny"):
        main(["bench", "speech_throughput", "--device", "cpu"])
    with pytest.raises(SystemExit, match=r"must be >= 1.*got \[0\]"):
        main(["bench", "speech_throughput", "--device", "cpu", "--tiny", "--batch-sizes", "0"])
    if not torch.cuda.is_available():
        with pytest.raises(SystemExit, match="needs a CUDA GPU .*--device cpu --tiny checks the code path"):
            main(["bench", "speech_throughput"])
