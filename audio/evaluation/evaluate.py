"""Evaluate generated clips against their input texts and reference recordings.

The clips are the ``<id>.wav`` files of ``generated_dir``; each ``id`` must be a line of the ``id|text``
transcript (the texts they were synthesised from) and, for MCD and speaker similarity, have ``<id>.wav`` in
``reference_dir`` (a recording of the same text, or any clip of the target speaker for similarity alone). Clips at
any sample rate are resampled to 24 kHz on reading (``read_wav``).

Per clip: ``mcd_db`` (``mcd.mcd_dtw``), ``speaker_similarity`` (``speaker``), ``transcript`` (``asr``), ``wer`` and
``cer`` (``error_rate``). Summary: the mean MCD and similarity, and the WER and CER over all clips together.
"""

from collections.abc import Sequence
from pathlib import Path
from typing import Literal, get_args

import soundfile
import torch
from rich.progress import track

from ..data import read_transcript
from ..wav import read_wav
from .asr import PocketSphinxASR
from .error_rate import error_rates
from .mcd import SAMPLE_RATE, mcd_dtw
from .report import write_report
from .speaker import SpeakerEncoder, speaker_similarity

Metric = Literal["mcd", "sim", "wer"]


def _read(path: Path) -> torch.Tensor:
    """The clip at ``path`` as ``[T]`` at 24 kHz; ``ValueError`` when it holds no samples."""
    if soundfile.info(str(path)).frames == 0:
        raise ValueError(f"{str(path)!r} holds no samples: synthesise or record it again, or remove it")
    return read_wav(path, SAMPLE_RATE)


def _listed(ids: list[str]) -> str:
    return ", ".join(ids[:10]) + (f" and {len(ids) - 10} more" if len(ids) > 10 else "")


def evaluate(
    generated_dir: str,
    transcript_path: str,
    reference_dir: str | None = None,
    metrics: Sequence[Metric] = ("mcd", "sim", "wer"),
    output_dir: str | None = None,
) -> dict:
    """Score every clip of ``generated_dir`` and write ``evaluation.json`` and ``evaluation.md``.

    Args:
        generated_dir: folder of the generated ``<id>.wav`` clips.
        transcript_path: ``id|text`` file holding every generated id (the input texts).
        reference_dir: folder of reference ``<id>.wav`` recordings; needed by ``mcd`` and ``sim``.
        metrics: any of ``mcd`` (MCD-DTW, dB), ``sim`` (speaker similarity), ``wer`` (WER and CER by ASR).
        output_dir: where to write the report (default: ``generated_dir``).

    Returns ``{"settings", "summary", "clips"}`` as written to ``evaluation.json``.
    """
    metrics = list(dict.fromkeys(metrics))
    if not metrics or not set(metrics) <= set(get_args(Metric)):
        raise ValueError(f"metrics must be one or more of {get_args(Metric)}, got {metrics}")
    paths = sorted(Path(generated_dir).glob("*.wav"))
    if not paths:
        raise FileNotFoundError(f"no .wav clips in {generated_dir!r}: give the folder the generated clips are in")
    texts = read_transcript(transcript_path)
    unknown = [path.stem for path in paths if path.stem not in texts]
    if unknown:
        raise ValueError(f"clips without a line in {transcript_path}: {_listed(unknown)}; add their texts")
    references = {}
    if {"mcd", "sim"} & set(metrics):
        if reference_dir is None:
            raise ValueError("mcd and sim compare with recordings: give reference_dir, or ask only for wer")
        references = {path.stem: Path(reference_dir) / path.name for path in paths}
        missing = [clip_id for clip_id, path in references.items() if not path.is_file()]
        if missing:
            raise FileNotFoundError(f"no reference in {reference_dir!r} for {_listed(missing)}")
    asr = PocketSphinxASR() if "wer" in metrics else None
    encoder = SpeakerEncoder() if "sim" in metrics else None

    clips = {}
    for path in track(paths, description="evaluating"):
        wav, clip = _read(path), {}
        reference = _read(references[path.stem]) if references else None
        if "mcd" in metrics:
            clip["mcd_db"] = mcd_dtw(reference, wav)
        if encoder is not None:
            try:
                embeddings = [encoder.embed(audio, SAMPLE_RATE) for audio in (reference, wav)]
            except ValueError as error:
                raise ValueError(f"clip {path.stem!r}: {error}; drop sim from metrics to score the rest") from error
            clip["speaker_similarity"] = speaker_similarity(*embeddings)
        if asr is not None:
            clip["transcript"] = asr.transcribe(wav, SAMPLE_RATE)
            clip.update(error_rates([clip["transcript"]], [texts[path.stem]]))
        clips[path.stem] = clip

    summary = {}
    for key in ("mcd_db", "speaker_similarity"):
        if key in next(iter(clips.values())):
            summary[key] = sum(clip[key] for clip in clips.values()) / len(clips)
    if asr is not None:
        summary.update(error_rates([clip["transcript"] for clip in clips.values()], [texts[i] for i in clips]))
    summary["clips"] = len(clips)
    settings = {
        "generated_dir": str(generated_dir),
        "transcript_path": str(transcript_path),
        "reference_dir": None if reference_dir is None else str(reference_dir),
        "metrics": metrics,
    }
    result = {"settings": settings, "summary": summary, "clips": clips}
    write_report(result, generated_dir if output_dir is None else output_dir)
    return result
